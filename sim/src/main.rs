//! `shoal-sim`: replay one seed, or sweep many, and print what the checkers found.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use shoal::core::locks::LockMode;
use shoal::core::store::EvictionPolicy;
use shoal_sim::check::Kind;
use shoal_sim::engine::{Memory, MemoryPlan};
use shoal_sim::locks::{markdown_table, LockSummary};
use shoal_sim::trace::Trace;
use shoal_sim::workload::Mix;
use shoal_sim::{run, Report, Scenario, SimConfig};

/// Deterministic simulation of a Shoal cluster under faults.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Replay this one seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Sweep this many seeds, starting at `--first`.
    #[arg(long)]
    seeds: Option<u64>,
    /// First seed of a sweep.
    #[arg(long, default_value_t = 1)]
    first: u64,
    /// Cluster size.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Length of the safety phase, in virtual seconds.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Liveness bound: virtual seconds after the heal by which the cluster must converge.
    #[arg(long, default_value_t = 60)]
    bound: u64,
    /// Named scenario (random, calm, partition-heal, crash-restart, one-way, bridge, flapping, skew, pause,
    /// split-2-3, crash-empty, replica-down, swizzle).
    #[arg(long, default_value = "random")]
    scenario: Scenario,
    /// Write the event trace of the seed to this file.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Draw each node's view of the membership over time to this SVG file.
    #[arg(long)]
    timeline: Option<PathBuf>,
    /// Lock mode of every node: `available` (grant `degraded` without a majority) or `strict` (refuse).
    #[arg(long, default_value = "available", value_parser = parse_lock_mode)]
    lock_mode: LockMode,
    /// Lock clients (default: one per node); 0 runs the data workload alone, as the engine did before lock
    /// clients joined it (the regression seeds found then replay that way).
    #[arg(long)]
    lock_clients: Option<usize>,
    /// After a sweep, also print its lock counts as a markdown row (the table format of `docs/locks.md`).
    #[arg(long)]
    lock_table: bool,
    /// The data clients' calls: `full` (large values, INCRBY counters, APPEND logs, mass-expiry bursts, nodes
    /// under a drawn `maxmemory`) or `classic` (small SET/GET/DEL/EXPIRE, no memory limit: the workload the
    /// recorded regression seeds were found with, replayed byte for byte).
    #[arg(long, default_value = "full")]
    workload: Mix,
    /// Every node's memory limit in bytes (0: none), instead of the one the full workload draws from the seed.
    #[arg(long)]
    maxmemory: Option<usize>,
    /// Eviction policy with `--maxmemory` (allkeys-lru, allkeys-random, volatile-lru, noeviction).
    #[arg(long, default_value = "allkeys-lru", value_parser = parse_policy)]
    maxmemory_policy: EvictionPolicy,
}

fn parse_policy(s: &str) -> Result<EvictionPolicy, String> {
    match s {
        "allkeys-lru" => Ok(EvictionPolicy::AllKeysLru),
        "allkeys-random" => Ok(EvictionPolicy::AllKeysRandom),
        "volatile-lru" => Ok(EvictionPolicy::VolatileLru),
        "noeviction" => Ok(EvictionPolicy::NoEviction),
        other => Err(format!("unknown policy `{other}`")),
    }
}

fn parse_lock_mode(s: &str) -> Result<LockMode, String> {
    match s.to_ascii_lowercase().as_str() {
        "available" => Ok(LockMode::Available),
        "strict" => Ok(LockMode::Strict),
        other => Err(format!("unknown lock mode `{other}` (available or strict)")),
    }
}

fn mode_name(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Available => "available",
        LockMode::Strict => "strict",
    }
}

/// The lock counts of a run or a sweep on one line.
fn lock_line(s: &LockSummary) -> String {
    format!(
        "{} grants ({} majority, {} degraded), {} nil, {} failed; double holders {} under faults ({} ms, longest \
         {} ms); writes {} ok, {} fenced; stale writes {} ({} rejected)",
        s.grants,
        s.grants - s.degraded,
        s.degraded,
        s.contended,
        s.failed,
        s.double_holder_under_fault,
        s.double_holder_ms,
        s.double_holder_ms_max,
        s.writes_accepted,
        s.writes_rejected,
        s.stale_writes,
        s.stale_rejected
    )
}

