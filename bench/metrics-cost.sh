#!/usr/bin/env bash
# What collecting metrics costs the produce path: runs `cairn bench produce` against a 3-node
# cluster (127.0.0.1:7851-7853, metrics on 9851-9853, data in /var/tmp/cairn-metrics-cost)
# alternately without and with every node's /metrics scraped every second, and prints
# records/s and latency of each run and the medians side by side.
# Usage: bench/metrics-cost.sh [REPETITIONS (3)] [SECONDS PER RUN (15)] [WINDOW (512)]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/rocksdb.sh
source scripts/rocksdb.sh
# shellcheck source=bench/ab.sh
source bench/ab.sh
reps="${1:-3}"; secs="${2:-15}"; window="${3:-512}"; size=1024
cargo build --quiet --bin cairn-node --bin cairn
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug"
dir=/var/tmp/cairn-metrics-cost
cluster="1=127.0.0.1:7851,2=127.0.0.1:7852,3=127.0.0.1:7853"
brokers="127.0.0.1:7851,127.0.0.1:7852,127.0.0.1:7853"
pids=()
scraper=""
cleanup() {
  [ -n "$scraper" ] && kill "$scraper" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
rm -rf "$dir"; mkdir -p "$dir"
for id in 1 2 3; do
  "$bin/cairn-node" --node-id "$id" --data-dir "$dir/node$id" --initial-cluster "$cluster" \
    --metrics-listen "127.0.0.1:985$id" >"$dir/node$id.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 1 120); do
  if "$bin/cairn" --brokers "$brokers" cluster info --json 2>/dev/null | grep -q '"controller_leader":[1-9]'; then break; fi
  sleep 0.5
done

scrape_loop() {
  while true; do
    for id in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:985$id/metrics"; done
    sleep 1
  done
}

ab_header "metrics cost: window $window, 1 KiB records, $secs s per run, $reps repetitions, scrape every 1 s of all 3 nodes"
out="$dir/results.txt"; : >"$out"
for _ in $(seq 1 "$reps"); do
  ab_run without --brokers "$brokers" | tee -a "$out"
  scrape_loop & scraper=$!
  ab_run scraped --brokers "$brokers" | tee -a "$out"
  kill "$scraper"; wait "$scraper" 2>/dev/null || true; scraper=""
done
ab_compare "$out" without scraped
bytes=$(curl -s http://127.0.0.1:9851/metrics | wc -c)
echo "one node's /metrics: $bytes bytes"
