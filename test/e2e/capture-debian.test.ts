// Capture of a real Debian 12 disk, end to end, as a disk image and as a rootfs tarball. The
// image: a VM boots our kernel + initramfs with a disk
// holding the LVM test image (a sparse copy of debian-lvm.img), gets its lease from real dnsmasq,
// fetches a capture action from a real `booty server`, reads the whole disk, compresses it with
// zstd and uploads it (PUT + commit). The server must store it atomically: while the upload runs
// only a hidden temporary file exists, the final name appears once, complete; its sha256 matches
// the agent's, and decompressed it is the disk, byte for byte (same sha256 as the image).
// The tarball: the same disk captured with --format tar.zst holds the root LV and /boot as the
// image's fstab mounts them; GNU tar's extraction equals the image's own filesystems, mounted on
// the host, entry by entry (content, owner, mode, mtime, links, devices, xattrs).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureInitramfs, type BuiltInitramfs } from '../helpers/initramfs-build.ts';
import { startVm } from '../helpers/qemu.ts';
import { QemuNetLab } from '../helpers/qemu-netns-lab.ts';
import { ensureTestImage, type TestImage } from '../helpers/test-image.ts';
import { lvInPv } from '../helpers/disk-file-layout.ts';
import { describe, walk } from '../helpers/rootfs-tree.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';

const isRoot = process.getuid?.() === 0;
const have = (cmd: string) => { try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true; } catch { return false; } };
const missing = ['qemu-system-x86_64', 'dnsmasq', 'zstd', 'debootstrap', 'curl'].filter((c) => !have(c));
const skip = !isRoot ? 'needs root (network namespaces, tap)' : skipUnlessPresent(missing.length === 0, `missing: ${missing.join(', ')}`);

const captureMs = 12 * 60_000; // a generous bound for TCG on a busy machine, not a timing assertion
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-capture-debian-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));

let initramfs: BuiltInitramfs;
let image: TestImage;

before(async () => {
  if (skip !== false) return;
  initramfs = await ensureInitramfs();
  image = await ensureTestImage('lvm');
});

/** Files under the images directory (four levels deep) other than `except` and the catalog's sidecars (.meta/). */
function otherFiles(dir: string, except: string): string[] {
  const out: string[] = [];
  const walk = (d: string, depth: number): void => {
    let entries: fs.Dirent[] = [];
    try { entries = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) { if (e.name !== '.meta' && depth < 4) walk(p, depth + 1); } else if (p !== except) out.push(p);
    }
  };
  walk(dir, 1);
  return out;
}

/** sha256 of a file's bytes, or of what `zstd -dc` makes of it. */
function sha256Of(file: string, decompress: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    const src = decompress ? spawn('zstd', ['-dc', '-q', file], { stdio: ['ignore', 'pipe', 'inherit'] }).stdout : fs.createReadStream(file);
    src.on('data', (b: Buffer) => h.update(b));
    src.on('error', reject);
    src.on('end', () => resolve(h.digest('hex')));
  });
}

