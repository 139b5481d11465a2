#!/usr/bin/env bash
# What TLS costs the produce path: two 3-node clusters side by side, one plaintext
# (127.0.0.1:7861-7863) and one with TLS on both listeners and between nodes (7871-7873,
# development certificates from `cairn certs init`), data in /var/tmp/cairn-tls-cost. Runs
# `cairn bench produce` against each in turn (only one under load at a time) and prints
# records/s and latency of each run and the medians side by side.
# Usage: bench/tls-cost.sh [REPETITIONS (3)] [SECONDS PER RUN (15)] [WINDOW (512)] [RECORD BYTES (1024)]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/rocksdb.sh
source scripts/rocksdb.sh
# shellcheck source=bench/ab.sh
source bench/ab.sh
reps="${1:-3}"; secs="${2:-15}"; window="${3:-512}"; size="${4:-1024}"
cargo build --quiet --bin cairn-node --bin cairn
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug"
dir=/var/tmp/cairn-tls-cost
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
rm -rf "$dir"; mkdir -p "$dir"
"$bin/cairn" certs init "$dir/certs" --nodes 3 >/dev/null

start() { # $1 = label, $2 = first port digit group (786 / 787), $3.. = extra flags per node (N replaced)
  local label="$1" base="$2"; shift 2
  local cluster="1=127.0.0.1:${base}1,2=127.0.0.1:${base}2,3=127.0.0.1:${base}3"
  for id in 1 2 3; do
    local extra=()
    for a in "$@"; do extra+=("${a//NODE/$id}"); done
    "$bin/cairn-node" --node-id "$id" --data-dir "$dir/$label/node$id" --initial-cluster "$cluster" \
      --metrics-listen off "${extra[@]}" >"$dir/$label-node$id.log" 2>&1 &
    pids+=($!)
  done
}
start plain 786
start tls 787 --tls-ca "$dir/certs/ca.pem" --tls-cert "$dir/certs/node-NODE.pem" --tls-key "$dir/certs/node-NODE.key"
plain=(--brokers 127.0.0.1:7861,127.0.0.1:7862,127.0.0.1:7863)
tls=(--brokers 127.0.0.1:7871,127.0.0.1:7872,127.0.0.1:7873 --ca "$dir/certs/ca.pem")
for args in plain tls; do
  declare -n a="$args"
  for _ in $(seq 1 120); do
    if "$bin/cairn" "${a[@]}" cluster info --json 2>/dev/null | grep -q '"controller_leader":[1-9]'; then break; fi
    sleep 0.5
  done
done

ab_header "TLS cost: window $window, $size B records, $secs s per run, $reps repetitions, fsync before ack on both"
out="$dir/results.txt"; : >"$out"
for _ in $(seq 1 "$reps"); do
  ab_run plaintext "${plain[@]}" | tee -a "$out"
  ab_run tls "${tls[@]}" | tee -a "$out"
done
ab_compare "$out" plaintext tls
