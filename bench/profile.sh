#!/usr/bin/env bash
# Profiles the produce path: a release 3-node cluster on this machine, `cairn bench produce`
# with a deep window, and `perf record` of every CPU during the measured interval. Writes the
# report to docs/perf/produce-profile.txt (or $1).
#
#   bench/profile.sh                       about 2 minutes after the release build
#
# Needs perf (Debian: linux-perf) and root or kernel.perf_event_paranoid <= 0. Release builds
# have no frame pointers, so call graphs are unwound from DWARF CFI (--call-graph dwarf).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/perf/produce-profile.txt}"
if ! command -v perf >/dev/null; then
  echo "==> installing perf"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
fi
export CAIRN_PROFILE=release CAIRN_LOCAL_DIR="${CAIRN_PROFILE_DIR:-/var/tmp/cairn-profile}" CAIRN_LOCAL_TOPICS=
target="${CARGO_TARGET_DIR:-$PWD/target}/release"
deploy/local-cluster.sh clean >/dev/null 2>&1 || true
deploy/local-cluster.sh start >/dev/null
trap 'deploy/local-cluster.sh clean >/dev/null 2>&1 || true' EXIT
data="$(mktemp -d)"
"$target/cairn" bench produce --topic profile -p 4 --record-size 1024 --window 512 --warmup 5 --duration 20 \
  >"$data/bench.txt" 2>&1 &
bench=$!
sleep 9
echo "==> perf record, 8 s of every CPU"
perf record -a -F 199 --call-graph dwarf,16384 -o "$data/perf.data" -- sleep 8 2>/dev/null
wait "$bench"
# `head` closes the pipes early on purpose.
set +o pipefail
{
  echo "# Produce-path profile: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(git describe --always --dirty)"
  echo "# Load: cairn bench produce -p 4 --record-size 1024 --window 512 (3 release nodes + the load"
  echo "# generator on this machine); perf record -a -F 199 --call-graph dwarf for 8 s."
  echo
  tail -n 3 "$data/bench.txt"
  echo
  echo "## CPU by thread and binary (self time)"
  perf report -i "$data/perf.data" --no-children --sort comm,dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 25
  echo
  echo "## Hottest functions (self time)"
  perf report -i "$data/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 40
  echo
  echo "## Produce-path stages (inclusive time)"
  perf report -i "$data/perf.data" --children --sort sym --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' |
    grep -E 'FlushJob::Run|BlobFileBuilder::Add|DBImpl::WriteImpl|SyncWAL|fdatasync|MemTableInserter|LogStore.*append|StateMachineStore.*apply|send_log_entries|RaftTransportServer|BrokerService.*produce|tonic::codec::(encode|decode)|bincode|prost::|h2::codec|tcp_sendmsg|tcp_recvmsg|RaftCore.*runtime_loop|PartitionTask::run|run_load' |
    head -n 40
} >"$out"
rm -rf "$data"
echo "==> wrote $out"