fn config(args: &Args, seed: u64) -> SimConfig {
    let mut config = SimConfig::new(seed, args.nodes, args.scenario, args.duration * 1_000);
    config.liveness_bound_ms = args.bound * 1_000;
    config.timeline = args.timeline.is_some();
    config.lock_mode = args.lock_mode;
    if let Some(clients) = args.lock_clients {
        config.locks.clients = clients;
    }
    config.workload = args.workload;
    config.memory = match args.maxmemory {
        None => MemoryPlan::Default,
        Some(0) => MemoryPlan::Off,
        Some(maxmemory_bytes) => MemoryPlan::Limit(Memory { maxmemory_bytes, eviction: args.maxmemory_policy }),
    };
    config
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
    match args.seeds {
        Some(count) => sweep(&args, count),
        None => replay(&args, args.seed.unwrap_or(args.first)),
    }
}

fn replay(args: &Args, seed: u64) -> anyhow::Result<()> {
    let trace = match &args.trace {
        Some(path) => {
            let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
            Trace::new(Some(Box::new(BufWriter::new(file))))
        }
        None => Trace::default(),
    };
    let started = Instant::now();
    let report = run(config(args, seed), trace);
    let wall_s = started.elapsed().as_secs_f64();
    println!(
        "seed {seed}, scenario {}, {} nodes, lock mode {}, workload {}, {}",
        args.scenario,
        args.nodes,
        mode_name(args.lock_mode),
        args.workload.name(),
        memory_line(&report)
    );
    for (at, fault) in &report.faults {
        println!("  fault at {at:>7} ms: {}", fault.label());
    }
    let virtual_s = report.virtual_ms as f64 / 1_000.0;
    println!(
        "virtual {virtual_s:.1} s in {wall_s:.2} s wall ({:.0}x), {} events, {} client calls, {:.1} datagrams/node/s",
        virtual_s / wall_s.max(1e-9),
        report.events,
        report.ops,
        per_node_s(&report)
    );
    match report.converged_after_ms {
        Some(ms) => println!("converged {ms} ms after the heal"),
        None => println!("did NOT converge within {} s of the heal", args.bound),
    }
    println!(
        "{} peer messages ({:.1}/node/s, {} bytes), {} calls with unknown outcome",
        report.peer_messages,
        peer_per_node_s(&report),
        report.peer_bytes,
        report.unknown_ops
    );
    println!("locks: {}", lock_line(&report.locks));
    println!("trace hash {:#018x}", report.trace_hash);
    if let Some(path) = &args.timeline {
        let svg = report.timeline.as_ref().map(|t| t.svg()).unwrap_or_default();
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
        println!("timeline written to {}", path.display());
    }
    for v in &report.anomalies {
        println!("ANOMALY {v}");
    }
    for v in &report.violations {
        println!("VIOLATION {v}");
    }
    for (kind, count) in &report.counts {
        let note = if kind.is_anomaly() { " (anomaly allowed by design, not a failure)" } else { "" };
        println!("  {kind}: {count}{note}");
    }
    anyhow::ensure!(report.passed(), "seed {seed} failed: {}", report.replay_command());
    println!("ok");
    Ok(())
}

/// The run's memory limit and what the nodes evicted.
fn memory_line(report: &Report) -> String {
    match report.memory {
        None => "no maxmemory".to_string(),
        Some(m) => format!(
            "maxmemory {} KiB {:?}: {} keys evicted, {} copies refused",
            m.maxmemory_bytes / 1024,
            m.eviction,
            report.evictions,
            report.puts_refused
        ),
    }
}

fn per_node_s(report: &Report) -> f64 {
    report.datagrams as f64 / report.config.nodes as f64 / (report.virtual_ms.max(1) as f64 / 1_000.0)
}

fn peer_per_node_s(report: &Report) -> f64 {
    report.peer_messages as f64 / report.config.nodes as f64 / (report.virtual_ms.max(1) as f64 / 1_000.0)
}

/// What a sweep adds up over its seeds.
#[derive(Default)]
struct Totals {
    by_kind: BTreeMap<Kind, usize>,
    converged: Vec<u64>,
    unconverged: usize,
    rates: Vec<f64>,
    peer_rates: Vec<f64>,
    peer_bytes: u64,
    ops: usize,
    unknown: usize,
    evictions: u64,
    refused: u64,
    limited: usize,
    big: usize,
    incrs: usize,
    appends: usize,
    bursts: usize,
    failing: Vec<Report>,
    locks: LockSummary,
}

