#!/usr/bin/env bash
# Sourced by the other scripts: compiles RocksDB's C++ ONCE per librocksdb-sys version and makes
# every later cargo command link that static library (ROCKSDB_LIB_DIR + ROCKSDB_STATIC).
#
# Why: cargo keys a build script's output by profile, mode and feature set, so `cargo test`,
# `cargo clippy` and `cargo doc` would each recompile the ~15 minutes of bundled RocksDB.
# With the prebuilt library each of them only regenerates the Rust bindings from the same
# bundled headers.
set -euo pipefail
_cairn_target="${CARGO_TARGET_DIR:-$PWD/target}"
_cairn_rocksdb_ver="$(cargo pkgid librocksdb-sys | sed 's/.*@//')"
# The library depends on the CPU features it was compiled for (see .cargo/config.toml).
_cairn_rocksdb_dir="$_cairn_target/rocksdb-prebuilt/$_cairn_rocksdb_ver-x86-64-v2"
if [ ! -f "$_cairn_rocksdb_dir/librocksdb.a" ]; then
  echo "==> compiling RocksDB $_cairn_rocksdb_ver once (about 15 minutes on 2 cores)"
  env -u ROCKSDB_LIB_DIR -u ROCKSDB_STATIC cargo build --quiet -p librocksdb-sys
  _cairn_built="$(ls -t "$_cairn_target"/debug/build/librocksdb-sys-*/out/librocksdb.a | head -n 1)"
  mkdir -p "$_cairn_rocksdb_dir"
  cp "$_cairn_built" "$_cairn_rocksdb_dir/librocksdb.a.tmp"
  mv "$_cairn_rocksdb_dir/librocksdb.a.tmp" "$_cairn_rocksdb_dir/librocksdb.a"
fi
export ROCKSDB_LIB_DIR="$_cairn_rocksdb_dir"
export ROCKSDB_STATIC=1
