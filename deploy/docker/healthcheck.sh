#!/bin/bash
# The image's HEALTHCHECK: the node's /health/ready (a controller leader known, every local
# replica started or reported), over bash's /dev/tcp: the image has no curl. The metrics
# listener is at CAIRN_METRICS_LISTEN's port (the image sets 0.0.0.0:9700).
set -eu
port="${CAIRN_METRICS_LISTEN##*:}"
exec 3<>"/dev/tcp/127.0.0.1/${port:-9700}"
printf 'GET /health/ready HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
IFS= read -r -t 3 status <&3
case "$status" in
  *" 200 "*) exit 0 ;;
  *) echo "not ready: $status"; exit 1 ;;
esac
