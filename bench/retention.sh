#!/usr/bin/env bash
# Disk use against retention while producing 10x the retained bytes, and the time a follower
# behind the log start takes to catch up: builds the node and cairn-retention, runs a 3-node
# cluster on 127.0.0.1:7841-7843 in /var/tmp/cairn-retention, prints the figures.
# Usage: bench/retention.sh [--partitions N] [--retention-bytes B] [--segment-bytes B] [--factor F]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/rocksdb.sh
source scripts/rocksdb.sh
cargo build --quiet --bin cairn-node --bin cairn-retention
target="${CARGO_TARGET_DIR:-$PWD/target}/debug"
exec "$target/cairn-retention" --cairn-node "$target/cairn-node" "$@"
