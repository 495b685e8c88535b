#!/usr/bin/env bash
# Builds the UEFI Debian 12 (bookworm) test image the end-to-end tests deploy and boot with OVMF,
# and caches it beside the BIOS kinds of scripts/build-test-image.sh (a script of its own, so its
# stamp does not rebuild those). Run as root on Debian 12 (scripts/host-deps.sh).
#
#   bash scripts/build-test-image-uefi.sh [--force]
#
# Output, in ${BOOTY_CACHE:-<repo>/.cache}/test-images/:
#   debian-uefi.img  .img.gz  .img.zst  (+ .sha256 each), debian-uefi.json, debian-uefi.stamp
#   debootstrap-bookworm-<hash>.tgz     the downloaded .debs (its own package list)
#
# Disk layout (GPT, 2 GiB):
#   p1  1 MiB .. 129 MiB   EFI system partition, FAT32: \EFI\BOOT\BOOTX64.EFI (the removable
#                          fallback path: boots with an empty NVRAM) and \EFI\debian\grubx64.efi
#                          (the distribution's path, which booty registers as a Boot#### entry)
#   p2  129 MiB .. end     ext4 / (with /boot), root=UUID=...
# GRUB is what `grub-install --target=x86_64-efi --removable --no-nvram` installs: a grub-mkimage
# x86_64-efi image with an embedded config that finds / by UUID (grub-install itself would probe
# the devices, which the host kernel here cannot parse; see build-test-image.sh). The ESP is
# filled with mtools (the host kernel has no vfat). Inside, the marker unit first prints
# `efibootmgr -v` as `BOOTY-EFI ...` lines (scripts/test-image-uefi/booty-test-efi-marker), then
# the usual BOOTY-TEST-MARKER line with variant=uefi, and powers off.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
out=${BOOTY_CACHE:-$repo/.cache}/test-images
mirror=${BOOTY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
kind=uefi
packages=linux-image-amd64,grub-efi-amd64-bin,efibootmgr,systemd-sysv,udev,kmod,initramfs-tools,e2fsprogs

sector=512
disk_bytes=$((2 * 1024 * 1024 * 1024))
esp_start=2048                                    # sectors (1 MiB)
esp_sectors=$((128 * 1024 * 1024 / sector))       # 128 MiB
root_start=$((esp_start + esp_sectors))
root_sectors=$((disk_bytes / sector - 34 - root_start))   # the backup GPT takes the last 33 sectors

log() { printf 'build-test-image-uefi: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    uefi) ;;
    -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$arg' (expected --force)" ;;
  esac
done

stamp=$(cat "$here/build-test-image-uefi.sh" "$here"/test-image/* "$here"/test-image-uefi/* | sha256sum | cut -c1-16)

is_current() {
  local f
  [ "$force" = 0 ] || return 1
  [ "$(cat "$out/debian-$kind.stamp" 2>/dev/null)" = "$stamp" ] || return 1
  for f in img img.gz img.zst img.sha256 img.gz.sha256 img.zst.sha256 json; do
    [ -s "$out/debian-$kind.$f" ] || return 1
  done
}

if is_current; then log "up to date ($kind, stamp $stamp) in $out"; exit 0; fi
[ "$(id -u)" = 0 ] || die "building the test image needs root (loop devices, chroot); run: sudo bash $0"
for tool in debootstrap mkfs.ext4 mkfs.vfat mcopy mmd sfdisk losetup pigz zstd e2fsck; do
  command -v "$tool" >/dev/null || die "'$tool' is missing; run: bash scripts/host-deps.sh"
done

mkdir -p "$out"
exec 9>"$out/.lock-uefi"
flock 9
if is_current; then log "up to date (built by another run)"; exit 0; fi

started=$SECONDS
work=$(mktemp -d "$out/.work-uefi.XXXXXX")
rootfs=$work/rootfs
loops=()
cleanup() {
  local rc=$? l
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  if [ -d "$rootfs" ]; then
    awk -v r="$rootfs" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r |
      while read -r m; do umount -l "$m" || true; done
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

for stale in "$out"/.work-uefi.*; do
  [ -d "$stale" ] && [ "$stale" != "$work" ] || continue
  awk -v r="$stale" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/mounts || rm -rf --one-file-system "$stale"
done

attach() {
  local dev
  dev=$(losetup --find --show --offset "$2" --sizelimit "$3" "$1")
  loops+=("$dev")
  printf '%s\n' "$dev"
}
detach() {
  local dev=$1 keep=() l
  blockdev --flushbufs "$dev" || true
  losetup -d "$dev"
  for l in "${loops[@]}"; do [ "$l" = "$dev" ] || keep+=("$l"); done
  loops=("${keep[@]}")
}
in_root() { chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C "$@"; }

# --- 1. packages -------------------------------------------------------------------------------
debs=$out/debootstrap-$suite-$(printf '%s %s' "$packages" "$mirror" | sha256sum | cut -c1-12).tgz
if [ ! -s "$debs" ]; then
  log "downloading bookworm packages from $mirror"
  debootstrap --variant=minbase --include="$packages" --make-tarball="$debs.tmp" \
    "$suite" "$work/debs" "$mirror" >"$work/make-tarball.log" 2>&1 ||
    { tail -n 20 "$work/make-tarball.log" >&2; die "debootstrap --make-tarball failed"; }
  mv "$debs.tmp" "$debs"
  rm -rf "$work/debs"
fi

# --- 2. root filesystem (the same settings as the BIOS kinds) ----------------------------------
log "installing Debian $suite into a chroot"
debootstrap --foreign --variant=minbase --include="$packages" --unpack-tarball="$debs" \
  "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap (first stage) failed"; }
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

log "configuring the image (kernel $kver)"
echo booty-test >"$rootfs/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tbooty-test\n' >"$rootfs/etc/hosts"
in_root passwd -d root >/dev/null
install -m 0755 "$here/test-image/booty-test-marker" "$rootfs/usr/local/sbin/booty-test-marker"
install -m 0755 "$here/test-image-uefi/booty-test-efi-marker" "$rootfs/usr/local/sbin/booty-test-efi-marker"
sed 's#^ExecStart=.*#ExecStart=/usr/local/sbin/booty-test-efi-marker#' "$here/test-image/booty-test-marker.service" \
  >"$rootfs/etc/systemd/system/booty-test-marker.service"
mkdir -p "$rootfs/etc/systemd/network"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n' >"$rootfs/etc/systemd/network/20-wired.network"
in_root systemctl enable booty-test-marker.service systemd-networkd.service >/dev/null 2>&1
echo "$kind" >"$rootfs/etc/booty-test-variant"
rm -rf "$rootfs"/usr/share/{doc,man,info,locale}/* "$rootfs"/var/cache/apt/*.bin \
  "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log

# --- 3. the disk -------------------------------------------------------------------------------
img=$work/debian-$kind.img
root_uuid=$(cat /proc/sys/kernel/random/uuid)
esp_partuuid=$(cat /proc/sys/kernel/random/uuid)
root_partuuid=$(cat /proc/sys/kernel/random/uuid)
esp_volid=$(printf '%08X' $((RANDOM * 65536 + RANDOM)))
truncate -s "$disk_bytes" "$img"
printf 'label: gpt\nunit: sectors\n%s\n%s\n' \
  "start=$esp_start, size=$esp_sectors, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$esp_partuuid, name=\"EFI System\"" \
  "start=$root_start, size=$root_sectors, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$root_partuuid, name=root" |
  sfdisk -q --no-reread --no-tell-kernel "$img"

mkdir -p "$rootfs/boot/grub" "$rootfs/boot/efi"
cp -r "$rootfs/usr/lib/grub/x86_64-efi" "$rootfs/boot/grub/"
cat >"$rootfs/boot/grub/grub.cfg" <<CFG
set default=0
set timeout=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry 'Debian GNU/Linux 12 (booty test image, $kind)' {
	insmod part_gpt
	insmod ext2
	search --no-floppy --fs-uuid --set=root $root_uuid
	linux /boot/vmlinuz-$kver root=UUID=$root_uuid ro console=tty0 console=ttyS0,115200
	initrd /boot/initrd.img-$kver
}
CFG
printf 'UUID=%s\t/\text4\terrors=remount-ro\t0 1\n' "$root_uuid" >"$rootfs/etc/fstab"
printf 'search.fs_uuid %s root\nset prefix=($root)/boot/grub\n' "$root_uuid" >"$rootfs/tmp/early.cfg"
in_root grub-mkimage -O x86_64-efi -o /tmp/grubx64.efi -c /tmp/early.cfg -p /boot/grub \
  part_gpt ext2 search_fs_uuid fat
cp "$rootfs/tmp/grubx64.efi" "$work/grubx64.efi"
rm -f "$rootfs/tmp/grubx64.efi" "$rootfs/tmp/early.cfg"

log "filling the ESP and the root filesystem"
esp=$work/esp.img
truncate -s $((esp_sectors * sector)) "$esp"
mkfs.vfat -F 32 -n ESP -i "$esp_volid" "$esp" >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/EFI/debian
mcopy -i "$esp" "$work/grubx64.efi" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$work/grubx64.efi" ::/EFI/debian/grubx64.efi
dd if="$esp" of="$img" bs=1M seek=$((esp_start * sector / 1048576)) conv=notrunc status=none
rm -f "$esp"

dev=$(attach "$img" $((root_start * sector)) $((root_sectors * sector)))
mkfs.ext4 -q -F -L root -U "$root_uuid" -d "$rootfs" "$dev"
e2fsck -fn "$dev" >/dev/null 2>&1 || die "e2fsck found errors on /"
detach "$dev"

log "compressing"
pigz -6 -p 2 -c "$img" >"$img.gz"
zstd -q -3 -T2 -c "$img" >"$img.zst"
sums=()
for f in "$img" "$img.gz" "$img.zst"; do
  name=$(basename "$f")
  (cd "$work" && sha256sum "$name" >"$name.sha256")
  sums+=("$(cut -d' ' -f1 "$f.sha256")")
done
cat >"$work/debian-$kind.json" <<JSON
{
  "kind": "$kind",
  "stamp": "$stamp",
  "size": $disk_bytes,
  "kernel": "$kver",
  "rootDevice": "UUID=$root_uuid",
  "bootUuid": "$root_uuid",
  "rootUuid": "$root_uuid",
  "espPartUuid": "$esp_partuuid",
  "rootPartUuid": "$root_partuuid",
  "bootPartition": { "startSector": $esp_start, "sectors": $esp_sectors },
  "rootPartition": { "startSector": $root_start, "sectors": $root_sectors },
  "raw": { "file": "debian-$kind.img", "bytes": $(stat -c %s "$img"), "sha256": "${sums[0]}" },
  "gz": { "file": "debian-$kind.img.gz", "bytes": $(stat -c %s "$img.gz"), "sha256": "${sums[1]}" },
  "zst": { "file": "debian-$kind.img.zst", "bytes": $(stat -c %s "$img.zst"), "sha256": "${sums[2]}" }
}
JSON
rm -f "$out/debian-$kind.stamp"
for f in img img.gz img.zst img.sha256 img.gz.sha256 img.zst.sha256 json; do
  mv "$work/debian-$kind.$f" "$out/debian-$kind.$f"
done
echo "$stamp" >"$out/debian-$kind.stamp"
log "built $kind in $((SECONDS - started)) s into $out"
