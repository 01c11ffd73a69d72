//! Ring balance and movement, measured against the naive scheme (raw crc32 of "name#i") in the same run.
//!
//! Run: `cargo run --release --example ring_spread [keys] [clusters]` (defaults 1000000 and 200).
//! Part 1 places `keys` keys ("key:0", "key:1", ...) on a 10-node ring ("node-0".."node-9"), each at its
//! Redis Cluster slot's point (`core::slots`), and prints the most loaded node over the mean, and the share of
//! keys whose owner changes when node-10 joins or node-9 leaves, against the ideal 1/N; the naive scheme places
//! keys at crc32(key). Part 2 measures, for `clusters` differently named 10-node clusters per vnode count
//! (one name set can be lucky or unlucky), the exact arc shares ("mixed"), the share of the 16384 slots each
//! node is the first owner of ("slots": what keys get), and the naive scheme's arc shares.

use std::collections::BTreeMap;
use std::time::Instant;

use shoal::core::ring::{key_hash, Ring};
use shoal::core::slots::{slot_ranges, SLOTS};

const NODES: usize = 10;
const TARGET: f64 = 1.10;

/// The scheme `core::ring` warns about: 32-bit positions, crc32 of "name#i", keys at crc32(key).
struct NaiveRing {
    tokens: Vec<(u32, usize)>,
}

impl NaiveRing {
    fn new(names: &[String], vnodes: usize) -> NaiveRing {
        let mut tokens: Vec<(u32, usize)> = names
            .iter()
            .enumerate()
            .flat_map(|(m, name)| (0..vnodes).map(move |i| (crc32fast::hash(format!("{name}#{i}").as_bytes()), m)))
            .collect();
        tokens.sort_unstable();
        NaiveRing { tokens }
    }

    fn primary(&self, key: &[u8]) -> usize {
        let position = crc32fast::hash(key);
        let i = self.tokens.partition_point(|t| t.0 < position);
        self.tokens[i % self.tokens.len()].1
    }

    fn shares(&self, members: usize) -> Vec<f64> {
        let mut shares = vec![0.0; members];
        for (i, &(position, member)) in self.tokens.iter().enumerate() {
            let previous = self.tokens[(i + self.tokens.len() - 1) % self.tokens.len()].0;
            shares[member] += f64::from(position.wrapping_sub(previous)) / 2f64.powi(32);
        }
        shares
    }
}

fn names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i}")).collect()
}

fn max_over_mean(counts: &[f64]) -> f64 {
    let mean = counts.iter().sum::<f64>() / counts.len() as f64;
    counts.iter().cloned().fold(0.0, f64::max) / mean
}

/// Fraction of keys whose owner (as a member name) differs between two owner functions.
fn moved(keys: &[Vec<u8>], before: impl Fn(&[u8]) -> String, after: impl Fn(&[u8]) -> String) -> f64 {
    keys.iter().filter(|k| before(k) != after(k)).count() as f64 / keys.len() as f64
}

