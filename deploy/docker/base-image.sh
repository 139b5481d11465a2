#!/usr/bin/env bash
# Builds the runtime base image locally, for machines that cannot pull images (no registry):
# a minimal Debian bookworm made by debootstrap from Debian's package archive and imported into
# Docker as `cairn-local/debian:bookworm-slim`. Does nothing when that image exists. Elsewhere
# the Dockerfile's default base (`debian:bookworm-slim` from Docker Hub) needs none of this.
# Usage: deploy/docker/base-image.sh   (root, or sudo; needs Debian's archive reachable)
set -euo pipefail
image="${CAIRN_BASE_IMAGE:-cairn-local/debian:bookworm-slim}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "==> base image $image exists"
  exit 0
fi
sudo_cmd=""
if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "==> installing debootstrap"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq debootstrap >/dev/null
fi
root="$(mktemp -d /var/tmp/cairn-rootfs.XXXXXX)"
trap '$sudo_cmd rm -rf "$root"' EXIT
echo "==> debootstrap --variant=minbase bookworm (a few minutes)"
$sudo_cmd debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
# As the official slim image: no package lists or docs kept.
$sudo_cmd rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
  "$root"/usr/share/locale/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
$sudo_cmd tar -C "$root" -c . | docker import - "$image" >/dev/null
echo "==> imported $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
