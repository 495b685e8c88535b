// Images in formats booty recognizes but does not decode, each made by its real tool (lz4, lzip, lzop, compress, pigz -z, qemu-img for qcow/qcow2/QED/VMDK/VHD/VHDX/VDI/Parallels,
// img2simg, zip, 7z, GNU tar, cpio, genisoimage, mksquashfs, wimcapture): deploy must refuse every
// one before the first write (exit 5, a sentence naming the format and the next step, the disk's
// bytes unchanged), from a file and over HTTP from booty server and from a plain static origin;
// `--format raw` must write each as it is. Compressed images whose *content* is one of these
// (.tar.gz, .qcow2.zst) are refused the same way; raw disks that start with a boot sector or a GPT
// and pzstd's zstd (a skippable frame first) still deploy. The server's catalog names the format.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { seededRandom } from '../helpers/seeded-random.ts';
import { runBooty } from '../helpers/booty-cli.ts';
import { startStaticOrigin, type StaticOrigin } from '../helpers/static-origin.ts';

const MiB = 1 << 20;
const skip = process.getuid?.() !== 0 ? 'needs root (host tools installed by scripts/host-deps.sh)' : false;

let dir: string;
let server: BootyServerProcess;
let origin: StaticOrigin;
let originUrl: string;
/** the disk image every format wraps: 6 MiB, an MBR signature, random and text parts */
let raw: Buffer;
/** what every target disk holds before a deploy: a refusal must leave exactly this */
let garbage: Buffer;

