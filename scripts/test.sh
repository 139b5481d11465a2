#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit + storage-suite + integration tests, docs.
# Usage: scripts/test.sh            (installs missing system packages first)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/ensure-deps.sh
source scripts/ensure-deps.sh
# shellcheck source=scripts/rocksdb.sh
source scripts/rocksdb.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo test"
# Integration tests run three real nodes each; two at a time fit this kind of machine.
cargo test --workspace -- --test-threads="${CAIRN_TEST_THREADS:-2}"
echo "==> fault-injection suite, CI tier (about a minute each: none, kill, pause, partition, client-partition, stale-broker, recreate on 5 nodes, corrupt, disk-full, group with kill and pause, retention with kill, conditional appends with partition, schema registrations with kill, kill secured: TLS, authentication, ACLs)"
"${CARGO_TARGET_DIR:-target}/debug/cairn-jepsen" tier ci --store "${CAIRN_JEPSEN_STORE:-store}"
echo "==> deploy/test-compose.sh (the image and the compose cluster, on the Docker engine when one runs)"
deploy/test-compose.sh
echo "==> deploy/k8s/validate.sh (the Kubernetes manifests against the API schema and each other)"
deploy/k8s/validate.sh
echo "==> cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
echo "==> all tests passed"
