#!/usr/bin/env bash
# The compose cluster, run for real against the Docker engine: builds the image (from the
# binaries already built on the host, on a locally made base image: no registry is needed),
# `compose up`, waits until every node is healthy, produces 10,000 records from the host CLI
# (idempotent producer), kills the leader of partition 0 (`docker kill`), produces 1,000 more,
# restarts the killed node, checks that every replica holds every record (`cairn topic
# verify`) and that all 11,000 are there, then `compose down` and `up` again (volumes kept) and
# checks again, and finally `down -v`. The `metrics` profile runs too, on a Prometheus image
# made locally from Debian's package (deploy/docker/prometheus-image.sh): it must scrape all
# three nodes. Cleans up whatever happens. Skips (exit 0, saying why) where no Docker engine
# runs.
# Usage: deploy/test-compose.sh   (after cargo build --bins; scripts/test.sh calls it)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! docker info >/dev/null 2>&1; then
  echo "==> SKIPPED deploy/test-compose.sh: no Docker engine answers here (docker info failed)"
  exit 0
fi
if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
started=$(date +%s)
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug"
project="cairn-test-$$"
export CAIRN_IMAGE="cairn:test-$$"
# Ports of their own (the local cluster and the benchmarks use others).
export CAIRN_PORT_1=7741 CAIRN_PORT_2=7742 CAIRN_PORT_3=7743
export CAIRN_METRICS_PORT_1=9741 CAIRN_METRICS_PORT_2=9742 CAIRN_METRICS_PORT_3=9743
brokers="127.0.0.1:7741,127.0.0.1:7742,127.0.0.1:7743"
export COMPOSE_PROFILES=metrics PROMETHEUS_IMAGE="cairn-local/prometheus:latest" PROMETHEUS_PORT=9791
dc() { "${compose[@]}" -p "$project" -f deploy/compose.yaml "$@"; }
cli() { "$bin/cairn" --brokers "$brokers" --timeout-secs 60 "$@"; }
cleanup() {
  dc down -v --remove-orphans >/dev/null 2>&1 || true
  docker image rm -f "$CAIRN_IMAGE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

deploy/docker/build-prebuilt.sh "$CAIRN_IMAGE"
deploy/docker/prometheus-image.sh "$PROMETHEUS_IMAGE"
echo "==> ${compose[*]} up"
dc up -d --no-build >/dev/null 2>&1

container() { dc ps -q "cairn-$1"; }
wait_healthy() {
  local deadline=$((SECONDS + 120))
  for id in 1 2 3; do
    until [ "$(docker inspect -f '{{.State.Health.Status}}' "$(container "$id")" 2>/dev/null)" = healthy ]; do
      if [ $SECONDS -ge $deadline ]; then
        echo "node $id is not healthy after 120 s"; dc logs --tail 30 "cairn-$id"; exit 1
      fi
      sleep 1
    done
  done
  echo "==> all three nodes healthy"
}
# Every record 1..$1 is in the topic once (all partitions, from the leaders) and every replica
# holds the same records.
check() {
  local want="$1" values all distinct
  cli topic verify events
  values=$(cli consume events --exit-at-end --format '%s\n')
  all=$(printf '%s\n' "$values" | grep -c .)
  distinct=$(printf '%s\n' "$values" | sort -n | uniq | grep -c .)
  if [ "$distinct" != "$want" ] || [ "$all" != "$want" ]; then
    echo "expected $want records once each, read $all ($distinct distinct)"; exit 1
  fi
  echo "==> all $want records, once each, on every replica"
}

# Prometheus (the metrics profile) scrapes every node: three targets up, and cairn_ series.
check_prometheus() {
  local deadline=$((SECONDS + 60)) api="http://127.0.0.1:$PROMETHEUS_PORT/api/v1"
  until curl -sf "$api/targets" | python3 -c '
import json, sys
up = [t for t in json.load(sys.stdin)["data"]["activeTargets"] if t["health"] == "up"]
sys.exit(0 if len(up) == 3 else 1)' 2>/dev/null && curl -sf "$api/query?query=count(cairn_build_info)" | grep -q '"3"'; do
    if [ $SECONDS -ge $deadline ]; then
      echo "Prometheus does not scrape all three nodes after 60 s"; curl -s "$api/targets" || true
      dc logs --tail 30 prometheus; exit 1
    fi
    sleep 1
  done
  echo "==> Prometheus (metrics profile) scrapes all three nodes"
}

wait_healthy
check_prometheus
echo "==> producing 10,000 records from the host"
seq 1 10000 | cli produce events >/dev/null
leader=$(cli topic describe events --json | python3 -c '
import json, sys
for line in sys.stdin:
    v = json.loads(line)
    for p in v.get("partitions_detail", []):
        if p["partition"] == 0:
            print(p["leader"]); sys.exit(0)
sys.exit(1)')
echo "==> docker kill node $leader (leader of events/0)"
docker kill "$(container "$leader")" >/dev/null
echo "==> producing 1,000 more"
seq 10001 11000 | cli produce events >/dev/null
echo "==> ${compose[*]} restart cairn-$leader"
dc restart "cairn-$leader" >/dev/null 2>&1
wait_healthy
check 11000
echo "==> ${compose[*]} down, then up again (volumes kept)"
dc down >/dev/null 2>&1
dc up -d --no-build >/dev/null 2>&1
wait_healthy
check 11000
echo "==> deploy/test-compose.sh passed in $(( $(date +%s) - started )) s"
