//! The `shoal` binary as a real process: starts with flags, answers redis-cli, leaves on SIGTERM.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::eventually;

fn free_port() -> u16 {
    common::members::free_addr().port()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[&str]) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("shoal binary starts");
    Proc(child)
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli is installed (apt-get install redis-tools)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn redis_cli_set_get_expire_ttl_then_sigterm() {
    let port = free_port();
    let mut p = start(&["--listen", &format!("127.0.0.1:{port}"), "--maxmemory", "10mb", "--cluster", "off"]);
    assert!(eventually(Duration::from_secs(10), || redis_cli(port, &["PING"]) == "PONG"), "node answers PING");
    assert_eq!(redis_cli(port, &["SET", "k", "v"]), "OK");
    assert_eq!(redis_cli(port, &["GET", "k"]), "v");
    assert_eq!(redis_cli(port, &["EXPIRE", "k", "100"]), "1");
    assert_eq!(redis_cli(port, &["TTL", "k"]), "100");
    assert_eq!(redis_cli(port, &["CONFIG", "GET", "maxmemory"]), format!("maxmemory\n{}", 10 << 20));
    sigterm(p.0.id());
    let exited = eventually(Duration::from_secs(10), || matches!(p.0.try_wait(), Ok(Some(_))));
    assert!(exited, "SIGTERM stops the node");
    assert!(p.0.wait().unwrap().success(), "graceful exit code 0");
}

#[test]
fn help_never_prints_secret_values_from_the_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .arg("--help")
        .env("SHOAL_REQUIREPASS", "pass-from-the-env-1234")
        .env("SHOAL_CLUSTER_SECRET", "secret-from-the-env-1234567890")
        .output()
        .expect("shoal --help runs");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    assert!(help.contains("SHOAL_REQUIREPASS") && help.contains("--requirepass-file"), "{help}");
    assert!(!help.contains("pass-from-the-env") && !help.contains("secret-from-the-env"), "{help}");
}

#[test]
fn a_cluster_address_beyond_loopback_without_a_secret_is_refused() {
    // Parsed and refused before anything binds: no traffic goes to this address.
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port()), "--cluster", "0.0.0.0:7946"])
        .args(["--advertise", "192.0.2.10:7946"])
        .env_remove("SHOAL_CLUSTER_SECRET")
        .env_remove("SHOAL_CLUSTER_INSECURE")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the node refuses to start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not loopback") && err.contains("no cluster secret"), "{err}");
    assert!(err.contains("--cluster-secret") && err.contains("--cluster-insecure"), "says what to do: {err}");
}

#[test]
fn bad_flags_are_clear_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal")).args(["--maxmemory", "lots"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("maxmemory"), "{err}");
}

#[test]
fn config_file_and_environment_use_the_same_names() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("shoal-cfg-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("shoal.toml");
    std::fs::write(&file, format!("listen = \"127.0.0.1:{port}\"\nmaxmemory = \"1mb\"\ncluster = \"off\"\n")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["--config", file.to_str().unwrap()])
        .env("SHOAL_MAXMEMORY_POLICY", "allkeys-random")
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let _p = Proc(child);
    assert!(eventually(Duration::from_secs(10), || redis_cli(port, &["PING"]) == "PONG"));
    assert_eq!(redis_cli(port, &["CONFIG", "GET", "maxmemory"]), format!("maxmemory\n{}", 1 << 20));
    assert_eq!(redis_cli(port, &["CONFIG", "GET", "maxmemory-policy"]), "maxmemory-policy\nallkeys-random");
}

/// Send SIGTERM with the `kill` command (the crate forbids unsafe code, so no libc call).
fn sigterm(pid: u32) {
    let ok = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success();
    assert!(ok);
}

#[test]
fn debug_is_refused_unless_enabled() {
    let port = free_port();
    let _p = start(&["--listen", &format!("127.0.0.1:{port}"), "--cluster", "off"]);
    assert!(eventually(Duration::from_secs(10), || redis_cli(port, &["PING"]) == "PONG"), "node answers PING");
    let answer = redis_cli(port, &["DEBUG", "PANIC"]);
    assert!(answer.starts_with("ERR DEBUG command not allowed."), "{answer}");
    assert_eq!(redis_cli(port, &["PING"]), "PONG", "still serving");
}

#[test]
fn a_node_task_panic_ends_the_process_with_a_log_line() {
    use std::io::Read;
    let port = free_port();
    let cluster = common::members::free_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--cluster", &cluster.to_string()])
        .args(["--enable-debug-command", "local"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("shoal binary starts");
    let mut p = Proc(child);
    assert!(eventually(Duration::from_secs(10), || redis_cli(port, &["PING"]) == "PONG"), "node answers PING");
    let _ = redis_cli(port, &["DEBUG", "PANIC"]);
    let exited = eventually(Duration::from_secs(10), || matches!(p.0.try_wait(), Ok(Some(_))));
    assert!(exited, "the process ends instead of living on without its node task");
    let status = p.0.wait().expect("exit status");
    assert_eq!(status.code(), Some(101), "non-zero exit: {status:?}");
    let mut stderr = String::new();
    p.0.stderr.take().expect("piped").read_to_string(&mut stderr).expect("stderr");
    assert!(stderr.contains("panic") && stderr.contains("DEBUG PANIC"), "a log line names the panic: {stderr}");
    assert!(stderr.contains("node_task.rs"), "and its location: {stderr}");
    assert_ne!(redis_cli(port, &["PING"]), "PONG", "nothing answers on the port any more");
}
