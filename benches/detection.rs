//! Failure-detection benchmark on loopback with real `shoal` processes (release build).
//!
//! For each configuration (our LAN profile, and foca's `Config::new_lan` timings for comparison) and each
//! cluster size K: start K nodes, time the join, then repeat: wait a random moment, SIGKILL one node, poll every
//! survivor's SHOAL.MEMBERS every ~20 ms until each shows it `down`, restart it on the same addresses and wait
//! until every node sees it alive under a higher incarnation. Prints p50/p99/max of the detection time (per
//! survivor, and until the last survivor) and of the join and rejoin times. Then a false-down run: K = 10 with
//! `--gossip-loss-percent 5` on every node, polled for a fixed time, counting any `down` (or any incarnation
//! bump, which means someone declared a live node down and it refuted) of a node that is running.
//!
//! `cargo bench --bench detection -- [--trials N] [--loss-secs S] [--loss-percent P] [--sizes 5,10] [--skip-new-lan]`
//! (`SHOAL_BENCH_LOG=info` shows the nodes' membership events on stderr.)
//! Every wait is bounded; every process is killed when the benchmark exits (or panics).

#[path = "../tests/common/members.rs"]
mod members;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use members::{free_addr, Client, Process, View};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const POLL: Duration = Duration::from_millis(20);
/// Longest wait for a join, a detection or a rejoin before the trial is reported as failed.
const WAIT_MAX: Duration = Duration::from_secs(30);

/// A named set of extra flags for every node.
struct Profile {
    name: &'static str,
    flags: Vec<String>,
}

struct Cluster {
    bin: &'static Path,
    flags: Vec<String>,
    /// (client address, gossip address) per node; node i is named `n{i}`.
    addrs: Vec<(SocketAddr, SocketAddr)>,
    procs: Vec<Option<Process>>,
    clients: Vec<Client>,
}

impl Cluster {
    fn start(k: usize, flags: &[String]) -> Cluster {
        let addrs: Vec<(SocketAddr, SocketAddr)> = (0..k).map(|_| (free_addr(), free_addr())).collect();
        let clients = addrs.iter().map(|(c, _)| Client::new(*c)).collect();
        let mut cluster = Cluster {
            bin: Path::new(env!("CARGO_BIN_EXE_shoal")),
            flags: flags.to_vec(),
            addrs,
            procs: Vec::new(),
            clients,
        };
        cluster.procs = (0..k).map(|i| Some(cluster.spawn(i))).collect();
        cluster
    }

    fn spawn(&self, i: usize) -> Process {
        let (listen, gossip) = self.addrs[i];
        // Everyone seeds through nodes 0 and 1 (a node ignores itself as a seed), so any node may be the victim.
        let mut args = vec![
            "--name".to_string(),
            format!("n{i}"),
            "--listen".into(),
            listen.to_string(),
            "--cluster".into(),
            gossip.to_string(),
        ];
        for (_, seed) in self.addrs.iter().take(2) {
            args.extend(["--seed".to_string(), seed.to_string()]);
        }
        args.extend(self.flags.iter().cloned());
        let log = std::env::var("SHOAL_BENCH_LOG").unwrap_or_else(|_| "warn".into());
        Process::spawn(self.bin, &args, &log)
    }

    fn k(&self) -> usize {
        self.addrs.len()
    }

    /// Wait until every running node sees every running node alive, and `check` holds; returns the time taken.
    fn wait_all(&mut self, check: impl Fn(&View) -> bool) -> Option<Duration> {
        let started = Instant::now();
        let running: Vec<usize> = (0..self.k()).filter(|i| self.procs[*i].is_some()).collect();
        let want = running.len();
        while started.elapsed() < WAIT_MAX {
            let ok = running.iter().all(|&i| self.clients[i].view().is_some_and(|v| v.alive() == want && check(&v)));
            if ok {
                return Some(started.elapsed());
            }
            std::thread::sleep(POLL);
        }
        None
    }