impl Totals {
    /// Add one seed's report.
    fn absorb(&mut self, report: Report) {
        match report.converged_after_ms {
            Some(ms) => self.converged.push(ms),
            None => self.unconverged += 1,
        }
        self.rates.push(per_node_s(&report));
        self.peer_rates.push(peer_per_node_s(&report));
        self.peer_bytes += report.peer_bytes;
        self.ops += report.ops;
        self.unknown += report.unknown_ops;
        self.evictions += report.evictions;
        self.refused += report.puts_refused;
        self.limited += usize::from(report.memory.is_some());
        self.big += report.mix.big_sets;
        self.incrs += report.mix.incrs;
        self.appends += report.mix.appends;
        self.bursts += report.mix.burst_sets;
        self.locks.absorb(&report.locks);
        for (kind, n) in &report.counts {
            *self.by_kind.entry(*kind).or_default() += n;
        }
        if !report.passed() {
            self.failing.push(report);
        }
    }
}

fn sweep(args: &Args, count: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut t = Totals {
        locks: LockSummary {
            scenario: format!("{} ({} nodes, {})", args.scenario, args.nodes, mode_name(args.lock_mode)),
            runs: 0,
            ..LockSummary::default()
        },
        ..Totals::default()
    };
    let mut stderr = std::io::stderr();
    for (k, seed) in (args.first..args.first + count).enumerate() {
        t.absorb(run(config(args, seed), Trace::default()));
        let _ = write!(stderr, "\rseed {}/{count}  failing {}  ", k + 1, t.failing.len());
    }
    let _ = writeln!(stderr);
    print_sweep(args, count, started.elapsed().as_secs_f64(), &mut t);
    anyhow::ensure!(t.failing.is_empty(), "{} seeds failed", t.failing.len());
    Ok(())
}

/// Print a sweep's summary: what ran, how it converged, the traffic and workload, the checkers' findings, and a
/// replay command for every failing seed.
fn print_sweep(args: &Args, count: u64, wall_s: f64, t: &mut Totals) {
    t.converged.sort_unstable();
    let converged = &t.converged;
    let pct = |p: usize| converged.get((converged.len() * p / 100).min(converged.len().saturating_sub(1)));
    println!(
        "== shoal-sim sweep: {} nodes, {} s safety + {} s bound, scenario {}, lock mode {}, workload {}",
        args.nodes,
        args.duration,
        args.bound,
        args.scenario,
        mode_name(args.lock_mode),
        args.workload.name()
    );
    println!("seeds run            {count} ({}..={})", args.first, args.first + count - 1);
    println!("seeds failing        {}", t.failing.len());
    println!("wall time            {wall_s:.1} s ({:.0} seeds/min)", count as f64 * 60.0 / wall_s.max(1e-9));
    let show = |v: Option<&u64>| v.map_or("-".to_string(), |ms| format!("{ms} ms"));
    println!(
        "convergence          p50 {}  p99 {}  max {}  (not converged: {})",
        show(pct(50)),
        show(pct(99)),
        show(converged.last()),
        t.unconverged
    );
    let mean_rate = t.rates.iter().sum::<f64>() / t.rates.len().max(1) as f64;
    println!("datagrams/node/s     mean {mean_rate:.1}");
    let mean_peer = t.peer_rates.iter().sum::<f64>() / t.peer_rates.len().max(1) as f64;
    println!("peer msgs/node/s     mean {mean_peer:.1}  ({:.1} MB in all)", t.peer_bytes as f64 / 1e6);
    println!("client calls         {} ({} with unknown outcome)", t.ops, t.unknown);
    println!(
        "workload             {} ({} of {count} seeds under maxmemory; {} keys evicted, {} copies refused, {} large \
         values, {} INCRBY, {} APPEND, {} burst SETs)",
        args.workload.name(),
        t.limited,
        t.evictions,
        t.refused,
        t.big,
        t.incrs,
        t.appends,
        t.bursts
    );
    println!("locks                {}", lock_line(&t.locks));
    let failures: Vec<_> = t.by_kind.iter().filter(|(k, _)| !k.is_anomaly()).collect();
    println!("violations by kind   {}", if failures.is_empty() { "none" } else { "" });
    for (kind, n) in failures {
        println!("  {kind:<20} {n}");
    }
    for (kind, n) in t.by_kind.iter().filter(|(k, _)| k.is_anomaly()) {
        println!("anomaly (allowed)    {kind} {n}");
    }
    if args.lock_table {
        print!("{}", markdown_table(std::slice::from_ref(&t.locks)));
    }
    for report in &t.failing {
        let first = report.violations.first().map(|v| v.to_string()).unwrap_or_default();
        println!("FAILED seed {}: {first}\n  replay: {}", report.config.seed, report.replay_command());
    }
}
