#!/usr/bin/env bash
# Builds a Prometheus image locally, for machines that cannot pull prom/prometheus (no
# registry): Debian's `prometheus` package on the locally made base image, started as the
# official image is (`prometheus` as the entrypoint, run as nobody; Debian's build keeps its data
# in /var/lib/prometheus/metrics2 where the official one uses /prometheus), tagged
# `cairn-local/prometheus:latest`. Does nothing when that image exists. deploy/test-compose.sh
# runs the compose file's `metrics` profile with it; elsewhere the profile pulls prom/prometheus.
# Usage: deploy/docker/prometheus-image.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
image="${1:-cairn-local/prometheus:latest}"
base="${CAIRN_BASE_IMAGE:-cairn-local/debian:bookworm-slim}"
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "==> Prometheus image $image exists"
  exit 0
fi
deploy/docker/base-image.sh
ctx="$(mktemp -d /var/tmp/cairn-prometheus.XXXXXX)"
trap 'rm -rf "$ctx"' EXIT
cat > "$ctx/Dockerfile" <<'DOCKERFILE'
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus /var/lib/prometheus/metrics2 \
 && chown -R nobody:nogroup /prometheus /var/lib/prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml"]
DOCKERFILE
echo "==> building $image from Debian's prometheus package (a minute or two)"
docker build -q --build-arg "BASE_IMAGE=$base" -t "$image" "$ctx" >/dev/null
echo "==> built $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
