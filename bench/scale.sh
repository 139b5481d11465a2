#!/usr/bin/env bash
# Scale measurement: a local 3-node cluster hosting PARTITIONS partitions with replication
# factor 3 (3 x PARTITIONS replicas). Prints and writes (bench/results/scale.txt):
#   - time to create the topic until every partition has a leader,
#   - that a record can be produced to every partition,
#   - idle CPU of the three nodes together (utime+stime over IDLE_SECS, % of one core),
#   - resident memory of each node.
# Usage: bench/scale.sh [PARTITIONS] [IDLE_SECS]     (defaults: 1000 60)
# SCRAPE_SECS=N: Prometheus-style scrape of every node's /metrics every N s during the idle
# window (its cost is counted in the idle CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
partitions="${1:-1000}"
idle_secs="${2:-60}"
settle_secs="${SETTLE_SECS:-60}"
source scripts/ensure-deps.sh
source scripts/rocksdb.sh
cargo build --workspace --bins --quiet
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug"
export CAIRN_LOCAL_DIR="$(mktemp -d /tmp/cairn-scale.XXXXXX)"
export CAIRN_LOCAL_TOPICS=""   # no bootstrap topic: only the measured one
trap 'deploy/local-cluster.sh clean >/dev/null 2>&1 || true' EXIT

deploy/local-cluster.sh start >/dev/null
pids=$(cat "$CAIRN_LOCAL_DIR"/node{1,2,3}.pid)
result() { echo "$*" | tee -a "$out"; }
mkdir -p bench/results
out=bench/results/scale.txt
: >"$out"
result "# cairn scale measurement, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"

start=$(date +%s.%N)
"$bin/cairn" topic create scale -p "$partitions" -r 3 --timeout-secs 120 >/dev/null
created=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}')
result "create ${partitions} partitions x RF 3 ($((partitions * 3)) replicas) until every partition has a leader: ${created} s"

start=$(date +%s.%N)
seq 0 $((partitions - 1)) | xargs -P 8 -I{} "$bin/cairn" produce scale -p {} --value "hello-{}" >/dev/null
produced=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}')
ok=0
for p in 0 $((partitions / 2)) $((partitions - 1)); do
  n=$("$bin/cairn" consume scale -p "$p" --json | wc -l)
  [ "$n" -ge 1 ] && ok=$((ok + 1))
done
result "produced one record to each of ${partitions} partitions (CLI, 8 in parallel): ${produced} s; spot-check consume ok on ${ok}/3 partitions"

sleep "$settle_secs"
ticks=$(getconf CLK_TCK)
cpu() { local s=0; for p in $pids; do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$s"; }
scraper=""
if [ -n "${SCRAPE_SECS:-}" ]; then
  (while true; do for id in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:970$id/metrics"; done; sleep "$SCRAPE_SECS"; done) &
  scraper=$!
fi
c0=$(cpu); t0=$(date +%s.%N)
sleep "$idle_secs"
c1=$(cpu); t1=$(date +%s.%N)
if [ -n "$scraper" ]; then kill "$scraper"; fi
scraped=""
if [ -n "${SCRAPE_SECS:-}" ]; then scraped=", /metrics of every node scraped every ${SCRAPE_SECS} s"; fi
pct=$(awk -v c="$((c1 - c0))" -v k="$ticks" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", 100 * c / k / (b - a)}')
result "idle CPU of the 3 nodes together over ${idle_secs} s (after ${settle_secs} s to settle${scraped}): ${pct}% of one core"
for id in 1 2 3; do
  p=$(cat "$CAIRN_LOCAL_DIR/node$id.pid")
  rss=$(awk '/VmRSS/{print $2}' "/proc/$p/status")
  result "node $id resident memory: $((rss / 1024)) MiB"
done
metrics_bytes=$(curl -s http://127.0.0.1:9701/metrics | wc -c)
result "node 1 /metrics: ${metrics_bytes} bytes"
"$bin/cairn" cluster info | awk '/^NODE/,/^$/' | tee -a "$out"
