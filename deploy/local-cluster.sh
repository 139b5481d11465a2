#!/usr/bin/env bash
# A local three-node Cairn cluster on 127.0.0.1:7701-7703 (clients; peers talk on 8701-8703,
# metrics on 9701-9703), in the background.
#
#   deploy/local-cluster.sh start    build if needed, start the three nodes, wait until ready
#   deploy/local-cluster.sh start --tls   the same over TLS: a development CA and certificates are
#                                    made once in $CAIRN_LOCAL_DIR/certs (`cairn certs init`);
#                                    use the CLI with --ca $CAIRN_LOCAL_DIR/certs/ca.pem
#   deploy/local-cluster.sh status   show the processes and `cairn cluster info`
#   deploy/local-cluster.sh stop     SIGTERM the nodes (data is kept)
#   deploy/local-cluster.sh clean    stop and delete the data
#   deploy/local-cluster.sh replace N   rebuild node N from the others: stop it, delete its data
#                                       directory, `cairn node replace N`, start it empty
#
# Data and logs live in $CAIRN_LOCAL_DIR (default: ~/.cairn/local). Bootstrap topic: events (3
# partitions), override with CAIRN_LOCAL_TOPICS=name:partitions,... CAIRN_PROFILE=release runs
# optimised binaries (for `cairn bench`); the default is the debug build the tests use.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${CAIRN_LOCAL_DIR:-$HOME/.cairn/local}"
topics="${CAIRN_LOCAL_TOPICS-events:3}"
cluster="1=127.0.0.1:7701,2=127.0.0.1:7702,3=127.0.0.1:7703"
target="${CARGO_TARGET_DIR:-$PWD/target}"
profile="${CAIRN_PROFILE:-debug}"
case "$profile" in
  debug) build_args=() ;;
  release) build_args=(--release) ;;
  *) echo "CAIRN_PROFILE must be debug or release, not '$profile'" >&2; exit 2 ;;
esac
bin="$target/$profile"

# TLS once started with --tls: remembered in the data directory, so status/replace use it too.
tls_args=()
cli_tls=()
load_tls() {
  if [ -f "$dir/tls" ]; then
    cli_tls=(--ca "$dir/certs/ca.pem")
  fi
}

pid_of() { cat "$dir/node$1.pid" 2>/dev/null || true; }
running() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

start_node() {
  topic_args=()
  if [ -n "$topics" ]; then topic_args=(--topic "$topics"); fi
  tls_args=()
  if [ -f "$dir/tls" ]; then
    tls_args=(--tls-ca "$dir/certs/ca.pem" --tls-cert "$dir/certs/node-$1.pem" --tls-key "$dir/certs/node-$1.key")
  fi
  nohup "$bin/cairn-node" --node-id "$1" --data-dir "$dir/node$1" \
    --initial-cluster "$cluster" "${topic_args[@]}" "${tls_args[@]}" >>"$dir/node$1.log" 2>&1 &
  echo $! >"$dir/node$1.pid"
}

# A node whose data directory was lost (or that should be rebuilt) comes back empty: the cluster
# must be told first, or it refuses the node (a node that forgot what it acknowledged could lose
# acknowledged records). The node then catches up from the others before it votes.
replace() {
  local id="$1"
  case "$id" in 1|2|3) ;; *) echo "replace: node id must be 1, 2 or 3" >&2; exit 2 ;; esac
  if running "$id"; then kill -KILL "$(pid_of "$id")"; sleep 1; fi
  rm -rf "${dir:?}/node$id"
  "$bin/cairn" "${cli_tls[@]}" node replace "$id"
  start_node "$id"
  echo "node $id restarted empty (pid $(pid_of "$id")); it catches up from the others: watch \`$0 status\`"
}

start() {
  # shellcheck source=scripts/rocksdb.sh
  source scripts/rocksdb.sh
  echo "==> building cairn-node and cairn"
  cargo build --workspace --bins --quiet "${build_args[@]}"
  mkdir -p "$dir"
  if [ "${1:-}" = "--tls" ]; then
    if [ ! -f "$dir/certs/ca.pem" ]; then "$bin/cairn" certs init "$dir/certs" --nodes 3; fi
    touch "$dir/tls"
  elif [ -f "$dir/tls" ]; then
    echo "this cluster was started with --tls: keeping TLS (\`$0 clean\` to start over)"
  fi
  load_tls
  for id in 1 2 3; do
    if running "$id"; then echo "node $id already running (pid $(pid_of "$id"))"; continue; fi
    start_node "$id"
  done
  echo "==> waiting for the controller and every partition to elect a leader"
  want_topics=0
  if [ -n "$topics" ]; then want_topics=1; fi
  for _ in $(seq 1 120); do
    info=$("$bin/cairn" "${cli_tls[@]}" cluster info --json --timeout-secs 1 2>/dev/null || true)
    if echo "$info" | grep -q '"controller_leader":[1-9]' && ! echo "$info" | grep -q '"leader":0' \
       && { [ "$want_topics" = 0 ] || echo "$info" | grep -q '"leader":[1-9]'; }; then
      echo "cluster ready:"
      for id in 1 2 3; do echo "  node $id  clients 127.0.0.1:770$id  peers 127.0.0.1:870$id  pid $(pid_of "$id")  data $dir/node$id  log $dir/node$id.log"; done
      if [ ${#cli_tls[@]} -gt 0 ]; then
        echo "TLS on: use the CLI with --ca $dir/certs/ca.pem (or CAIRN_CA=$dir/certs/ca.pem)"
      fi
      echo "metrics (Prometheus text) and health:"
      for id in 1 2 3; do echo "  node $id  http://127.0.0.1:970$id/metrics  http://127.0.0.1:970$id/health/ready"; done
      return 0
    fi
    for id in 1 2 3; do
      if ! running "$id"; then echo "node $id exited; its log:"; tail -20 "$dir/node$id.log"; exit 1; fi
    done
    sleep 0.5
  done
  echo "cluster did not become ready within 60 s; logs in $dir" >&2
  exit 1
}

stop() {
  for id in 1 2 3; do
    if running "$id"; then kill -TERM "$(pid_of "$id")"; fi
  done
  for id in 1 2 3; do
    for _ in $(seq 1 100); do running "$id" || break; sleep 0.1; done
    rm -f "$dir/node$id.pid"
  done
  echo "stopped (data kept in $dir)"
}

case "${1:-}" in
  start) start "${2:-}" ;;
  stop) stop ;;
  status)
    for id in 1 2 3; do
      if running "$id"; then echo "node $id: running (pid $(pid_of "$id"))"; else echo "node $id: stopped"; fi
    done
    load_tls
    "$bin/cairn" "${cli_tls[@]}" cluster info || true ;;
  clean) stop; rm -rf "$dir"; echo "deleted $dir" ;;
  replace) load_tls; replace "${2:-}" ;;
  *) echo "usage: $0 start [--tls]|status|stop|clean|replace N" >&2; exit 2 ;;
esac
