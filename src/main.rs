//! The `shoal` binary: parses flags, config file and environment, then hands over to the runtime.

use anyhow::Context;
use shoal::config::Options;
use tokio::sync::watch;

/// mimalloc instead of the system allocator: per-message buffers on the peer path made glibc malloc a fifth of the
/// CPU of a cluster under pipelined writes.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    fail_loudly();
    let options = Options::load()?;
    let config = options.server_config(os_seed())?;
    let threads = options.threads.unwrap_or(1);
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let runtime = builder.enable_all().build().context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = tx.send(true);
        });
        shoal::runtime::serve(config, rx).await?;
        Ok(())
    })
}

/// Exit status of a process that ended on a panic (Rust's own for an uncaught panic).
const PANIC_EXIT_STATUS: i32 = 101;

/// A panic anywhere (the node task, a listener, a connection task) logs its message and location and ends the
/// process with a non-zero status: tokio would otherwise catch it in the task, and the process would live on
/// accepting connections without a node to serve them, where no supervisor notices.
fn fail_loudly() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        let location = info.location().map_or_else(|| "unknown".into(), |l| l.to_string());
        let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
        tracing::error!(%message, %location, %thread, "panic: the process exits");
        eprintln!("shoal: panic at {location}: {message}; exiting with status {PANIC_EXIT_STATUS}");
        std::process::exit(PANIC_EXIT_STATUS);
    }));
}

/// Wait for SIGINT or SIGTERM.
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("signal received");
}

/// A seed from the OS's randomness (so clients cannot predict the store's hash seed), or from time and pid.
fn os_seed() -> u64 {
    use std::io::Read;
    let mut buf = [0u8; 8];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)) {
        Ok(()) => u64::from_le_bytes(buf),
        Err(_) => {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            t.as_nanos() as u64 ^ (std::process::id() as u64) << 32
        }
    }
}