    /// SIGKILL node `victim`; return each survivor's detection time (None if it did not see it down in time).
    fn kill_and_detect(&mut self, victim: usize) -> Vec<Option<Duration>> {
        let name = format!("n{victim}");
        self.procs[victim].take().expect("victim running").kill9();
        let killed = Instant::now();
        let survivors: Vec<usize> = (0..self.k()).filter(|i| *i != victim).collect();
        let mut seen: HashMap<usize, Duration> = HashMap::new();
        while seen.len() < survivors.len() && killed.elapsed() < WAIT_MAX {
            for &i in &survivors {
                if !seen.contains_key(&i) && self.clients[i].view().is_some_and(|v| v.is_down(&name)) {
                    seen.insert(i, killed.elapsed());
                }
            }
            std::thread::sleep(POLL);
        }
        survivors.iter().map(|i| seen.get(i).copied()).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in self.procs.iter_mut().filter_map(Option::take) {
            p.kill9();
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn fmt_stats(samples: &mut [Duration]) -> String {
    samples.sort();
    let ms = |d: Duration| d.as_millis();
    format!(
        "{:>6} {:>6} {:>6}",
        ms(percentile(samples, 50.0)),
        ms(percentile(samples, 99.0)),
        ms(samples.last().copied().unwrap_or_default())
    )
}

struct Row {
    profile: &'static str,
    k: usize,
    trials: usize,
    failed: usize,
    join: Duration,
    per_survivor: Vec<Duration>,
    last_survivor: Vec<Duration>,
    rejoin: Vec<Duration>,
}

fn detection(profile: &Profile, k: usize, trials: usize, rng: &mut StdRng) -> Row {
    let mut cluster = Cluster::start(k, &profile.flags);
    let join = cluster.wait_all(|_| true).expect("the cluster forms");
    let mut row = Row {
        profile: profile.name,
        k,
        trials,
        failed: 0,
        join,
        per_survivor: Vec::new(),
        last_survivor: Vec::new(),
        rejoin: Vec::new(),
    };
    for trial in 0..trials {
        // A random moment relative to the probe cycle: up to 2 s after the cluster settled.
        std::thread::sleep(Duration::from_millis(rng.random_range(0..2_000)));
        let victim = rng.random_range(0..k);
        let name = format!("n{victim}");
        let before = cluster.clients[(victim + 1) % k].view().and_then(|v| v.get(&name).map(|m| m.incarnation));
        let times = cluster.kill_and_detect(victim);
        let missed = times.iter().filter(|t| t.is_none()).count();
        let got: Vec<Duration> = times.into_iter().flatten().collect();
        if missed > 0 {
            row.failed += 1;
            eprintln!("  trial {trial}: {missed} survivors did not see n{victim} down within {WAIT_MAX:?}");
        } else {
            row.last_survivor.push(*got.iter().max().expect("k > 1"));
        }
        row.per_survivor.extend(got);
        cluster.procs[victim] = Some(cluster.spawn(victim));
        let higher = |v: &View| v.get(&name).is_some_and(|m| Some(m.incarnation) > before);
        match cluster.wait_all(higher) {
            Some(d) => row.rejoin.push(d),
            None => panic!("n{victim} did not rejoin within {WAIT_MAX:?}"),
        }
    }
    row
}

/// Run K nodes with `loss_percent` outgoing loss on each for `duration`; count downs and renewals of live nodes.
fn false_downs(k: usize, loss_percent: u8, duration: Duration, profile: &Profile) -> (usize, usize, usize, Duration) {
    let mut flags = profile.flags.clone();
    flags.extend(["--gossip-loss-percent".to_string(), loss_percent.to_string()]);
    let mut cluster = Cluster::start(k, &flags);
    cluster.wait_all(|_| true).expect("the cluster forms under loss");
    let mut last: HashMap<(usize, String), (String, u64)> = HashMap::new();
    let (mut downs, mut suspects, mut renewals) = (0, 0, 0);
    let started = Instant::now();
    while started.elapsed() < duration {
        for i in 0..k {
            let Some(view) = cluster.clients[i].view() else { continue };
            for m in view.0 {
                let key = (i, m.name.clone());
                let prev = last.insert(key, (m.state.clone(), m.incarnation));
                let changed_state = prev.as_ref().is_none_or(|(s, _)| *s != m.state);
                if changed_state && m.is_down() {
                    downs += 1;
                    eprintln!("  FALSE DOWN at {:?}: n{i} sees {} down", started.elapsed(), m.name);
                }
                if changed_state && m.state == "suspect" {
                    suspects += 1;
                }
                if prev.is_some_and(|(_, inc)| inc != m.incarnation) {
                    renewals += 1;
                    eprintln!("  renewal at {:?}: n{i} sees {} with a new incarnation", started.elapsed(), m.name);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (downs, suspects, renewals, started.elapsed())
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let trials: usize = arg(&args, "--trials").unwrap_or(20);
    let loss_secs: u64 = arg(&args, "--loss-secs").unwrap_or(180);
    let loss_percent: u8 = arg(&args, "--loss-percent").unwrap_or(5);
    let sizes: Vec<usize> = arg::<String>(&args, "--sizes")
        .map(|s| s.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![5, 10]);
    let seed: u64 = arg(&args, "--seed").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64
    });
    let mut rng = StdRng::seed_from_u64(seed);
    let to_flags = |flags: &[&str]| flags.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let ours = Profile { name: "shoal lan", flags: vec![] };
    // foca's Config::new_lan(K) for K <= 10: probe 1 s, rtt 500 ms, suspicion max(1, log10 K) * 4 * 1 s = 4 s.
    let new_lan = Profile {
        name: "foca new_lan",
        flags: to_flags(&["--probe-period-ms", "1000", "--probe-rtt-ms", "500", "--suspect-to-down-ms", "4000"]),
    };
    let mut profiles = vec![&ours];
    if !args.iter().any(|a| a == "--skip-new-lan") {
        profiles.push(&new_lan);
    }
    println!("detection benchmark: seed {seed}, {trials} trials per row, poll every {POLL:?}");
    let mut rows = Vec::new();
    for profile in &profiles {
        for &k in &sizes {
            eprintln!("running {} K={k} ...", profile.name);
            rows.push(detection(profile, k, trials, &mut rng));
        }
    }
    println!();
    println!(
        "| profile      |  K | trials | failed | join ms | detect p50/p99/max ms (per survivor) | detect p50/p99/max ms (last survivor) | rejoin p50/p99/max ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in &mut rows {
        println!(
            "| {:<12} | {:>2} | {:>6} | {:>6} | {:>7} | {} | {} | {} |",
            row.profile,
            row.k,
            row.trials,
            row.failed,
            row.join.as_millis(),
            fmt_stats(&mut row.per_survivor),
            fmt_stats(&mut row.last_survivor),
            fmt_stats(&mut row.rejoin),
        );
    }
    if loss_secs > 0 {
        let k = 10;
        eprintln!("running false-down measurement: K={k}, {loss_percent}% loss, {loss_secs} s ...");
        let (downs, suspects, renewals, took) = false_downs(k, loss_percent, Duration::from_secs(loss_secs), &ours);
        println!();
        println!(
            "false downs (shoal lan, K={k}, {loss_percent}% outgoing gossip loss on every node, {:.0} s): {downs} `down` rows seen \
             for live nodes, {renewals} incarnation changes of live nodes (observer x member; each means the member \
             was declared down somewhere and renewed its identity: a false down the 100 ms poll may not catch), \
             {suspects} suspect transitions",
            took.as_secs_f64()
        );
    }
}