const sh = (cmd: string) => execFileSync('bash', ['-euo', 'pipefail', '-c', cmd], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Case {
  /** file name in `dir` */
  file: string;
  /** shell command (cwd = dir, disk.raw is the image) that makes it with the real tool */
  make: string;
  /** the catalog's word for it (`unsupported: <id>`) */
  id: string;
  /** what the refusal must say */
  message: RegExp;
}

const cases: Case[] = [
  { file: 'd.lz4', make: 'lz4 -q -c disk.raw > d.lz4', id: 'lz4', message: /lz4-compressed \(lz4 frame format\).*lz4 -d/ },
  { file: 'd.legacy.lz4', make: 'lz4 -q -l -c disk.raw > d.legacy.lz4', id: 'lz4', message: /lz4-compressed \(legacy lz4 format\)/ },
  { file: 'd.lz', make: 'lzip -c disk.raw > d.lz', id: 'lzip', message: /lzip-compressed.*lzip -d/ },
  { file: 'd.lzma', make: 'xz --format=lzma -c disk.raw > d.lzma', id: 'lzma', message: /lzma-compressed \(the legacy \.lzma format\)/ },
  { file: 'd.lzo', make: 'lzop -c disk.raw > d.lzo', id: 'lzop', message: /lzop-compressed.*lzop -d/ },
  { file: 'd.Z', make: 'compress -c disk.raw > d.Z', id: 'compress', message: /compressed with compress\(1\) \(\.Z, LZW\)/ },
  { file: 'd.zz', make: 'pigz -z -c disk.raw > d.zz', id: 'zlib', message: /a zlib stream \(deflate in the RFC 1950 wrapper, not gzip\).*pigz -dz/ },
  { file: 'd.qcow', make: 'qemu-img convert -O qcow disk.raw d.qcow', id: 'qcow2', message: /a qcow \(version 1\) disk image/ },
  // a standalone qcow2 (v2, v3) deploys (deploy-qcow2.test.ts); what needs another file or a key does not
  { file: 'over.qcow2', make: 'qemu-img convert -O qcow2 -c disk.raw d.qcow2 && qemu-img create -q -f qcow2 -b d.qcow2 -F qcow2 over.qcow2', id: 'qcow2', message: /qcow2 \(version 3\) disk image, with a backing file "d\.qcow2".*backing chain/ },
  { file: 'enc.qcow2', make: 'for i in 1 2 3 4 5; do qemu-img create -q -f qcow2 --object secret,id=s0,data=booty -o encrypt.format=luks,encrypt.key-secret=s0 enc.qcow2 8M && exit 0; sleep 1; done; exit 1', id: 'qcow2', message: /qcow2 \(version 3\) disk image, encrypted \(LUKS\)/ },
  { file: 'd.qed', make: 'qemu-img convert -O qed disk.raw d.qed', id: 'qed', message: /a QED disk image/ },
  { file: 'd.vmdk', make: 'qemu-img convert -O vmdk disk.raw d.vmdk', id: 'vmdk', message: /a VMDK disk image \(sparse extent\)/ },
  { file: 'so.vmdk', make: 'qemu-img convert -O vmdk -o subformat=streamOptimized disk.raw so.vmdk', id: 'vmdk', message: /a VMDK disk image \(stream-optimized, compressed grains\)/ },
  { file: 'flat.vmdk', make: 'qemu-img convert -O vmdk -o subformat=monolithicFlat disk.raw flat.vmdk', id: 'vmdk', message: /a VMDK descriptor file/ },
  { file: 'd.vhd', make: 'qemu-img convert -O vpc disk.raw d.vhd', id: 'vhd', message: /a VHD disk image/ },
  { file: 'd.vhdx', make: 'qemu-img convert -O vhdx disk.raw d.vhdx', id: 'vhdx', message: /a VHDX disk image/ },
  { file: 'd.vdi', make: 'qemu-img convert -O vdi disk.raw d.vdi', id: 'vdi', message: /a VirtualBox VDI disk image/ },
  { file: 'd.hdd', make: 'qemu-img create -q -f parallels d.hdd 8M', id: 'parallels', message: /a Parallels disk image/ },
  { file: 'd.simg', make: 'img2simg disk.raw d.simg', id: 'android-sparse', message: /an Android sparse image.*simg2img/ },
  { file: 'd.zip', make: 'zip -q d.zip disk.raw', id: 'zip', message: /a zip archive, which booty does not deploy onto a disk.*unzip/ },
  { file: 'd.7z', make: '7z a -bd -bso0 d.7z disk.raw', id: '7z', message: /a 7-Zip archive/ },
  { file: 'gnu.tar', make: 'tar --format=gnu -cf gnu.tar disk.raw', id: 'tar', message: /a tar archive \(GNU\)/ },
  { file: 'pax.tar', make: 'tar --format=pax -cf pax.tar disk.raw', id: 'tar', message: /a tar archive \(POSIX ustar\/pax\)/ },
  { file: 'v7.tar', make: 'tar --format=v7 -cf v7.tar disk.raw', id: 'tar', message: /a tar archive \(v7\)/ },
  { file: 'd.cpio', make: 'echo disk.raw | cpio --quiet -o -H newc > d.cpio', id: 'cpio', message: /a cpio archive \(newc format/ },
  { file: 'odc.cpio', make: 'echo disk.raw | cpio --quiet -o -H odc > odc.cpio', id: 'cpio', message: /a cpio archive \(odc format\)/ },
  { file: 'bin.cpio', make: 'echo disk.raw | cpio --quiet -o -H bin > bin.cpio', id: 'cpio', message: /a cpio archive \(binary format\)/ },
  { file: 'd.iso', make: 'mkdir -p iso && cp disk.raw iso/ && genisoimage -quiet -o d.iso iso', id: 'iso9660', message: /an ISO 9660 image \(an installer or live medium\), which is not a whole-disk image/ },
  // a hybrid ISO (what isohybrid makes of it): the same ISO with an MBR in its first sector
  { file: 'hybrid.iso', make: 'cp d.iso hybrid.iso && printf "\\x55\\xaa" | dd of=hybrid.iso bs=1 seek=510 conv=notrunc status=none', id: 'iso9660', message: /hybrid: it also carries a partition table.*--format raw/ },
  { file: 'd.sqfs', make: 'mksquashfs iso d.sqfs -quiet -noappend', id: 'squashfs', message: /a squashfs filesystem image/ },
  { file: 'd.wim', make: 'wimcapture iso d.wim >/dev/null', id: 'wim', message: /a Windows Imaging \(WIM\) archive/ },
  // no free tool writes RAR: the two signatures, as RAR 4 and RAR 5 start every archive
  { file: 'd4.rar', make: 'printf "Rar!\\x1a\\x07\\x00" > d4.rar && cat disk.raw >> d4.rar', id: 'rar', message: /a RAR archive/ },
  { file: 'd5.rar', make: 'printf "Rar!\\x1a\\x07\\x01\\x00" > d5.rar && cat disk.raw >> d5.rar', id: 'rar', message: /a RAR archive/ },
];

/** Compressed images booty decodes whose content it must still refuse. */
const wrapped: Case[] = [
  { file: 'd.tar.gz', make: 'tar --format=gnu -czf d.tar.gz disk.raw', id: 'gzip', message: /the gzip image decompresses to a tar archive \(GNU\), which booty does not deploy onto a disk/ },
  { file: 'd.tar.zst', make: 'tar --format=pax -cf - disk.raw | zstd -q -c > d.tar.zst', id: 'zstd', message: /the zstd image decompresses to a tar archive/ },
  { file: 'd.qcow2.gz', make: 'pigz -c d.qcow2 > d.qcow2.gz', id: 'gzip', message: /the gzip image decompresses to a qcow2 disk image, which booty deploys only as served/ },
  { file: 'd.xz.zst', make: 'xz -c disk.raw | zstd -q -c > d.xz.zst', id: 'zstd', message: /the zstd image decompresses to xz-compressed data \(compressed twice\)/ },
  { file: 'd.gz.gz', make: 'pigz -c disk.raw | gzip -c > d.gz.gz', id: 'gzip', message: /the gzip image decompresses to gzip-compressed data \(compressed twice\)/ },
];

before(async () => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-unsupported-'));
  const rand = seededRandom(14);
  raw = Buffer.alloc(6 * MiB);
  for (let i = 0; i < 2 * MiB; i++) raw[i] = Math.floor(rand() * 256);
  raw.write('booty refuses what it cannot decode\n'.repeat(50_000), 3 * MiB, 'latin1');
  raw[0] = 0xeb; raw[1] = 0x63; raw[2] = 0x90; // a GRUB boot sector's first jump
  raw[510] = 0x55; raw[511] = 0xaa;
  fs.writeFileSync(path.join(dir, 'disk.raw'), raw);
  garbage = Buffer.alloc(16 * MiB);
  for (let i = 0; i < garbage.length; i += 4096) garbage.writeUInt32LE(Math.floor(rand() * 2 ** 32), i);
  for (const c of [...cases, ...wrapped]) sh(c.make);
  // copied in by hand before the server starts (it detects and hashes them in the background);
  // one more is uploaded in the catalog test
  const dataDir = path.join(dir, 'server');
  fs.mkdirSync(path.join(dataDir, 'images'), { recursive: true });
  for (const c of [...cases, ...wrapped]) fs.copyFileSync(path.join(dir, c.file), path.join(dataDir, 'images', c.file));
  server = await startBootyServer({ dataDir });
  origin = await startStaticOrigin(dir);
  originUrl = origin.url;
});

after(async () => {
  await server?.close();
  origin?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** A 16 MiB file disk holding garbage: a refused deploy must leave every byte of it. */
function freshDisk(name: string): string {
  const p = path.join(dir, `${name}.disk`);
  fs.writeFileSync(p, garbage);
  return p;
}

const sources = (file: string) => [
  ['file', path.join(dir, file)],
  ['booty server', `${server.url}/images/${file}`],
  ['static origin', `${originUrl}/${file}`],
] as const;

for (const c of [...cases, ...wrapped]) {
  test(`refused before the first write: ${c.file} (${c.id})`, { skip }, async () => {
    await Promise.all(sources(c.file).map(async ([where, url]) => {
      const disk = freshDisk(`${c.file}-${where.replace(/ /g, '-')}`);
      const r = await runBooty(['deploy', '-q', '--image', url, '--disk', disk]);
      assert.equal(r.status, 5, `${where}: exit 5 (decompress stage)\n${r.err}`);
      assert.doesNotMatch(r.out, /OK/, `${where}: no success printed`);
      assert.match(r.err, c.message, where);
      assert.match(r.err, /booty: decompress: .*the disk was not written/, where);
      assert.ok(fs.readFileSync(disk).equals(garbage), `${where}: the disk is byte for byte what it was`);
    }));
  });
}

test('--format raw writes each refused format as it is, bit-exact', { skip }, async () => {
  for (const c of cases) {
    const disk = freshDisk(`${c.file}-raw`);
    const image = fs.readFileSync(path.join(dir, c.file));
    if (image.length > garbage.length) continue; // (none is: every case wraps a 6 MiB image)
    const r = await runBooty(['deploy', '-q', '--format', 'raw', '--image', path.join(dir, c.file), '--disk', disk]);
    assert.equal(r.status, 0, `${c.file}: ${r.err}`);
    assert.match(r.err, /but --format raw was given: writing its bytes as they are/, c.file);
    const after = fs.readFileSync(disk);
    assert.ok(after.subarray(0, image.length).equals(image), `${c.file}: written as served`);
  }
});

test('raw disks that start with a boot sector or a GPT still deploy; the result says nothing verified them', { skip }, async () => {
  const gpt = path.join(dir, 'gpt.raw');
  fs.writeFileSync(gpt, Buffer.alloc(8 * MiB));
  sh('sgdisk -q -n 1:2048:0 -t 1:8300 gpt.raw');
  for (const [file, image] of [['disk.raw', raw], ['gpt.raw', fs.readFileSync(gpt)]] as const) {
    for (const [where, url] of sources(file).filter(([w]) => w !== 'booty server')) {
      const disk = freshDisk(`${file}-ok`);
      const r = await runBooty(['deploy', '-q', '--image', url, '--disk', disk]);
      assert.equal(r.status, 0, `${file} from ${where}: ${r.err}`);
      assert.match(r.out, /OK: .*raw.*; raw image, no checksum: nothing verified these bytes/, `${file} from ${where}`);
      assert.ok(fs.readFileSync(disk).subarray(0, image.length).equals(image), `${file} from ${where}: bit-exact`);
    }
  }
  // with a checksum, nothing to warn about
  const disk = freshDisk('disk.raw-sha');
  const r = await runBooty(['deploy', '-q', '--image', path.join(dir, 'disk.raw'), '--disk', disk, '--sha256', sha(raw)]);
  assert.equal(r.status, 0, r.err);
  assert.doesNotMatch(r.out + r.err, /nothing verified/);
});

test('pzstd output (a skippable frame before each zstd frame) is zstd, decoded bit-exact', { skip }, async () => {
  sh('pzstd -q -p 2 -c disk.raw > d.pzst');
  const disk = freshDisk('pzst');
  const r = await runBooty(['deploy', '-q', '--image', `${originUrl}/d.pzst`, '--disk', disk]);
  assert.equal(r.status, 0, r.err);
  assert.match(r.out, /OK: 6291456 bytes .*zstd/);
  assert.ok(fs.readFileSync(disk).subarray(0, raw.length).equals(raw));
});

test('--require-checksum refuses an image nobody gave a sha256 for, before the first write', { skip }, async () => {
  // a gzip image whose magic lost a bit reads as raw: only a checksum can tell
  const damaged = fs.readFileSync(path.join(dir, 'd.tar.gz'));
  damaged[0] ^= 0x01;
  fs.writeFileSync(path.join(dir, 'flipped.img'), damaged);
  const disk = freshDisk('require');
  const r = await runBooty(['deploy', '-q', '--require-checksum', '--image', `${originUrl}/flipped.img`, '--disk', disk]);
  assert.equal(r.status, 6, r.err);
  assert.match(r.err, /verify: a checksum is required but none is known for this image.*the disk was not written/);
  assert.ok(fs.readFileSync(disk).equals(garbage));
  // booty server's X-Image-Sha256 counts as one
  const put = await fetch(`${server.url}/images/plain.raw`, { method: 'PUT', body: raw });
  assert.equal(put.status, 201, await put.text());
  const viaServer = await runBooty(['deploy', '-q', '--require-checksum', '--image', `${server.url}/images/plain.raw`, '--disk', freshDisk('require-srv')]);
  assert.equal(viaServer.status, 0, viaServer.err);
  assert.doesNotMatch(viaServer.out, /nothing verified/);
});

test("the server's catalog names each refused format", { skip }, async () => {
  // images copied in by hand are hashed and detected in the background: wait for them
  const want = new Map([...cases, ...wrapped].map((c) => [c.file, wrapped.includes(c) ? c.id : `unsupported: ${c.id}`]));
  let catalog: Array<{ name: string; format?: string }> = [];
  for (let i = 0; i < 200; i++) {
    catalog = (await (await fetch(`${server.url}/api/images`)).json() as { images: typeof catalog }).images;
    if ([...want.keys()].every((f) => catalog.find((e) => e.name === f)?.format !== undefined)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const [file, format] of want) assert.equal(catalog.find((e) => e.name === file)?.format, format, file);
  const put = await fetch(`${server.url}/images/uploaded.lz`, { method: 'PUT', body: fs.readFileSync(path.join(dir, 'd.lz')) });
  assert.equal(put.status, 201, await put.text());
  catalog = (await (await fetch(`${server.url}/api/images`)).json() as { images: typeof catalog }).images;
  assert.equal(catalog.find((e) => e.name === 'uploaded.lz')?.format, 'unsupported: lzip');
  const head = await fetch(`${server.url}/images/d.lz4`, { method: 'HEAD' });
  assert.equal(head.headers.get('x-image-format'), 'unsupported: lz4');
  assert.equal(head.headers.get('x-image-size'), null, 'no uncompressed size is claimed for a format booty does not decode');
});

test('booty server --require-checksum: every deploy action it serves carries requireChecksum', { skip }, async () => {
  const strict = await startBootyServer({ args: ['--require-checksum'] });
  try {
    const mac = '52-54-00-00-14-01';
    const set = await fetch(`${strict.url}/api/machines/${mac}/action`, {
      method: 'PUT', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'deploy', image: `${originUrl}/disk.raw`, disk: '/dev/vda' }),
    });
    assert.ok(set.ok, await set.text());
    const served = await (await fetch(`${strict.url}/${mac}`)).json() as { booty: { requireChecksum?: boolean } };
    assert.equal(served.booty.requireChecksum, true);
    const plain = await (await fetch(`${server.url}/api/machines/${mac}/action`, { method: 'PUT', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'deploy', image: `${originUrl}/disk.raw`, disk: '/dev/vda' }) })).text();
    assert.ok(plain.length > 0);
    const open = await (await fetch(`${server.url}/${mac}`)).json() as { booty: { requireChecksum?: boolean } };
    assert.equal(open.booty.requireChecksum, undefined, 'without the flag the action is served as stored');
  } finally {
    await strict.close();
  }
});
