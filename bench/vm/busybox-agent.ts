// The peer of booty's agent in the VM bench: the smallest thing an operator could netboot to put
// an image on a disk. A busybox /init (the same pinned busybox-static and the same kernel's
// modules as booty's initramfs, initramfs/inputs.json) that loads the virtio drivers, runs
// `udhcpc`, then `wget -O- $BBURL | gunzip | dd of=/dev/vda bs=4M` and powers off. No checksum,
// no grow, no reporting. It prints its own phase stamps (seconds since boot, from /proc/uptime)
// so the bench reads both agents' consoles the same way.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fetchPackage } from '../../src/build/debs.ts';
import { kernelRelease, readPins } from '../../src/build/pins.ts';

export interface BusyboxAgent { initrd: string; kernelRelease: string }

// `st` stamps a line; the dd after the first 4 MiB block marks the first bytes written (4 MiB of
// inflated data take well under a tenth of a second here, so the mark is not late by much).
const init = `#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
st() { read up rest < /proc/uptime; echo "[$up] bb: $*"; }
st "init started"
# the kernel's own stamps of the initramfs unpack and the exec of /init (in the background: off the agent's path)
dmesg | grep -E 'Freeing initrd memory|Run /init as init' &
for m in $(cat /modules.order); do insmod /lib/modules/$m || st "insmod $m failed"; done
st "modules loaded"
while [ ! -e /sys/class/net/eth0 ] || [ ! -b /dev/vda ]; do sleep 0.05; done
ip link set lo up
ip link set eth0 up
st "link up"
if ! udhcpc -i eth0 -f -q -n -t 10 -s /udhcpc.script; then st "no lease"; poweroff -f; fi
st "lease"
set -o pipefail
if wget -q -O- "$BBURL" | gunzip | { dd of=/dev/vda bs=4M count=1 iflag=fullblock conv=notrunc 2>/dev/null && st "first block written" && dd of=/dev/vda bs=4M seek=1 iflag=fullblock conv=notrunc 2>/dev/null; }; then
  st "image written"
else
  st "FAILED"
fi
sync
st "done"
poweroff -f
sleep 100000
`;

const udhcpcScript = `#!/bin/sh
case "$1" in
  bound|renew)
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route add default via "\${router%% *}"
    ;;
esac
exit 0
`;

/** Modules busybox must insmod for a virtio NIC and disk, dependencies first (modprobe --show-depends on the pinned kernel). */
function moduleOrder(kernelDir: string, release: string): string[] {
  const modRoot = path.join(kernelDir, 'lib', 'modules', release);
  if (!fs.existsSync(path.join(modRoot, 'modules.dep'))) execFileSync('depmod', ['-b', kernelDir, release]);
  const seen: string[] = [];
  for (const m of ['virtio_pci', 'virtio_net', 'virtio_blk']) {
    const out = execFileSync('modprobe', ['-d', kernelDir, '-S', release, '--show-depends', m], { encoding: 'utf8' });
    for (const line of out.split('\n')) {
      const w = /^insmod (\S+)/.exec(line.trim());
      if (w === null) continue;
      const rel = path.relative(modRoot, w[1]);
      if (!seen.includes(rel)) seen.push(rel);
    }
  }
  return seen;
}

/** Builds (once per content) the busybox agent's initramfs under cacheDir; returns its path. */
export async function ensureBusyboxAgent(repoRoot: string, cacheDir: string, log: (s: string) => void): Promise<BusyboxAgent> {
  const pins = await readPins(path.join(repoRoot, 'initramfs', 'inputs.json'));
  const release = kernelRelease(pins);
  const pkgCache = path.join(cacheDir, 'initramfs');
  const kernelPkg = await fetchPackage(pkgCache, pins.kernel.package, pins.kernel.version, log);
  const bbVersion = pins.packages['busybox-static'];
  if (bbVersion === undefined) throw new Error('bench: initramfs/inputs.json pins no busybox-static');
  const bbPkg = await fetchPackage(pkgCache, 'busybox-static', bbVersion, log);
  const order = moduleOrder(kernelPkg.dir, release);
  const key = createHash('sha256').update(init).update(udhcpcScript).update(release).update(bbVersion).update(order.join('\n')).digest('hex').slice(0, 16);
  const out = path.join(cacheDir, 'bench-busybox-agent', key);
  const initrd = path.join(out, 'busybox-agent.cpio.gz');
  if (fs.existsSync(initrd)) return { initrd, kernelRelease: release };
  log(`bench: building the busybox agent's initramfs (${order.length} modules)`);
  const stage = `${out}.stage-${process.pid}`;
  fs.rmSync(stage, { recursive: true, force: true });
  try {
    for (const d of ['bin', 'dev', 'proc', 'sys', 'tmp', 'lib/modules']) fs.mkdirSync(path.join(stage, d), { recursive: true });
    fs.copyFileSync(path.join(bbPkg.dir, 'bin', 'busybox'), path.join(stage, 'bin', 'busybox'));
    fs.chmodSync(path.join(stage, 'bin', 'busybox'), 0o755);
    const applets = execFileSync(path.join(stage, 'bin', 'busybox'), ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => a !== '' && a !== 'busybox');
    for (const a of applets) fs.symlinkSync('busybox', path.join(stage, 'bin', a));
    for (const m of order) {
      const dest = path.join(stage, 'lib', 'modules', m);
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      fs.copyFileSync(path.join(kernelPkg.dir, 'lib', 'modules', release, m), dest);
    }
    fs.writeFileSync(path.join(stage, 'modules.order'), order.join('\n') + '\n');
    fs.writeFileSync(path.join(stage, 'init'), init, { mode: 0o755 });
    fs.writeFileSync(path.join(stage, 'udhcpc.script'), udhcpcScript, { mode: 0o755 });
    // the kernel opens /dev/console for /init before devtmpfs is mounted
    execFileSync('mknod', ['-m', '600', path.join(stage, 'dev', 'console'), 'c', '5', '1']);
    fs.mkdirSync(out, { recursive: true });
    execFileSync('sh', ['-c', `cd "$1" && find . | sort | cpio -o -H newc --owner=0:0 --quiet | gzip -6 > "$2.tmp" && mv "$2.tmp" "$2"`, 'sh', stage, initrd]);
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
  return { initrd, kernelRelease: release };
}
