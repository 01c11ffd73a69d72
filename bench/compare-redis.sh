#!/usr/bin/env bash
# Shoal vs redis-server under the same redis-benchmark commands, alternating, on loopback.
# Prints ops/s, p50 and p99 for both and the ratio Shoal/Redis, then resident memory after loading 1M keys.
# Usage: bench/compare-redis.sh [rounds]   (each row is the median of `rounds` alternating runs; default 1)
#        SETTLE=0 bench/compare-redis.sh    (3-node section without waiting for the ring to settle)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-1}
N=${N:-200000}
KEYS_FOR_MEMORY=${KEYS_FOR_MEMORY:-1000000}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi
cargo build --release -q

REDIS_PORT=${REDIS_PORT:-16379}
SHOAL_PORT=${SHOAL_PORT:-16380}
WORK=$(mktemp -d)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
RUST_LOG=warn ./target/release/shoal --listen "127.0.0.1:$SHOAL_PORT" ${SHOAL_ARGS:-} >"$WORK/shoal.log" 2>&1 &
SHOAL_PID=$!
cleanup() { kill "$REDIS_PID" "$SHOAL_PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
for port in "$REDIS_PORT" "$SHOAL_PORT"; do
  for _ in $(seq 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
done

# run PORT CLIENTS PIPELINE -> lines "test rps p50 p99"
run() {
  redis-benchmark -p "$1" -t set,get -n "$N" -r 100000 -d 100 -c "$2" -P "$3" --csv 2>/dev/null \
    | tr -d '"' | awk -F, 'NR>1 {print $1, $2, $5, $7}'
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf "%-6s %-10s | %12s %8s %8s | %12s %8s %8s | %7s %7s\n" \
  test "clients" "redis ops/s" "p50 ms" "p99 ms" "shoal ops/s" "p50 ms" "p99 ms" "ops x" "p99 x"
for cfg in "50 1" "50 16" "1 1"; do
  set -- $cfg
  C=$1; P=$2
  : >"$WORK/r.txt"; : >"$WORK/s.txt"
  for _ in $(seq "$ROUNDS"); do
    run "$REDIS_PORT" "$C" "$P" >>"$WORK/r.txt"
    run "$SHOAL_PORT" "$C" "$P" >>"$WORK/s.txt"
  done
  for t in SET GET; do
    r_ops=$(awk -v t=$t '$1==t {print $2}' "$WORK/r.txt" | median)
    r_p50=$(awk -v t=$t '$1==t {print $3}' "$WORK/r.txt" | median)
    r_p99=$(awk -v t=$t '$1==t {print $4}' "$WORK/r.txt" | median)
    s_ops=$(awk -v t=$t '$1==t {print $2}' "$WORK/s.txt" | median)
    s_p50=$(awk -v t=$t '$1==t {print $3}' "$WORK/s.txt" | median)
    s_p99=$(awk -v t=$t '$1==t {print $4}' "$WORK/s.txt" | median)
    awk -v t=$t -v c="-c $C -P $P" -v ro="$r_ops" -v r5="$r_p50" -v r9="$r_p99" -v so="$s_ops" -v s5="$s_p50" -v s9="$s_p99" \
      'BEGIN { printf "%-6s %-10s | %12.0f %8.3f %8.3f | %12.0f %8.3f %8.3f | %7.2f %7.2f\n", t, c, ro, r5, r9, so, s5, s9, so/ro, (r9>0 ? s9/r9 : 0) }'
  done
done

# A 3-node Shoal cluster (N=3, write QUORUM, read ONE) with the clients spread over its nodes, next to the one
# redis-server under the same total load: three redis-benchmark runs at once, ~50 clients in all.
CLUSTER_PORTS=(16381 16382 16383)
GOSSIP_PORTS=(17946 17947 17948)
CLUSTER_PIDS=()
for i in 0 1 2; do
  seed=()
  [ "$i" -gt 0 ] && seed=(--seed "127.0.0.1:${GOSSIP_PORTS[0]}")
  RUST_LOG=warn ./target/release/shoal --name "bench$i" --listen "127.0.0.1:${CLUSTER_PORTS[$i]}" \
    --cluster "127.0.0.1:${GOSSIP_PORTS[$i]}" "${seed[@]}" >"$WORK/cluster$i.log" 2>&1 &
  CLUSTER_PIDS+=($!)
done
cleanup() { kill "$REDIS_PID" "$SHOAL_PID" "${CLUSTER_PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
for port in "${CLUSTER_PORTS[@]}"; do
  for _ in $(seq 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
done
for _ in $(seq 150); do
  [ "$(redis-cli -p "${CLUSTER_PORTS[0]}" INFO cluster | tr -d '\r' | awk -F: '/^ring_members/ {print $2}')" = 3 ] && break
  sleep 0.1
done
# Measure the steady state: until its ring has been stable for two anti-entropy periods (10 s by default), a node
# reads the other owners before every write (it may have missed writes while the ring changed), which roughly
# halves write throughput. SETTLE=0 skips the wait and measures the cluster just formed.
if [ "${SETTLE:-1}" = 1 ]; then
  for _ in $(seq 300); do
    settled=0
    for port in "${CLUSTER_PORTS[@]}"; do
      [ "$(redis-cli -p "$port" INFO cluster | tr -d '\r' | awk -F: '/^ring_settled/ {print $2}')" = 1 ] && settled=$((settled + 1))
    done
    [ "$settled" = 3 ] && break
    sleep 0.1
  done
fi
# spread P -> lines "test rps p99" summed (ops/s) and maxed (p99) over the three nodes
spread() {
  local pids=()
  for port in "${CLUSTER_PORTS[@]}"; do
    redis-benchmark -p "$port" -t set,get -n $((N / 3)) -r 100000 -d 100 -c 17 -P "$1" --csv 2>/dev/null \
      | tr -d '"' | awk -F, 'NR>1 {print $1, $2, $7}' >"$WORK/spread.$port" &
    pids+=($!)
  done
  wait "${pids[@]}"
  cat "$WORK"/spread.* | awk '{ops[$1]+=$2; if ($3>p99[$1]) p99[$1]=$3} END {for (t in ops) print t, ops[t], p99[t]}'
}
echo
echo "3-node cluster (N=3, write QUORUM, read ONE, 3 x 17 clients spread over the nodes) vs one redis-server (-c 50)"
printf "%-6s %-10s | %12s %8s | %12s %8s | %7s %7s\n" test pipeline "redis ops/s" "p99 ms" "cluster ops/s" "p99 ms" "ops x" "p99 x"
for P in 1 16; do
  : >"$WORK/r.txt"; : >"$WORK/c.txt"
  for _ in $(seq "$ROUNDS"); do
    run "$REDIS_PORT" 50 "$P" | awk '{print $1, $2, $4}' >>"$WORK/r.txt"
    spread "$P" >>"$WORK/c.txt"
  done
  for t in SET GET; do
    r_ops=$(awk -v t=$t '$1==t {print $2}' "$WORK/r.txt" | median)
    r_p99=$(awk -v t=$t '$1==t {print $3}' "$WORK/r.txt" | median)
    c_ops=$(awk -v t=$t '$1==t {print $2}' "$WORK/c.txt" | median)
    c_p99=$(awk -v t=$t '$1==t {print $3}' "$WORK/c.txt" | median)
    awk -v t=$t -v p="-P $P" -v ro="$r_ops" -v r9="$r_p99" -v co="$c_ops" -v c9="$c_p99" \
      'BEGIN { printf "%-6s %-10s | %12.0f %8.3f | %12.0f %8.3f | %7.2f %7.2f\n", t, p, ro, r9, co, c9, co/ro, (r9>0 ? c9/r9 : 0) }'
  done
done
kill "${CLUSTER_PIDS[@]}" 2>/dev/null || true

# Resident memory after loading the same keys into both (key:0 .. key:N-1, 100-byte values).
gen() { python3 -c "
import sys
v = 'x' * 100
out = sys.stdout
for i in range($KEYS_FOR_MEMORY):
    k = 'key:%d' % i
    out.write('*3\r\n\$3\r\nSET\r\n\$%d\r\n%s\r\n\$100\r\n%s\r\n' % (len(k), k, v))
"; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
for port in "$REDIS_PORT" "$SHOAL_PORT"; do redis-cli -p "$port" FLUSHALL >/dev/null; done
r_before=$(rss_mb "$REDIS_PID"); s_before=$(rss_mb "$SHOAL_PID")
gen | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
gen | redis-cli -p "$SHOAL_PORT" --pipe >/dev/null
r_keys=$(redis-cli -p "$REDIS_PORT" DBSIZE); s_keys=$(redis-cli -p "$SHOAL_PORT" DBSIZE)
r_rss=$(rss_mb "$REDIS_PID"); s_rss=$(rss_mb "$SHOAL_PID")
echo
echo "memory after loading $KEYS_FOR_MEMORY keys of 100 bytes (RSS MiB; after FLUSHALL before load: redis $r_before, shoal $s_before)"
awk -v rk="$r_keys" -v sk="$s_keys" -v r="$r_rss" -v s="$s_rss" \
  'BEGIN { printf "redis %s keys %.1f MiB | shoal %s keys %.1f MiB | ratio %.2f\n", rk, r, sk, s, s/r }'
