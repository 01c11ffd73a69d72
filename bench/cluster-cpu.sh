#!/usr/bin/env bash
# CPU per operation of a 3-node Shoal cluster (N=3, write QUORUM, read ONE) under redis-benchmark, with the
# clients spread over the nodes as in compare-redis.sh (3 x 17 clients). Prints ops/s and the CPU time of the
# three node processes together (utime + stime from /proc) per operation, for A/B rounds between two builds.
# Usage: bench/cluster-cpu.sh [BINARY] [PIPELINE] [TESTS]   e.g. bench/cluster-cpu.sh target/release/shoal 16 set,get
#        N=450000 (operations in all, split over the nodes); the ring is left to settle first (about 10 s).
set -uo pipefail
BIN=${1:-target/release/shoal}; P=${2:-16}; TESTS=${3:-set}
N=${N:-450000}
PORTS=(26381 26382 26383); GOSSIP=(27946 27947 27948)
WORK=$(mktemp -d); PIDS=()
for i in 0 1 2; do
  seed=(); [ "$i" -gt 0 ] && seed=(--seed "127.0.0.1:${GOSSIP[0]}")
  RUST_LOG=warn "$BIN" --name "cpu$i" --listen "127.0.0.1:${PORTS[$i]}" --cluster "127.0.0.1:${GOSSIP[$i]}" \
    "${seed[@]}" >"$WORK/node$i.log" 2>&1 &
  PIDS+=($!)
done
trap 'kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
for port in "${PORTS[@]}"; do
  for _ in $(seq 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
done
for _ in $(seq 300); do
  settled=0
  for port in "${PORTS[@]}"; do
    [ "$(redis-cli -p "$port" INFO cluster | tr -d '\r' | awk -F: '/^ring_settled/ {print $2}')" = 1 ] && settled=$((settled + 1))
  done
  [ "$settled" = 3 ] && break
  sleep 0.1
done
cpu_ticks() { local t=0; for pid in "${PIDS[@]}"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo "$t"; }
for t in ${TESTS//,/ }; do
  before=$(cpu_ticks); clients=()
  for port in "${PORTS[@]}"; do
    redis-benchmark -p "$port" -t "$t" -n $((N / 3)) -r 100000 -d 100 -c 17 -P "$P" --csv 2>/dev/null \
      | tr -d '"' | awk -F, 'NR>1 {print $2}' >"$WORK/ops.$port" &
    clients+=($!)
  done
  wait "${clients[@]}"
  after=$(cpu_ticks)
  ops=$(cat "$WORK"/ops.* | awk '{s += $1} END {print s}')
  awk -v t="$t" -v p="$P" -v ops="$ops" -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n=$(((N / 3) * 3)) \
    'BEGIN {printf "%s -P%s  ops/s %.0f  cpu_us/op %.2f\n", toupper(t), p, ops, ticks / hz * 1e6 / n}'
done
