#!/usr/bin/env bash
# Runs one example end to end against the local cluster (deploy/local-cluster.sh, started here
# if it is not running), then stops what it started of the example (the cluster keeps running).
#
#   examples/run.sh order-saga        place 200 orders, run the four services, check every order
#   examples/run.sh bank-ledger       open 10 accounts, 3 concurrent writers, snapshot, audit
#   examples/run.sh cqrs-projection   2,000 events into a SQLite read model, verify, rebuild
#   examples/run.sh dead-letters      payments with poison records, DLQ, `cairn dlq replay`
#
# Each run uses topics of its own name (a second run continues on the same topics).
set -euo pipefail
cd "$(dirname "$0")/.."
example="${1:-}"
target="${CARGO_TARGET_DIR:-$PWD/target}"
bin="$target/debug"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

case "$example" in
  order-saga | bank-ledger | cqrs-projection | dead-letters) ;;
  *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
# Starts the nodes that are not running (building everything, examples included) and waits
# until the cluster is ready; nodes already running are left alone.
deploy/local-cluster.sh start
export CAIRN_BROKERS="127.0.0.1:7701,127.0.0.1:7702,127.0.0.1:7703"

case "$example" in
  order-saga)
    "$bin/order-saga" place --orders 200
    for s in order inventory payment shipping; do
      "$bin/order-saga" run "$s" 2>"$work/$s.log" & pids+=($!)
    done
    echo "==> four services running; waiting until every order is final"
    for _ in $(seq 1 60); do
      if "$bin/order-saga" check >"$work/report.json"; then break; fi
      sleep 2
    done
    cat "$work/report.json"
    "$bin/order-saga" check >/dev/null
    ;;
  bank-ledger)
    "$bin/bank-ledger" open --accounts 10 --initial 1000
    for seed in 1 2 3; do
      "$bin/bank-ledger" transfer --count 50 --seed "$seed$RANDOM" & pids+=($!)
    done
    wait "${pids[@]}"; pids=()
    "$bin/bank-ledger" snapshot --file "$work/ledger.json"
    "$bin/bank-ledger" transfer --count 20 --seed "$RANDOM"
    "$bin/bank-ledger" audit --snapshot "$work/ledger.json"
    ;;
  cqrs-projection)
    "$bin/cqrs-projection" generate --count 2000 --seed "$RANDOM"
    "$bin/cqrs-projection" run --db "$work/model.db" --until-caught-up
    "$bin/cqrs-projection" verify --db "$work/model.db"
    "$bin/cqrs-projection" reset --db "$work/model.db"
    "$bin/cqrs-projection" run --db "$work/model.db" --until-caught-up
    "$bin/cqrs-projection" verify --db "$work/model.db"
    ;;
  dead-letters)
    "$bin/dead-letters" generate --count 50 --poison-every 10
    "$bin/dead-letters" consume --until-idle-ms 1500 | tail -3
    "$bin/cairn" --json consume payments.dlq --exit-at-end
    "$bin/cairn" dlq replay payments.dlq
    "$bin/dead-letters" consume --lenient --until-idle-ms 1500
    ;;
esac
echo "==> $example: done"
