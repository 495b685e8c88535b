// `booty capture --format tar[.gz|.zst]` on a real disk: a GPT loop disk (64 GiB, sparse) with
// /boot (ext4), /srv/data (XFS) and a root (ext4, the fixture tree of test/helpers/rootfs-tree.ts
// plus an fstab naming /boot by UUID and /srv/data by PARTUUID), captured to a real `booty server`.
// GNU tar extracts the stored tarball (zstd -dc / gzip -dc in front) and the result must equal the
// three filesystems mounted together, entry by entry; the tarball holds the files, not the disk
// (a few MiB from 64 GiB), and the disk is not written. This host's kernel has no vfat, so the ESP
// (made by mkfs.vfat, in the fstab with nofail) is the case of a filesystem that does not mount:
// left out and said; without nofail, the capture fails naming it (the agent's kernel has vfat).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addPartitions, attachLoop, detachAllLoops } from '../helpers/loop-device.ts';
import { runBooty } from '../helpers/booty-cli.ts';
import { startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';
import { buildRootfsTree, describe, ROOTFS_TREE_TOOLS, walk } from '../helpers/rootfs-tree.ts';

const tools = ['tar', 'sfdisk', 'partx', 'mkfs.ext4', 'mkfs.xfs', 'mkfs.vfat', 'blkid', 'zstd', ...ROOTFS_TREE_TOOLS];
const hasTools = tools.every((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0);
const skip = process.getuid?.() !== 0
  ? (process.env.CI === 'true' ? false : 'needs root')
  : skipUnlessPresent(hasTools, `needs ${tools.join(', ')} (scripts/host-deps.sh)`);

let dir: string;
let disk: string;
let server: BootyServerProcess;
/** the three filesystems mounted as the OS mounts them: what a capture must reproduce */
let expected: string;
let diskSha: string;
const DISK_BYTES = 64 * 2 ** 30;
const sh = (cmd: string): string => execFileSync('bash', ['-euo', 'pipefail', '-c', cmd], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** sha256 of the disk's first 1 GiB (the table, ESP, /boot, /srv/data and the root's start): unchanged by a capture */
function headSha(): string {
  const fd = fs.openSync(disk, 'r');
  try {
    const h = createHash('sha256');
    const buf = Buffer.alloc(4 << 20);
    for (let off = 0; off < 2 ** 30; off += buf.length) h.update(buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, off)));
    return h.digest('hex');
  } finally { fs.closeSync(fd); }
}

before(async () => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-tree-capture-'));
  const file = path.join(dir, 'disk.img');
  fs.closeSync(fs.openSync(file, 'w'));
  fs.truncateSync(file, DISK_BYTES);
  disk = attachLoop(file);
  sh(`printf 'label: gpt\\n,64MiB,U\\n,256MiB,L\\n,512MiB,L\\n,,L\\n' | sfdisk -q ${disk}`);
  addPartitions(disk);
  sh(`mkfs.vfat -n ESP ${disk}p1 >/dev/null; mkfs.ext4 -q -L boot ${disk}p2; mkfs.xfs -q ${disk}p3; mkfs.ext4 -q -L root ${disk}p4`);
  const bootUuid = sh(`blkid -p -o value -s UUID ${disk}p2`).trim();
  const espUuid = sh(`blkid -p -o value -s UUID ${disk}p1`).trim();
  const dataPartUuid = sh(`blkid -p -o value -s PART_ENTRY_UUID ${disk}p3`).trim();
  // the expected tree: root, /boot and /boot/efi contents, built on plain directories
  expected = path.join(dir, 'expected');
  buildRootfsTree(expected);
  sh(`cd expected
    mkdir -p boot/efi srv/data/www
    printf 'kernel\\n' > boot/vmlinuz-test; printf 'page\\n' > srv/data/www/index.html; chown 33:33 srv/data/www
    printf '# test\\nUUID=${bootUuid} /boot ext4 defaults 0 2\\nUUID=${espUuid} /boot/efi vfat umask=0077,nofail 0 1\\nPARTUUID=${dataPartUuid} /srv/data xfs defaults 0 2\\nUUID=0000-not-here /srv/old ext4 defaults,nofail 0 2\\ntmpfs /tmp tmpfs defaults 0 0\\n' > etc/fstab
    printf 'ID=test\\n' > etc/os-release`);
  // copy it onto the disk's filesystems with GNU tar (--xattrs keeps the capability), then read
  // the mounted result back as the expected tree (vfat drops owners and modes: what it holds is truth)
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  sh(`mount ${disk}p4 mnt && mkdir -p mnt/boot mnt/srv/data && mount ${disk}p2 mnt/boot && mount ${disk}p3 mnt/srv/data
    tar --xattrs --xattrs-include='*' --numeric-owner -cpf - -C expected . | tar --xattrs --xattrs-include='*' --numeric-owner -xpf - -C mnt
    rm -rf expected; mkdir expected
    tar --xattrs --xattrs-include='*' --numeric-owner -cpf - -C mnt . | tar --xattrs --xattrs-include='*' --numeric-owner -xpf - -C expected
    umount mnt/srv/data; umount mnt/boot; umount mnt`);
  diskSha = headSha();
  server = await startBootyServer();
});

