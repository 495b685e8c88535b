#!/usr/bin/env bash
# Builds the Debian 12 rootfs tarball the rootfs-deploy end-to-end test deploys (a sibling of
# build-test-image.sh, which builds disk images), and caches it. Run as root on Debian 12.
#
#   bash scripts/build-test-rootfs.sh [--force]
#
# Output, in ${BOOTY_CACHE:-<repo>/.cache}/test-images/:
#   debian-rootfs.tar.zst (+ .sha256)   the tree, packed by GNU tar --xattrs --xattrs-include='*'
#                                       --numeric-owner --format=posix, compressed by zstd
#   debian-rootfs.json                  manifest: file, bytes, sha256, kernel, ping's capability
#   debian-rootfs.stamp                 hash of this script + scripts/test-image/* + test-rootfs/*
#   debootstrap-bookworm-<hash>.tgz     the downloaded .debs (shared with build-test-image.sh's
#                                       naming: one tarball per package list)
#
# The tree: debootstrap minbase + a kernel (its initrd built by its postinst), grub for both
# firmwares as *files only* (grub-pc-bin, grub-efi-amd64-bin, grub2-common: grub-install and
# update-grub, without grub-pc's postinst, which would try to install onto the build host), ping
# with its cap_net_raw capability (iputils-ping's postinst sets it; getcap in the image reports
# it), the marker unit of the other test images and one more (scripts/test-rootfs/) printing
# `getcap /usr/bin/ping` on the serial console before the marker. No
# /etc/fstab, no boot loader installed, no /boot/grub/grub.cfg: booty's deploy makes those.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
out=${BOOTY_CACHE:-$repo/.cache}/test-images
mirror=${BOOTY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
packages=linux-image-amd64,grub-pc-bin,grub-efi-amd64-bin,grub2-common,systemd-sysv,udev,kmod,initramfs-tools,e2fsprogs,dosfstools,libcap2-bin,iputils-ping

log() { printf 'build-test-rootfs: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$arg'" ;;
  esac
done

stamp=$(cat "$here/build-test-rootfs.sh" "$here"/test-image/* "$here"/test-rootfs/* | sha256sum | cut -c1-16)
is_current() {
  [ "$force" = 0 ] && [ "$(cat "$out/debian-rootfs.stamp" 2>/dev/null)" = "$stamp" ] &&
    [ -s "$out/debian-rootfs.tar.zst" ] && [ -s "$out/debian-rootfs.json" ]
}
if is_current; then log "up to date (stamp $stamp) in $out"; exit 0; fi
[ "$(id -u)" = 0 ] || die "building the rootfs needs root (chroot); run: sudo bash $0"
for tool in debootstrap tar zstd getcap; do command -v "$tool" >/dev/null || die "'$tool' is missing; run: bash scripts/host-deps.sh"; done

mkdir -p "$out"
exec 9>"$out/.lock-rootfs"
flock 9
if is_current; then log "up to date (built by another run)"; exit 0; fi

started=$SECONDS
work=$(mktemp -d "$out/.work-rootfs.XXXXXX")
rootfs=$work/rootfs
cleanup() {
  local rc=$?
  if [ -d "$rootfs" ]; then
    awk -v r="$rootfs" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount -l "$m" || true; done
  fi
  if awk -v r="$work" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
    log "error: something is still mounted under $work; not removing it"
  else
    rm -rf --one-file-system "$work"
  fi
  [ $rc = 0 ] || log "failed (exit $rc); nothing in $out was replaced"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
for stale in "$out"/.work-rootfs.*; do
  [ -d "$stale" ] && [ "$stale" != "$work" ] || continue
  awk -v r="$stale" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/mounts || rm -rf --one-file-system "$stale"
done
in_root() { chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C "$@"; }

debs=$out/debootstrap-$suite-$(printf '%s %s' "$packages" "$mirror" | sha256sum | cut -c1-12).tgz
if [ ! -s "$debs" ]; then
  log "downloading bookworm packages from $mirror"
  debootstrap --variant=minbase --include="$packages" --make-tarball="$debs.tmp" "$suite" "$work/debs" "$mirror" >"$work/make-tarball.log" 2>&1 ||
    { tail -n 20 "$work/make-tarball.log" >&2; die "debootstrap --make-tarball failed"; }
  mv "$debs.tmp" "$debs"
  rm -rf "$work/debs"
fi

log "installing Debian $suite into a chroot"
debootstrap --foreign --variant=minbase --include="$packages" --unpack-tarball="$debs" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap (first stage) failed"; }
# the initrd holds the test machines' disk drivers only (as in build-test-image.sh), plus vfat
# for the ESP the deploy makes
mkdir -p "$rootfs/etc/initramfs-tools/conf.d" "$rootfs/etc/initramfs-tools/hooks" "$rootfs/etc/dpkg/dpkg.cfg.d"
printf 'MODULES=list\nCOMPRESS=gzip\nRESUME=none\n' >"$rootfs/etc/initramfs-tools/conf.d/booty-test.conf"
install -m 0755 "$here/test-image/initramfs-hook" "$rootfs/etc/initramfs-tools/hooks/booty-test"
{
  printf 'path-exclude=/usr/share/%s/*\n' doc man info locale
  printf 'path-include=/usr/share/doc/*/copyright\n'
  for d in sound drivers/gpu drivers/media drivers/net/wireless net/wireless net/mac80211 \
    net/bluetooth drivers/bluetooth drivers/infiniband drivers/iio drivers/staging drivers/isdn; do
    printf 'path-exclude=/lib/modules/*/kernel/%s/*\npath-exclude=/usr/lib/modules/*/kernel/%s/*\n' "$d" "$d"
  done
} >"$rootfs/etc/dpkg/dpkg.cfg.d/booty-test-minimal"
chroot "$rootfs" /debootstrap/debootstrap --second-stage >>"$work/debootstrap.log" 2>&1 ||
  { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap (second stage) failed"; }

kver=$(cd "$rootfs/boot" && ls vmlinuz-* | sed 's/^vmlinuz-//' | sort -V | tail -n 1)
[ -n "$kver" ] && [ -s "$rootfs/boot/initrd.img-$kver" ] || die "no kernel/initrd in the chroot's /boot"
cap=$(getcap "$rootfs/usr/bin/ping" | sed 's/^[^ ]* //')
[ -n "$cap" ] || die "/usr/bin/ping has no capability (iputils-ping's postinst did not set it)"

log "configuring the tree (kernel $kver, ping: $cap)"
echo booty-rootfs >"$rootfs/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tbooty-rootfs\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$rootfs/etc/hosts"
in_root passwd -d root >/dev/null
install -m 0755 "$here/test-image/booty-test-marker" "$rootfs/usr/local/sbin/booty-test-marker"
install -m 0644 "$here/test-image/booty-test-marker.service" "$rootfs/etc/systemd/system/booty-test-marker.service"
install -m 0644 "$here/test-rootfs/booty-test-caps.service" "$rootfs/etc/systemd/system/booty-test-caps.service"
in_root systemctl enable booty-test-marker.service booty-test-caps.service >/dev/null 2>&1
echo rootfs >"$rootfs/etc/booty-test-variant"
# what update-grub reads (grub-pc's postinst would have written it)
cat >"$rootfs/etc/default/grub" <<'EOF2'
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
EOF2
rm -f "$rootfs/etc/fstab" "$rootfs/etc/machine-id"
: >"$rootfs/etc/machine-id"
rm -rf "$rootfs"/usr/share/{doc,man,info,locale}/* "$rootfs"/var/cache/apt/*.bin \
  "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs/debootstrap"

log "packing with GNU tar --xattrs"
tar --xattrs --xattrs-include='*' --numeric-owner --format=posix -C "$rootfs" -cf - . | zstd -q -T2 -10 >"$work/debian-rootfs.tar.zst"
sum=$(sha256sum "$work/debian-rootfs.tar.zst" | cut -d' ' -f1)
(cd "$work" && sha256sum debian-rootfs.tar.zst >debian-rootfs.tar.zst.sha256)
tree_bytes=$(du -sb --apparent-size "$rootfs" | cut -f1)
cat >"$work/debian-rootfs.json" <<EOF2
{
  "stamp": "$stamp",
  "kernel": "$kver",
  "pingCapability": "$cap",
  "treeBytes": $tree_bytes,
  "file": "debian-rootfs.tar.zst",
  "bytes": $(stat -c %s "$work/debian-rootfs.tar.zst"),
  "sha256": "$sum"
}
EOF2
rm -f "$out/debian-rootfs.stamp"
for f in tar.zst tar.zst.sha256 json; do mv "$work/debian-rootfs.$f" "$out/debian-rootfs.$f"; done
echo "$stamp" >"$out/debian-rootfs.stamp"
log "built in $((SECONDS - started)) s: $(du -h "$out/debian-rootfs.tar.zst" | cut -f1) ($tree_bytes bytes of tree)"
