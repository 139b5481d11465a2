#!/usr/bin/env bash
# One command from a fresh Debian/Ubuntu machine to a working local cluster: installs what is
# missing, builds, starts three nodes in the background, produces a few events and reads them
# back.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/ensure-deps.sh
source scripts/ensure-deps.sh

deploy/local-cluster.sh start
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug"

echo
echo "==> cairn cluster info"
"$bin/cairn" cluster info
echo
echo "==> producing three events to topic 'events' (key order-42 keeps them on one partition)"
printf 'OrderPlaced {"order":42}\nPaymentProcessed {"order":42}\nOrderShipped {"order":42}\n' \
  | "$bin/cairn" produce events --key order-42
echo
echo "==> consuming them back"
"$bin/cairn" consume events --offset earliest
echo
cat <<MSG
Cairn is running. Try:
  $bin/cairn produce events --key customer-7 --value 'CustomerRegistered'
  $bin/cairn consume events --follow --json
  deploy/local-cluster.sh status
  curl -s http://127.0.0.1:9701/metrics | grep ^cairn_produce     (each node: 970N)
Stop it with:   deploy/local-cluster.sh stop     (data kept; 'clean' deletes it)
MSG