after(async () => {
  await server?.close();
  detachAllLoops();
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
});

for (const format of ['tar.zst', 'tar.gz', 'tar'] as const) {
  test(`capture --format ${format}: the root, /boot and /srv/data as the fstab mounts them, judged by GNU tar`, { skip }, async () => {
    const name = `tree-${format.replace('.', '-')}`;
    const r = await runBooty(['capture', '-q', '--disk', disk, '--upload', `${server.url}/images/${name}`, '--format', format]);
    assert.equal(r.status, 0, r.err);
    if (format === 'tar.zst') process.stderr.write(r.err.split('\n').map((l) => `# ${l}`).join('\n') + '\n');
    assert.match(r.out, /booty capture: OK: .* files from \/ \/boot \/srv\/data\)/);
    assert.match(r.err, /\/srv\/old \(UUID=0000-not-here\): not on/);
    assert.match(r.err, /\/boot\/efi did not mount and its fstab entry says nofail; not archived/);
    const stored = path.join(server.dataDir, 'images', name);
    const size = fs.statSync(stored).size;
    assert.ok(size < 16 * 2 ** 20, `the tarball holds the files (${size} bytes), not the ${DISK_BYTES}-byte disk`);
    const decode = format === 'tar.zst' ? 'zstd -dc' : format === 'tar.gz' ? 'gzip -dc' : 'cat';
    const into = fs.mkdtempSync(path.join(dir, 'into-'));
    sh(`${decode} ${stored} | tar --xattrs --xattrs-include='*' --numeric-owner -xpf - -C ${into}`);
    const names = walk(expected);
    assert.deepEqual(walk(into), names);
    for (const rel of ['', ...names]) {
      assert.deepEqual(describe(into, rel), describe(expected, rel), `entry "${Buffer.from(rel, 'latin1').toString('utf8')}"`);
    }
    assert.ok(names.includes('srv/data/www/index.html') && names.includes('boot/vmlinuz-test') && names.includes('ping'));
    assert.match(sh(`getcap ${into}/ping`), /cap_setuid,cap_net_raw=ep/);
    assert.equal(headSha(), diskSha, 'the disk was not written');
  });
}

test('a disk without an OS root is refused, saying what to do instead', { skip }, async () => {
  const file = path.join(dir, 'blank.img');
  fs.closeSync(fs.openSync(file, 'w'));
  fs.truncateSync(file, 256 * 2 ** 20);
  const blank = attachLoop(file);
  sh(`printf 'label: gpt\\n,,L\\n' | sfdisk -q ${blank}`);
  addPartitions(blank);
  sh(`mkfs.ext4 -q ${blank}p1`);
  const r = await runBooty(['capture', '-q', '--disk', blank, '--upload', `${server.url}/images/blank`, '--format', 'tar.zst']);
  assert.equal(r.status, 8, r.err);
  assert.match(r.err, /no filesystem on .* holds an OS root .*; the disk .*capture the whole disk with --format gzip or zstd instead/);
  assert.equal(fs.existsSync(path.join(server.dataDir, 'images', 'blank')), false);
});

test('a filesystem the fstab needs (no nofail) that does not mount fails the capture, naming it', { skip }, async () => {
  const mnt = path.join(dir, 'mnt');
  const fstab = path.join(mnt, 'etc/fstab');
  sh(`mount ${disk}p4 mnt`);
  const before = fs.readFileSync(fstab, 'utf8');
  try {
    fs.writeFileSync(fstab, before.replace('umask=0077,nofail', 'umask=0077'));
  } finally { sh('umount mnt'); }
  try {
    const r = await runBooty(['capture', '-q', '--disk', disk, '--upload', `${server.url}/images/no-esp`, '--format', 'tar.zst']);
    assert.equal(r.status, 8, r.err);
    assert.match(r.err, /cannot mount \/dev\/loop\d+p1 \(vfat\) read-only: .*a tarball without it would not be the OS/);
    assert.equal(fs.existsSync(path.join(server.dataDir, 'images', 'no-esp')), false);
  } finally {
    sh(`mount ${disk}p4 mnt`);
    fs.writeFileSync(fstab, before);
    sh('umount mnt');
  }
});