test('capture: a disk holding the Debian image is read, zstd-compressed and stored atomically by the server; it decompresses to the disk', { skip, timeout: captureMs + 180_000 }, async (t) => {
  const lab = new QemuNetLab('10.231.24');
  t.after(() => lab.close());
  await lab.startDnsmasq();
  await lab.startServer();
  const mac = '52:54:00:d0:00:24';
  const name = 'captured-debian.img.zst';
  lab.setAction(mac, { action: 'capture', upload: `${lab.serverUrl}/images/${name}`, format: 'zstd', after: 'poweroff', onError: 'poweroff' });

  const disk = path.join(work, 'source.img');
  execFileSync('cp', ['--sparse=always', image.raw, disk]);
  const imagesDir = path.join(lab.dataDir, 'images');
  const finalPath = path.join(imagesDir, name);

  // Watch the images directory while the upload runs: the upload must grow somewhere else (the
  // store's temporary, whatever its name), and the final name must never be seen partial.
  const seen = { temp: 0, finalSizes: new Set<number>(), names: new Set<string>() };
  const watcher = setInterval(() => {
    const temps = otherFiles(imagesDir, finalPath);
    for (const f of temps) seen.names.add(path.relative(imagesDir, f));
    if (temps.length > 0 && !fs.existsSync(finalPath)) seen.temp++;
    try { seen.finalSizes.add(fs.statSync(finalPath).size); } catch { /* not there yet */ }
  }, 250);
  t.after(() => clearInterval(watcher));

  const started = Date.now();
  const vm = await startVm({
    name: 'capture-debian', kernel: initramfs.kernel, initrd: initramfs.initrd, memMiB: 768,
    append: `console=ttyS0 quiet ${lab.agentArgs(mac)} booty.countdown=0`,
    disks: [{ path: disk }], nic: { tap: lab.tap, netns: lab.ns, mac },
  }, t);
  const exit = await vm.waitExit(captureMs);
  clearInterval(watcher);
  const wall = (Date.now() - started) / 1000;
  assert.equal(exit.code, 0, vm.tail());
  const out = vm.output;
  assert.doesNotMatch(out, /BOOTY FAILED|Kernel panic|kernel BUG/, vm.tail(6000));
  assert.match(out, /capture: \/dev\/vda \(2\.15 GB\) -> \S+\/images\/captured-debian\.img\.zst as zstd/);
  assert.match(out, /reboot: Power down/);
  const line = /\[\s*(\d+\.\d+)\] booty: capture: read ([^,]+), sent ([^ ]+ \S+) in ([\d.]+) s/.exec(out);
  assert.ok(line, 'the agent logged the capture summary');
  t.diagnostic(`capture: ${line[2]} read, ${line[3]} sent in ${line[4]} s (done ${line[1]} s after kernel start); QEMU wall time ${wall.toFixed(0)} s`);

  // the server stored it under its final name, once and complete, and no temporary is left over
  assert.ok(seen.temp > 0, `the upload was seen in progress under a temporary name, before the final name existed (${[...seen.names].join(', ')})`);
  assert.equal(seen.finalSizes.size <= 1, true, `the final name showed several sizes: ${[...seen.finalSizes].join(', ')}`);
  const stored = fs.statSync(finalPath);
  assert.ok(seen.finalSizes.size === 0 || seen.finalSizes.has(stored.size), 'the final name only ever showed the complete file');
  assert.deepEqual(otherFiles(imagesDir, finalPath), [], `no temporary upload left (seen during the upload: ${[...seen.names].join(', ')})`);

  // checksums: the agent's (of what it sent), the server's catalog, the stored file, the disk
  const storedSha = await sha256Of(finalPath, false);
  const m = lab.machine(mac);
  const result = m?.result as Record<string, unknown> | undefined;
  assert.equal(result?.ok, true, JSON.stringify(m)?.slice(0, 3000));
  assert.equal(result?.action, 'capture');
  assert.equal(result?.sha256, storedSha, 'the agent hashed exactly what the server stored');
  assert.equal(result?.bytes, image.size);
  const catalog = JSON.parse(lab.api('GET', '/api/images')) as { name: string; sha256?: string; format?: string }[] | { images: { name: string; sha256?: string; format?: string }[] };
  const entry = (Array.isArray(catalog) ? catalog : catalog.images).find((i) => i.name === name);
  assert.equal(entry?.sha256, storedSha, 'the server recorded the sha256 of the stored file');
  assert.equal(entry?.format, 'zstd');
  assert.ok(stored.size < image.size / 4, `compressed: ${stored.size} bytes`);
  assert.equal(await sha256Of(finalPath, true), image.sha256.raw, 'decompressed, the upload is the disk byte for byte');
});

