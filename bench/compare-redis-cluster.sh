#!/usr/bin/env bash
# Shoal's 3 nodes (N=3, write QUORUM, read ONE) against Redis Cluster with 3 masters, and with 3 masters + 3
# replicas, in one run on loopback: every cluster is driven by `redis-benchmark --cluster -c 51`, which reads the
# slot map and sends each key to its slot's master, at -P 1 and -P 16, SET and GET. Prints ops/s and p99 per
# cluster and the ratios Shoal / Redis. Every process is started here and stopped by its PID.
# Usage: bench/compare-redis-cluster.sh [requests]   (default 1000000 per run at -P 1, four times that at -P 16)
# In --cluster mode redis-benchmark runs one thread per master and notices the end of a run on its 250 ms
# throughput timer, so a run's time is rounded up to a multiple of 250 ms: runs must last seconds, not 0.25 s.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi
cargo build --release -q

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_ping() { for _ in $(seq 100); do redis-cli -p "$1" PING >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

# Shoal: 3 nodes joined through the first; wait until every node's CLUSTER SLOTS is the same 3-member map and
# its ring has settled (a ring just changed reads the other owners before each write).
SHOAL_PORTS=(16391 16392 16393)
for i in 0 1 2; do
  seed=()
  [ "$i" -gt 0 ] && seed=(--seed "127.0.0.1:17391")
  RUST_LOG=warn ./target/release/shoal --name "bench$i" --listen "127.0.0.1:${SHOAL_PORTS[$i]}" \
    --cluster "127.0.0.1:$((17391 + i))" "${seed[@]}" >"$WORK/shoal$i.log" 2>&1 &
  PIDS+=($!)
done
for port in "${SHOAL_PORTS[@]}"; do wait_ping "$port"; done
for _ in $(seq 600); do
  ok=0
  for port in "${SHOAL_PORTS[@]}"; do
    info=$(redis-cli -p "$port" INFO cluster | tr -d '\r')
    [ "$(awk -F: '/^ring_members/ {print $2}' <<<"$info")" = 3 ] \
      && [ "$(awk -F: '/^ring_settled/ {print $2}' <<<"$info")" = 1 ] && ok=$((ok + 1))
  done
  a=$(redis-cli -p "${SHOAL_PORTS[0]}" CLUSTER SLOTS | md5sum)
  b=$(redis-cli -p "${SHOAL_PORTS[1]}" CLUSTER SLOTS | md5sum)
  c=$(redis-cli -p "${SHOAL_PORTS[2]}" CLUSTER SLOTS | md5sum)
  [ "$ok" = 3 ] && [ "$a" = "$b" ] && [ "$b" = "$c" ] && break
  sleep 0.1
done

# redis_cluster NAME FIRST_PORT COUNT REPLICAS: redis-server --cluster-enabled on COUNT ports, joined by
# redis-cli --cluster create; waits for cluster_state:ok on every node.
redis_cluster() {
  local name=$1 first=$2 count=$3 replicas=$4 addrs=()
  for i in $(seq 0 $((count - 1))); do
    local port=$((first + i)) dir="$WORK/$name$i"
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" \
      --save '' --appendonly no --dir "$dir" >"$dir/log" 2>&1 &
    PIDS+=($!)
    addrs+=("127.0.0.1:$port")
  done
  for i in $(seq 0 $((count - 1))); do wait_ping $((first + i)); done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$replicas" --cluster-yes >"$WORK/$name.create" 2>&1
  for _ in $(seq 300); do
    local ok=0
    for i in $(seq 0 $((count - 1))); do
      redis-cli -p $((first + i)) CLUSTER INFO | tr -d '\r' | grep -q '^cluster_state:ok' && ok=$((ok + 1))
    done
    [ "$ok" = "$count" ] && return 0
    sleep 0.1
  done
  echo "$name did not reach cluster_state:ok" >&2
  return 1
}
redis_cluster r3 16401 3 0
redis_cluster r33 16411 6 1

# run PORT PIPELINE -> lines "test rps p99"
run() {
  local n=$N
  [ "$2" -gt 1 ] && n=$((N * 4))
  timeout 300 redis-benchmark --cluster -p "$1" -t set,get -n "$n" -r 100000 -d 100 -c 51 -P "$2" --csv 2>/dev/null \
    | tr -d '"' | awk -F, '$1=="SET" || $1=="GET" {print $1, $2, $7}'
}

echo "redis-benchmark --cluster -c 51 -n $N (-P 1) / $((N * 4)) (-P 16) -r 100000 -d 100; Shoal 3 nodes (N=3, write QUORUM, read ONE)"
printf "%-4s %-6s | %12s %8s | %12s %8s | %12s %8s | %8s %8s\n" test "" "shoal ops/s" "p99 ms" "r3 ops/s" "p99 ms" \
  "r3+3 ops/s" "p99 ms" "x r3" "x r3+3"
for P in 1 16; do
  run "${SHOAL_PORTS[0]}" "$P" >"$WORK/s.txt"
  run 16401 "$P" >"$WORK/r3.txt"
  run 16411 "$P" >"$WORK/r33.txt"
  for t in SET GET; do
    read -r so s9 < <(awk -v t=$t '$1==t {print $2, $3}' "$WORK/s.txt")
    read -r ro r9 < <(awk -v t=$t '$1==t {print $2, $3}' "$WORK/r3.txt")
    read -r qo q9 < <(awk -v t=$t '$1==t {print $2, $3}' "$WORK/r33.txt")
    awk -v t=$t -v p="-P $P" -v so="$so" -v s9="$s9" -v ro="$ro" -v r9="$r9" -v qo="$qo" -v q9="$q9" \
      'BEGIN { printf "%-4s %-6s | %12.0f %8.3f | %12.0f %8.3f | %12.0f %8.3f | %8.2f %8.2f\n", t, p, so, s9, ro, r9, qo, q9, so/ro, so/qo }'
  done
done
