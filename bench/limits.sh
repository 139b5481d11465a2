#!/usr/bin/env bash
# Client-growable server state stays within [limits]: builds the nodes and cairn-limits, runs
# a 3-node cluster on 127.0.0.1:7831-7833 under random producer ids, new issued producers, new
# producer names and a write-only ProduceStream, and prints RSS, producer-table sizes and `sm`
# column-family bytes every 5 s. Usage: bench/limits.sh [--seconds N]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/rocksdb.sh
source scripts/rocksdb.sh
cargo build --quiet --bin cairn-node --bin cairn-limits
target="${CARGO_TARGET_DIR:-$PWD/target}/debug"
exec "$target/cairn-limits" --cairn-node "$target/cairn-node" "$@"
