#!/usr/bin/env bash
# Builds the real Debian 12 (bookworm) disk images that the end-to-end tests deploy and boot, and
# caches them. Run as root on Debian 12 (scripts/host-deps.sh installs what it uses).
#
#   bash scripts/build-test-image.sh [--force] [lvm|plain|all]      (default: all)
#
# Output, in ${BOOTY_CACHE:-<repo>/.cache}/test-images/:
#   debian-<kind>.img  .img.gz  .img.zst   the 2 GiB raw disk and its gzip / zstd forms
#   debian-<kind>.img{,.gz,.zst}.sha256    sha256sum lines
#   debian-<kind>.json                     manifest: paths, sizes, digests, kernel, UUIDs
#   debian-<kind>.stamp                    hash of this script + scripts/test-image/*; an image is
#                                          rebuilt only when that hash changes (or with --force)
#   debootstrap-bookworm-<hash>.tgz        the downloaded .debs (debootstrap --make-tarball)
#
# Disk layout (msdos label, BIOS boot with GRUB i386-pc in the MBR gap):
#   p1  1 MiB .. 257 MiB   ext4 /boot (kernel, initrd, grub)
#   p2  257 MiB .. 2 GiB   lvm:   PV -> VG bootyvg -> LV root (ext4 /), root=/dev/mapper/bootyvg-root
#                          plain: ext4 / directly, root=UUID=...
# Inside: a oneshot unit prints "BOOTY-TEST-MARKER ... rootfs_bytes=N disk_bytes=N" on ttyS0 and
# powers off (scripts/test-image/booty-test-marker).
#
# Why it is built this way: the host kernel here has no device-mapper and no partition-table
# parsers (a loop device never shows p1/p2), so nothing is activated or probed on the host.
#  - Partitions are reached through loop devices with an explicit --offset/--sizelimit.
#  - LVM metadata is written with pvcreate/vgcreate/lvcreate --driverloaded n -an -Zn (metadata
#    only); the root LV's byte range is computed from pe_start, the extent size and its segment,
#    and a loop device over that range receives mkfs.ext4. A linear LV on one PV is contiguous.
#  - Filesystems are filled with mkfs.ext4 -d (no mount needed).
#  - GRUB: core.img comes from grub-mkimage inside the image's own chroot (grub-pc-bin is only
#    ever installed there, never on the host), with an embedded config that finds /boot by UUID;
#    boot.img goes into the MBR and core.img into sectors 1.. (the layout grub-bios-setup writes
#    when it embeds core.img); grub.cfg is written here, because grub-mkconfig would need to probe
#    the LVM root.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
out=${BOOTY_CACHE:-$repo/.cache}/test-images
mirror=${BOOTY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
# Only Depends are installed by debootstrap; this is the whole package set on top of minbase.
packages=linux-image-amd64,grub-pc-bin,lvm2,systemd-sysv,udev,kmod,initramfs-tools,e2fsprogs

sector=512
disk_bytes=$((2 * 1024 * 1024 * 1024))
boot_start=2048                                   # sectors (1 MiB)
boot_sectors=$((256 * 1024 * 1024 / sector))      # 256 MiB
root_start=$((boot_start + boot_sectors))
root_sectors=$((disk_bytes / sector - root_start))
vg=bootyvg
lv=root

log() { printf 'build-test-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

force=0
kinds=()
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    lvm|plain) kinds+=("$arg") ;;
    all) kinds+=(lvm plain) ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$arg' (expected lvm, plain, all or --force)" ;;
  esac
