#!/bin/sh
# Run once while building the runtime image (both Dockerfiles): the unprivileged user the node
# runs as, its data directory (the volume), and the health check.
set -eu
if command -v useradd >/dev/null 2>&1; then
  groupadd --system --gid 10001 cairn
  useradd --system --uid 10001 --gid cairn --home-dir /var/lib/cairn --shell /usr/sbin/nologin cairn
else # a minimal base without the passwd package
  echo "cairn:x:10001:" >>/etc/group
  echo "cairn:x:10001:10001:Cairn:/var/lib/cairn:/usr/sbin/nologin" >>/etc/passwd
fi
mkdir -p /var/lib/cairn
chown cairn:cairn /var/lib/cairn
chmod 0750 /var/lib/cairn
install -m 0755 /tmp/cairn-setup/healthcheck.sh /usr/local/bin/cairn-healthcheck
rm -rf /tmp/cairn-setup