test('capture --format tar.zst: the agent archives the Debian root LV and /boot as the fstab mounts them; GNU tar extracts exactly the files the disk holds', { skip, timeout: captureMs + 180_000 }, async (t) => {
  const lab = new QemuNetLab('10.231.26');
  t.after(() => lab.close());
  await lab.startDnsmasq();
  await lab.startServer();
  const mac = '52:54:00:d0:00:26';
  const name = 'captured-debian-root.tar.zst';
  lab.setAction(mac, { action: 'capture', upload: `${lab.serverUrl}/images/${name}`, format: 'tar.zst', after: 'poweroff', onError: 'poweroff' });
  const disk = path.join(work, 'source-tar.img');
  execFileSync('cp', ['--sparse=always', image.raw, disk]);

  const vm = await startVm({
    name: 'capture-debian-tar', kernel: initramfs.kernel, initrd: initramfs.initrd, memMiB: 768,
    append: `console=ttyS0 quiet ${lab.agentArgs(mac)} booty.countdown=0`,
    disks: [{ path: disk }], nic: { tap: lab.tap, netns: lab.ns, mac },
  }, t);
  const exit = await vm.waitExit(captureMs);
  assert.equal(exit.code, 0, vm.tail());
  const out = vm.output;
  assert.doesNotMatch(out, /BOOTY FAILED|Kernel panic|kernel BUG/, vm.tail(6000));
  assert.match(out, /capture: root filesystem \/dev\/(mapper\/bootyvg-root|bootyvg\/root) \(ext4\) mounted read-only/);
  assert.match(out, /capture: \/dev\/vda1 \(ext4\) mounted read-only at \/boot/);
  const line = /\[\s*(\d+\.\d+)\] booty: capture: archived (\d+) files \(([^)]+)\)/.exec(out);
  assert.ok(line, 'the agent logged what it archived');
  t.diagnostic(`tar capture: ${line[2]} files (${line[3]}), done ${line[1]} s after kernel start`);
  const result = lab.machine(mac)?.result as Record<string, unknown> | undefined;
  assert.equal(result?.ok, true);
  const stored = path.join(lab.dataDir, 'images', name);
  assert.equal(result?.sha256, await sha256Of(stored, false), 'the agent hashed exactly what the server stored');
  assert.equal(await sha256Of(disk, false), image.sha256.raw, 'the disk was only read');

  // The judge: the image's own filesystems, mounted read-only on the host through offset loop
  // devices (the root LV located from the PV's metadata), against GNU tar's extraction.
  const expected = path.join(work, 'expected');
  const into = path.join(work, 'extracted');
  fs.mkdirSync(expected);
  fs.mkdirSync(into);
  const lv = lvInPv(image.raw, image.rootPartition.startSector * 512, 'bootyvg', 'root');
  const loops: string[] = [];
  const mountRo = (offset: number, bytes: number, at: string) => {
    const dev = execFileSync('losetup', ['-f', '--show', '-r', '-o', String(offset), '--sizelimit', String(bytes), image.raw], { encoding: 'utf8' }).trim();
    loops.push(dev);
    execFileSync('mount', ['-t', 'ext4', '-o', 'ro,noload', dev, at]);
  };
  try {
    mountRo(image.rootPartition.startSector * 512 + lv.offset, lv.bytes, expected);
    mountRo(image.bootPartition.startSector * 512, image.bootPartition.sectors * 512, path.join(expected, 'boot'));
    execFileSync('bash', ['-euo', 'pipefail', '-c', `zstd -dc -q ${stored} | tar --xattrs --xattrs-include='*' --numeric-owner -xpf - -C ${into}`]);
    const names = walk(expected);
    assert.ok(names.length > 5000, `a Debian root has thousands of entries (${names.length})`);
    assert.deepEqual(walk(into), names);
    for (const rel of ['', ...names]) {
      assert.deepEqual(describe(into, rel), describe(expected, rel), `entry "${Buffer.from(rel, 'latin1').toString('utf8')}"`);
    }
    assert.ok(names.some((n) => n.startsWith(`boot/vmlinuz-${image.kernel}`)), 'the kernel on /boot is in the tarball');
  } finally {
    for (const at of [path.join(expected, 'boot'), expected]) { try { execFileSync('umount', [at]); } catch { /* not mounted */ } }
    for (const dev of loops) { try { execFileSync('losetup', ['-d', dev]); } catch { /* gone */ } }
  }
});