fn report_headline(keys: &[Vec<u8>], vnodes: usize) {
    let ten = names("node-", NODES);
    let eleven = names("node-", NODES + 1);
    let nine = names("node-", NODES - 1);
    let started = Instant::now();
    let ring = Ring::new(&ten, vnodes);
    let build_us = started.elapsed().as_micros();
    let grown = Ring::new(&eleven, vnodes);
    let shrunk = Ring::new(&nine, vnodes);
    let owner = |r: &Ring, k: &[u8]| r.primary(k).unwrap_or_default().to_owned();

    let mut counts = BTreeMap::<String, f64>::new();
    for key in keys {
        *counts.entry(owner(&ring, key)).or_default() += 1.0;
    }
    let spread = max_over_mean(&counts.values().cloned().collect::<Vec<_>>());
    let join = moved(keys, |k| owner(&ring, k), |k| owner(&grown, k));
    let leave = moved(keys, |k| owner(&ring, k), |k| owner(&shrunk, k));
    let replicas = |r: &Ring, k: &[u8]| r.preference_list(k, 3).join(",");
    let join_n3 = moved(keys, |k| replicas(&ring, k), |k| replicas(&grown, k));

    let (naive, naive_grown, naive_shrunk) =
        (NaiveRing::new(&ten, vnodes), NaiveRing::new(&eleven, vnodes), NaiveRing::new(&nine, vnodes));
    let mut naive_counts = vec![0.0; NODES];
    for key in keys {
        naive_counts[naive.primary(key)] += 1.0;
    }
    let naive_spread = max_over_mean(&naive_counts);
    let naive_owner = |r: &NaiveRing, k: &[u8]| r.primary(k).to_string();
    let naive_join = moved(keys, |k| naive_owner(&naive, k), |k| naive_owner(&naive_grown, k));
    let naive_leave = moved(keys, |k| naive_owner(&naive, k), |k| naive_owner(&naive_shrunk, k));

    let (ideal_join, ideal_leave) = (1.0 / (NODES + 1) as f64, 1.0 / NODES as f64);
    println!("V={vnodes:<5} ring built in {build_us} us ({} tokens)", ring.arcs().len());
    println!(
        "  mixed: spread max/mean {spread:.3}  join moved {join:.4} ({:.3}x of 1/{})  leave moved {leave:.4} \
         ({:.3}x of 1/{NODES})  replica sets changed on join (n=3) {join_n3:.4}",
        join / ideal_join,
        NODES + 1,
        leave / ideal_leave,
    );
    println!(
        "  naive: spread max/mean {naive_spread:.3}  join moved {naive_join:.4} ({:.3}x)  leave moved {naive_leave:.4} \
         ({:.3}x)",
        naive_join / ideal_join,
        naive_leave / ideal_leave,
    );
}

/// Exact shares of each member's arcs on the real ring.
fn exact_spread(ring: &Ring) -> f64 {
    let mut shares = BTreeMap::<&str, f64>::new();
    for arc in ring.arcs() {
        *shares.entry(ring.owners_of_range(&arc, 1)[0]).or_default() += arc.fraction();
    }
    max_over_mean(&shares.values().cloned().collect::<Vec<_>>())
}

/// Shares of the 16384 slots per first owner (every key of a slot goes where its slot goes).
fn slot_spread(ring: &Ring) -> f64 {
    let mut shares = vec![0.0; ring.members().len()];
    for r in slot_ranges(ring, 1) {
        shares[r.owners[0] as usize] += f64::from(r.end - r.start + 1) / SLOTS as f64;
    }
    max_over_mean(&shares)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report_sweep(clusters: usize) {
    println!("\n{clusters} clusters of {NODES} names (\"c<k>-shoal-<i>\"), exact arc shares, max/mean:");
    println!("  {:<6} {:<6} {:>7} {:>7} {:>7} {:>10}", "V", "scheme", "median", "p90", "worst", "<=1.10");
    for vnodes in [128, 256, 512, 1024, 2048] {
        for scheme in ["mixed", "slots", "naive"] {
            let mut spreads: Vec<f64> = (0..clusters)
                .map(|c| {
                    let members = names(&format!("c{c}-shoal-"), NODES);
                    match scheme {
                        "mixed" => exact_spread(&Ring::new(&members, vnodes)),
                        "slots" => slot_spread(&Ring::new(&members, vnodes)),
                        _ => max_over_mean(&NaiveRing::new(&members, vnodes).shares(NODES)),
                    }
                })
                .collect();
            spreads.sort_by(f64::total_cmp);
            let within = spreads.iter().filter(|&&s| s <= TARGET).count() as f64 / clusters as f64;
            println!(
                "  {vnodes:<6} {scheme:<6} {:>7.3} {:>7.3} {:>7.3} {:>9.0}%",
                percentile(&spreads, 0.5),
                percentile(&spreads, 0.9),
                spreads[clusters - 1],
                within * 100.0,
            );
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let key_count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let clusters: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200).max(1);
    let keys: Vec<Vec<u8>> = (0..key_count).map(|i| format!("key:{i}").into_bytes()).collect();
    // Keys sit at their slot's point; check that the slots of the keys cover the ring evenly.
    let low_half = keys.iter().filter(|k| key_hash(k) < u64::MAX / 2).count() as f64 / key_count as f64;
    println!("{key_count} keys, {NODES} nodes; keys in the lower half of the ring: {low_half:.4}\n");
    for vnodes in [256, 1024] {
        report_headline(&keys, vnodes);
    }
    report_sweep(clusters);
}