done
[ ${#kinds[@]} -gt 0 ] || kinds=(lvm plain)

stamp=$(cat "$here/build-test-image.sh" "$here"/test-image/* | sha256sum | cut -c1-16)

is_current() {
  local kind=$1 f
  [ "$force" = 0 ] || return 1
  [ "$(cat "$out/debian-$kind.stamp" 2>/dev/null)" = "$stamp" ] || return 1
  for f in img img.gz img.zst img.sha256 img.gz.sha256 img.zst.sha256 json; do
    [ -s "$out/debian-$kind.$f" ] || return 1
  done
}

todo=()
for kind in "${kinds[@]}"; do is_current "$kind" || todo+=("$kind"); done
if [ ${#todo[@]} -eq 0 ]; then
  log "up to date (${kinds[*]}, stamp $stamp) in $out"
  exit 0
fi
[ "$(id -u)" = 0 ] || die "building the test image needs root (loop devices, chroot); run: sudo bash $0"
for tool in debootstrap pvcreate mkfs.ext4 sfdisk losetup pigz zstd e2fsck; do
  command -v "$tool" >/dev/null || die "'$tool' is missing; run: bash scripts/host-deps.sh"
done

mkdir -p "$out"
# One builder at a time (tests running in parallel may all ask for the image).
exec 9>"$out/.lock"
flock 9
todo=()
for kind in "${kinds[@]}"; do is_current "$kind" || todo+=("$kind"); done
if [ ${#todo[@]} -eq 0 ]; then log "up to date (built by another run)"; exit 0; fi

started=$SECONDS
work=$(mktemp -d "$out/.work.XXXXXX")
rootfs=$work/rootfs
loops=()

cleanup() {
  local rc=$? l
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  # Anything still mounted inside the chroot is unmounted before the tree is removed.
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
trap 'exit 130' INT TERM HUP   # so that cleanup runs when the build is interrupted too

# Under the lock no other build runs: work trees left by a killed build are stale.
for stale in "$out"/.work.*; do
  [ -d "$stale" ] && [ "$stale" != "$work" ] || continue
  if awk -v r="$stale" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
    log "warning: $stale has mounts left by an earlier build; leaving it"
  else
    rm -rf --one-file-system "$stale"
  fi
done

attach() { # attach FILE OFFSET_BYTES SIZE_BYTES -> prints the loop device
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

# --- 1. The .debs, downloaded once per package list -------------------------------------------
debs=$out/debootstrap-$suite-$(printf '%s %s' "$packages" "$mirror" | sha256sum | cut -c1-12).tgz
if [ ! -s "$debs" ]; then
  log "downloading bookworm packages from $mirror"
  debootstrap --variant=minbase --include="$packages" --make-tarball="$debs.tmp" \
    "$suite" "$work/debs" "$mirror" >"$work/make-tarball.log" 2>&1 ||
    { tail -n 20 "$work/make-tarball.log" >&2; die "debootstrap --make-tarball failed"; }
  mv "$debs.tmp" "$debs"
  find "$out" -maxdepth 1 -name "debootstrap-$suite-*.tgz" ! -path "$debs" -delete
  rm -rf "$work/debs"
fi

# --- 2. The root filesystem, shared by both kinds ----------------------------------------------
log "installing Debian $suite into a chroot"
debootstrap --foreign --variant=minbase --include="$packages" --unpack-tarball="$debs" \
  "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap (first stage) failed"; }
# Before the packages are configured (and the kernel's postinst builds the initrd): the initrd
# holds the disk drivers of the machines the tests boot (virtio, NVMe, AHCI/IDE, SCSI), ext4 and
# dm-mod for the LVM root, not every storage driver (MODULES=most would make it 38 MB, which GRUB
# reads through the BIOS, slowly under TCG).
mkdir -p "$rootfs/etc/initramfs-tools/conf.d"
cat >"$rootfs/etc/initramfs-tools/conf.d/booty-test.conf" <<'EOF'
MODULES=list
COMPRESS=gzip
RESUME=none
EOF
# (a hook, because /etc/initramfs-tools/modules is a conffile dpkg would ask about)
mkdir -p "$rootfs/etc/initramfs-tools/hooks"
install -m 0755 "$here/test-image/initramfs-hook" "$rootfs/etc/initramfs-tools/hooks/booty-test"
# A smaller image deploys and captures faster in the tests: dpkg leaves out docs, manuals, locales
# and the kernel modules no test machine uses (sound, GPU, media, wireless, bluetooth, InfiniBand,
# industrial I/O, staging). The kernel's postinst then runs depmod and mkinitramfs on what is left.
mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
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
# The initrd must be able to find and assemble the root by itself.
mount -t proc proc "$rootfs/proc"
in_root lsinitramfs "/boot/initrd.img-$kver" >"$work/initrd.list"
umount "$rootfs/proc"
for need in sbin/lvm dm-mod.ko virtio_blk.ko nvme.ko ext4.ko; do
  grep -q "$need" "$work/initrd.list" || die "the initrd lacks $need"
done

log "configuring the image (kernel $kver)"
echo booty-test >"$rootfs/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tbooty-test\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
  >"$rootfs/etc/hosts"
in_root passwd -d root >/dev/null  # test image: root logs in on the serial console without password
install -m 0755 "$here/test-image/booty-test-marker" "$rootfs/usr/local/sbin/booty-test-marker"
install -m 0644 "$here/test-image/booty-test-marker.service" \
  "$rootfs/etc/systemd/system/booty-test-marker.service"
mkdir -p "$rootfs/etc/systemd/network"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n' >"$rootfs/etc/systemd/network/20-wired.network"
in_root systemctl enable booty-test-marker.service systemd-networkd.service >/dev/null 2>&1
# Kept for update-grub inside the deployed OS; this build writes grub.cfg itself (below).
# nvme_core.io_timeout: the guest's NVMe driver gives up on a command after 30 s and resets the
# controller; under TCG on a busy shared host a write can wait that long in QEMU, and a deployed
# disk that was fine then failed every write (EXT4 "lost sync page write") in one CI run. The
# image is a test fixture: it waits as long as the host makes it.
cat >"$rootfs/etc/default/grub" <<'EOF'
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200 nvme_core.io_timeout=600"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
EOF
# Smaller image: no docs, manuals, locales or apt caches.
rm -rf "$rootfs"/usr/share/{doc,man,info,locale}/* "$rootfs"/var/cache/apt/*.bin \
  "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
# /boot moves to its own tree (its own partition); the chroot keeps an empty mount point.
mkdir "$work/boot"
mv "$rootfs"/boot/* "$work/boot/"
mkdir -p "$work/boot/grub/i386-pc"
cp "$rootfs"/usr/lib/grub/i386-pc/*.mod "$rootfs"/usr/lib/grub/i386-pc/*.lst "$work/boot/grub/i386-pc/"

# --- 3. One disk per kind ----------------------------------------------------------------------
build_disk() {
  local kind=$1 img=$work/debian-$1.img boot_uuid root_uuid root_dev dev pv_dev
  local pe_start extent seg first count root_off root_size
  log "[$kind] partitioning and filling a 2 GiB disk"
  boot_uuid=$(cat /proc/sys/kernel/random/uuid)
  root_uuid=$(cat /proc/sys/kernel/random/uuid)
  truncate -s "$disk_bytes" "$img"
  local ptype=83
  [ "$kind" = lvm ] && ptype=8e
  printf 'label: dos\nlabel-id: 0xb0071e57\nunit: sectors\n%s\n%s\n' \
    "start=$boot_start, size=$boot_sectors, type=83, bootable" \
    "start=$root_start, size=$root_sectors, type=$ptype" | sfdisk -q --no-reread --no-tell-kernel "$img"

  if [ "$kind" = lvm ]; then root_dev=/dev/mapper/$vg-$lv; else root_dev=UUID=$root_uuid; fi
  # grub.cfg is written here: grub-mkconfig would have to probe the (inactive) LVM root.
  cat >"$work/boot/grub/grub.cfg" <<EOF
set default=0
set timeout=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry 'Debian GNU/Linux 12 (booty test image, $kind)' {
	insmod part_msdos
	insmod ext2
	search --no-floppy --fs-uuid --set=root $boot_uuid
	linux /vmlinuz-$kver root=$root_dev ro console=tty0 console=ttyS0,115200 nvme_core.io_timeout=600
	initrd /initrd.img-$kver
}
EOF

  # /boot
  dev=$(attach "$img" $((boot_start * sector)) $((boot_sectors * sector)))
  mkfs.ext4 -q -F -L boot -U "$boot_uuid" -d "$work/boot" "$dev"
  e2fsck -fn "$dev" >/dev/null 2>&1 || die "[$kind] e2fsck found errors on /boot"
  detach "$dev"

  # the root filesystem's block range
  root_off=$((root_start * sector))
  root_size=$((root_sectors * sector))
  if [ "$kind" = lvm ]; then
    pv_dev=$(attach "$img" "$root_off" "$root_size")
    local lvmopt=(--devices "$pv_dev" --config 'activation { udev_sync = 0 udev_rules = 0 }')
    export LVM_SUPPRESS_FD_WARNINGS=1
    pvcreate -q "${lvmopt[@]}" -ff -y "$pv_dev" >/dev/null
    vgcreate -q "${lvmopt[@]}" -s 4m "$vg" "$pv_dev" >/dev/null
    lvcreate -q "${lvmopt[@]}" --driverloaded n -an -Zn -l 100%FREE -n "$lv" "$vg" >/dev/null 2>&1 ||
      die "[$kind] lvcreate failed"
    pe_start=$(pvs "${lvmopt[@]}" --noheadings --nosuffix --units b -o pe_start "$pv_dev" | tr -d ' ')
    extent=$(vgs "${lvmopt[@]}" --noheadings --nosuffix --units b -o vg_extent_size "$vg" | tr -d ' ')
    seg=$(lvs "${lvmopt[@]}" --noheadings --segments -o seg_pe_ranges "$vg/$lv" 2>/dev/null | tr -d ' ')
    # one linear segment "<pv>:<first>-<last>"; a second segment would mean a non-contiguous LV
    [[ "$seg" =~ ^[^:]+:([0-9]+)-([0-9]+)$ ]] || die "[$kind] unexpected LV segments '$seg'"
    first=${BASH_REMATCH[1]}
    count=$((BASH_REMATCH[2] - first + 1))
    detach "$pv_dev"
    root_off=$((root_off + pe_start + first * extent))
    root_size=$((count * extent))
  fi

  # / (fstab and the variant name differ per kind; the rest of the tree is shared)
  printf '%s\t/\text4\terrors=remount-ro\t0 1\nUUID=%s\t/boot\text4\tdefaults\t0 2\n' \
    "$root_dev" "$boot_uuid" >"$rootfs/etc/fstab"
  echo "$kind" >"$rootfs/etc/booty-test-variant"
  dev=$(attach "$img" "$root_off" "$root_size")
  mkfs.ext4 -q -F -L root -U "$root_uuid" -d "$rootfs" "$dev"
  e2fsck -fn "$dev" >/dev/null 2>&1 || die "[$kind] e2fsck found errors on /"
  detach "$dev"

  # GRUB: core.img finds /boot by UUID, then reads /grub/grub.cfg from it.
  printf 'search.fs_uuid %s root\nset prefix=($root)/grub\n' "$boot_uuid" >"$rootfs/tmp/early.cfg"
  in_root grub-mkimage -O i386-pc -o /tmp/core.img -c /tmp/early.cfg -p /grub \
    biosdisk part_msdos ext2 search_fs_uuid
  local core_bytes
  core_bytes=$(stat -c %s "$rootfs/tmp/core.img")
  [ "$core_bytes" -lt $(((boot_start - 1) * sector)) ] || die "[$kind] core.img does not fit before p1"
  dd if="$rootfs/usr/lib/grub/i386-pc/boot.img" of="$img" bs=440 count=1 conv=notrunc status=none
  dd if="$rootfs/tmp/core.img" of="$img" bs=$sector seek=1 conv=notrunc status=none
  rm -f "$rootfs/tmp/core.img" "$rootfs/tmp/early.cfg"
  log "[$kind] compressing"
  pigz -6 -p 2 -c "$img" >"$img.gz"
  zstd -q -3 -T2 -c "$img" >"$img.zst"
  local f name sums=()
  for f in "$img" "$img.gz" "$img.zst"; do
    name=$(basename "$f")
    (cd "$work" && sha256sum "$name" >"$name.sha256")
    sums+=("$(cut -d' ' -f1 "$f.sha256")")
  done
  cat >"$work/debian-$kind.json" <<EOF
{
  "kind": "$kind",
  "stamp": "$stamp",
  "size": $disk_bytes,
  "kernel": "$kver",
  "rootDevice": "$root_dev",
  "bootUuid": "$boot_uuid",
  "rootUuid": "$root_uuid",
  "bootPartition": { "startSector": $boot_start, "sectors": $boot_sectors },
  "rootPartition": { "startSector": $root_start, "sectors": $root_sectors },
  "raw": { "file": "debian-$kind.img", "bytes": $(stat -c %s "$img"), "sha256": "${sums[0]}" },
  "gz": { "file": "debian-$kind.img.gz", "bytes": $(stat -c %s "$img.gz"), "sha256": "${sums[1]}" },
  "zst": { "file": "debian-$kind.img.zst", "bytes": $(stat -c %s "$img.zst"), "sha256": "${sums[2]}" }
}
EOF
  # Publish: data first, the stamp last (a half-published set is never taken as current).
  rm -f "$out/debian-$kind.stamp"
  for f in img img.gz img.zst img.sha256 img.gz.sha256 img.zst.sha256 json; do
    mv "$work/debian-$kind.$f" "$out/debian-$kind.$f"
  done
  echo "$stamp" >"$out/debian-$kind.stamp"
  log "[$kind] done: raw $(du -h --apparent-size "$out/debian-$kind.img" | cut -f1)," \
    "gz $(du -h "$out/debian-$kind.img.gz" | cut -f1), zst $(du -h "$out/debian-$kind.img.zst" | cut -f1)"
}

for kind in "${todo[@]}"; do build_disk "$kind"; done
log "built ${todo[*]} in $((SECONDS - started)) s into $out"
