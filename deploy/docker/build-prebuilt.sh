#!/usr/bin/env bash
# Builds the image `cairn:dev` from the host's binaries (CARGO_TARGET_DIR/debug, stripped) on
# the locally made base image: what the tests run on machines that cannot pull images.
# Usage: deploy/docker/build-prebuilt.sh [IMAGE (cairn:dev)]
set -euo pipefail
cd "$(dirname "$0")/../.."
image="${1:-cairn:dev}"
base="${CAIRN_BASE_IMAGE:-cairn-local/debian:bookworm-slim}"
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug"
deploy/docker/base-image.sh
ctx="$(mktemp -d /var/tmp/cairn-image.XXXXXX)"
trap 'rm -rf "$ctx"' EXIT
mkdir "$ctx/bin"
cp deploy/docker/Dockerfile.prebuilt deploy/docker/setup-runtime.sh deploy/docker/healthcheck.sh "$ctx/"
for b in cairn-node cairn; do
  [ -x "$bin/$b" ] || { echo "$bin/$b is missing: cargo build --bins first" >&2; exit 1; }
  # Debug info is most of a debug build's size; the image does not need it.
  objcopy --strip-debug "$bin/$b" "$ctx/bin/$b"
done
docker build -q -f "$ctx/Dockerfile.prebuilt" --build-arg "BASE_IMAGE=$base" -t "$image" "$ctx" >/dev/null
echo "==> built $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
