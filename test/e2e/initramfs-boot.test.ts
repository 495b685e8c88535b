// The real initramfs, end to end: built from the pinned inputs, reproducible, and booted in
// QEMU (TCG here) with 384 MiB (no rootfstype=ramfs when built at the default level), where
// node runs our bundle as PID 1 with its V8 code cache, the agent loads zstd-compressed modules,
// gets a DHCP lease from real dnsmasq through the test network and asks the host's HTTP server
// for its action.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import os from 'node:os';
import http from 'node:http';
import path from 'node:path';
import { readCpio } from '../../src/build/cpio.ts';
import { defaultLevel } from '../../src/build/compress.ts';
import { ensureInitramfs, type BuiltInitramfs } from '../helpers/initramfs-build.ts';
import { startVm, detectAccel, repoRoot } from '../helpers/qemu.ts';
import { createTestNet } from '../helpers/netns.ts';

const isRoot = process.getuid?.() === 0;
/** the zstd level test/helpers/initramfs-build.ts builds with */
const e2eLevel = process.env.BOOTY_E2E_ZSTD_LEVEL ?? '3';
const booty = path.join(repoRoot, 'bin', 'booty');
let built: BuiltInitramfs | undefined;
const initramfs = async () => (built ??= await ensureInitramfs());

test('build: same inputs give the same bytes; the archive holds node as /init and what the agent needs', { skip: !isRoot && 'needs root (apt-get download)' }, async () => {
  const b = await initramfs();
  // One build here; the second is the e2e archive (ensureInitramfs): its own build-initramfs run
  // from the same inputs (its cache key hashes them), compressed. Its cpio stream must be these bytes.
  const raw = [path.join(b.dir, '..', `raw-${process.pid}`)];
  execFileSync(booty, ['build-initramfs', '--bundle', b.bundle, '--out', raw[0], '--compression', 'none'], { cwd: repoRoot, stdio: 'pipe' });
  try {
    const first = readFileSync(path.join(raw[0], 'booty.cpio'));
    const sha = (x: Buffer) => createHash('sha256').update(x).digest('hex');
    const unz = execFileSync('zstd', ['-d', '-c', b.initrd], { maxBuffer: 1 << 30 });
    assert.equal(sha(unz), sha(first), 'two builds are byte-identical: this one and the e2e build (zstd archive, decompressed)');

    const entries = new Map(readCpio(first).map((e) => [e.name, e]));
    const init = entries.get('init')!;
    assert.match(init.data.toString(), /^#!\/bin\/node( --hash-seed=\d+)?\n/);
    assert.equal(init.fields.mode & 0o777, 0o755);
    const console = entries.get('dev/console')!;
    assert.deepEqual([console.fields.mode & 0o170000, console.fields.rdevmajor, console.fields.rdevminor], [0o020000, 5, 1]);
    assert.equal(entries.get('bin')!.data.toString(), 'usr/bin');
    for (const f of ['usr/bin/node', 'usr/bin/busybox', 'usr/lib/booty/booty.cjs', 'usr/lib/booty/booty.cjs.cache', 'usr/sbin/lvm', 'usr/sbin/resize2fs', 'usr/sbin/e2fsck',
      'usr/sbin/xfs_growfs', 'usr/sbin/sfdisk', 'usr/sbin/blkid', 'usr/lib/x86_64-linux-gnu/libc.so.6', 'usr/lib/x86_64-linux-gnu/libatomic.so.1',
      'usr/lib/booty/node_modules/@koromix/koffi-linux-x64/linux_x64/koffi.node', 'usr/lib/booty/node_modules/koffi/package.json', 'etc/lvm/lvm.conf',
      'usr/lib/x86_64-linux-gnu/libdeflate.so.0', 'usr/lib/x86_64-linux-gnu/libisal.so.2', 'usr/lib/x86_64-linux-gnu/liblzma.so.5',
      'usr/lib/x86_64-linux-gnu/libbz2.so.1.0']) {
      assert.ok(entries.has(f), `${f} is packed`);
    }
    assert.equal(entries.get('usr/sbin/pvresize')!.data.toString(), 'lvm');
    assert.equal(entries.get('usr/bin/sh')?.data.toString() ?? entries.get('usr/sbin/sh')?.data.toString(), 'busybox');
    const release = [...entries.keys()].find((n) => /^usr\/lib\/modules\/[^/]+\/modules\.dep$/.test(n))!.split('/')[3];
    const dep = entries.get(`usr/lib/modules/${release}/modules.dep`)!.data.toString();
    const alias = entries.get(`usr/lib/modules/${release}/modules.alias`)!.data.toString();
    for (const m of ['virtio_blk', 'virtio_net', 'virtio_pci', 'nvme', 'dm-mod', 'ext4', 'xfs', 'ahci', 'mlx5_core', 'ice', 'tg3']) {
      assert.match(dep, new RegExp(`/${m}\\.ko\\.zst:`), `${m} in modules.dep`);
    }
    // modules.dep lists exactly the packed modules, each zstd-compressed (a zstd frame)
    assert.equal([...entries.keys()].filter((n) => n.endsWith('.ko')).length, 0, 'no uncompressed .ko');
    const kos = [...entries.keys()].filter((n) => n.endsWith('.ko.zst')).map((n) => n.slice(`usr/lib/modules/${release}/`.length)).sort();
    for (const k of kos) assert.equal(entries.get(`usr/lib/modules/${release}/${k}`)!.data.readUInt32LE(0), 0xfd2fb528, `${k} is a zstd frame`);
    assert.deepEqual(dep.trim().split('\n').map((l) => l.split(':')[0]).sort(), kos);
    assert.match(alias, /^alias virtio:d00000002v\* virtio_blk$/m);
    process.stdout.write(`initramfs: ${(readFileSync(b.initrd).length / 1e6).toFixed(1)} MB zstd, ${(first.length / 1e6).toFixed(1)} MB unpacked, ${kos.length} modules\n`);

    // the initramfs's own node, bundle, koffi, libdeflate and ISA-L (dlopen'd: no program links
    // them), in a chroot of the unpacked archive: a gzip capture compresses with libdeflate, and
    // with ISA-L at level 1
    const rootDir = path.join(raw[0], 'root');
    mkdirSync(rootDir);
    execFileSync('cpio', ['-idm', '--quiet'], { cwd: rootDir, input: first, maxBuffer: 1 << 30 });
    writeFileSync(path.join(rootDir, 'tmp/disk.img'), Buffer.concat([Buffer.alloc(1 << 20), Buffer.from('booty initramfs libdeflate check\n'.repeat(40_000))]));
    const received: Buffer[] = [];
    // a plain PUT sink: no resumable uploads (404 to the upload start), then the commit
    const sink = http.createServer((req, res) => {
      const status = req.method === 'PUT' ? 201 : (req.url ?? '').includes('commit=') ? 200 : 404;
      req.on('data', (c: Buffer) => { if (req.method === 'PUT') received.push(c); });
      req.on('end', () => { res.writeHead(status, { 'content-type': 'application/json' }); res.end('{"ok":true}'); });
    });
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    try {
      const port = (sink.address() as { port: number }).port;
      const run = (env: NodeJS.ProcessEnv, ...args: string[]) => new Promise<string>((resolve, reject) => {
        execFile('chroot', [rootDir, '/usr/bin/node', '/usr/lib/booty/booty.cjs', 'capture', '--disk', '/tmp/disk.img',
          '--upload', `http://127.0.0.1:${port}/images/x.img.gz`, '--format', 'gzip', '--workers', '2', '-q', ...args],
        { env }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stderr + stdout)));
      });
      const out = await run({ PATH: '/usr/bin:/usr/sbin' });
      assert.match(out, /as independent gzip members on 2 worker threads, level 6 \(libdeflate\)/, out);
      assert.ok(gunzipSync(Buffer.concat(received)).equals(readFileSync(path.join(rootDir, 'tmp/disk.img'))), 'the upload gunzips to the disk');
      received.length = 0;
      assert.match(await run({ PATH: '/usr/bin:/usr/sbin' }, '--level', '1'), /level 1 \(ISA-L igzip\)/);
      assert.ok(gunzipSync(Buffer.concat(received)).equals(readFileSync(path.join(rootDir, 'tmp/disk.img'))), 'the level 1 upload gunzips to the disk');
      // and deploys back on the decode worker, igzip's streaming inflate measured against
      // node:zlib's in the worker (so ISA-L loaded there and decoded the sample right)
      writeFileSync(path.join(rootDir, 'tmp/x.img.gz'), Buffer.concat(received));
      writeFileSync(path.join(rootDir, 'tmp/out.img'), ''); // an empty file grows to the image
      const deployed = await new Promise<string>((resolve, reject) => {
        execFile('chroot', [rootDir, '/usr/bin/node', '/usr/lib/booty/booty.cjs', 'deploy', '--image', '/tmp/x.img.gz', '--disk', '/tmp/out.img', '-q'],
          { env: { PATH: '/usr/bin:/usr/sbin' } }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stderr + stdout)));
      });
      assert.match(deployed, /inflating one gzip stream on a worker thread \((ISA-L igzip|node:zlib); measured [^)]*igzip [\d.]+ MB\/s, node:zlib [\d.]+ MB\/s/, deployed);
      assert.ok(readFileSync(path.join(rootDir, 'tmp/out.img')).equals(readFileSync(path.join(rootDir, 'tmp/disk.img'))), 'deployed bit-exact');
      // xz (xz -T2, blocks in parallel) and bzip2 images through the packed liblzma and libbz2
      for (const [ext, tool] of [['xz', ['xz', '-T2', '--block-size=1MiB', '-c']], ['bz2', ['bzip2', '-c']]] as const) {
        writeFileSync(path.join(rootDir, `tmp/x.img.${ext}`), execFileSync(tool[0], [...tool.slice(1), path.join(rootDir, 'tmp/disk.img')], { maxBuffer: 1 << 28 }));
        writeFileSync(path.join(rootDir, 'tmp/out.img'), '');
        const log = await new Promise<string>((resolve, reject) => {
          execFile('chroot', [rootDir, '/usr/bin/node', '/usr/lib/booty/booty.cjs', 'deploy', '--image', `/tmp/x.img.${ext}`, '--disk', '/tmp/out.img', '-q'],
            { env: { PATH: '/usr/bin:/usr/sbin' } }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stderr + stdout)));
        });
        assert.match(log, ext === 'xz' ? /decoding xz with liblzma \(liblzma\.so\.5\)/ : /decoding bzip2 with libbz2 \(libbz2\.so\.1\.0\)/, log);
        assert.ok(readFileSync(path.join(rootDir, 'tmp/out.img')).equals(readFileSync(path.join(rootDir, 'tmp/disk.img'))), `${ext} deployed bit-exact`);
      }
      // without the library: node:zlib, and it says why
      rmSync(path.join(rootDir, 'usr/lib/x86_64-linux-gnu/libdeflate.so.0'));
      received.length = 0;
      assert.match(await run({ PATH: '/usr/bin:/usr/sbin' }), /\(node:zlib \(libdeflate\.so\.0 not loadable: /);
      assert.ok(gunzipSync(Buffer.concat(received)).equals(readFileSync(path.join(rootDir, 'tmp/disk.img'))));
    } finally {
      sink.close();
    }
  } finally {
    for (const d of raw) rmSync(d, { recursive: true, force: true });
  }
});

test('boot: 384 MiB, node is PID 1, the agent gets a lease from dnsmasq and asks the server for its action', { skip: !isRoot && 'needs root (netns, tap)', timeout: 600_000 }, async (t) => {
  const b = await initramfs();
  const net = await createTestNet(t);
  const dnsmasq = await net.startDnsmasq();
  const requests: string[] = [];
  const server = http.createServer((req, res) => { requests.push(req.url ?? ''); res.statusCode = 404; res.end('no action yet\n'); });
  await new Promise<void>((resolve) => server.listen(0, net.hostIp, resolve));
  t.after(() => server.close());
  const port = (server.address() as { port: number }).port;
  const mac = net.mac(1);
  // an empty sparse disk, so the agent's hardware step settles at once instead of waiting for one
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'booty-boot-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  const disk = path.join(tmp, 'disk.img');
  writeFileSync(disk, '');
  truncateSync(disk, 64 << 20);
  process.stdout.write(`qemu accel: ${await detectAccel(b.kernel)}\n`);
  const vm = await startVm({
    name: 'initramfs-boot', kernel: b.kernel, initrd: b.initrd, memMiB: 384,
    // The default build (zstd -22, 42 MB) unpacks into the tmpfs rootfs (capped at half the RAM)
    // of a 384 MiB machine as it is. The e2e build is compressed fast (level 3, 53 MB: the kernel
    // holds those 11 MB more while it unpacks, which lowers the cap): it needs rootfstype=ramfs there.
    append: `${e2eLevel === String(defaultLevel('zstd')) ? '' : 'rootfstype=ramfs '}MYURL=http://${net.hostIp}:${port} booty.onerror=poweroff`,
    nic: { tap: net.tap, netns: net.ns, mac }, disks: [{ path: disk }],
  }, t);
  await vm.waitFor(/Run \/init as init process/, 120_000);
  await vm.waitFor(/booty: \/init: node v\d+\.\d+\.\d+ started as PID 1/, 120_000);
  await vm.waitFor(/booty on node v\d+\.\d+\.\d+ as PID 1/, 120_000);
  await vm.waitFor(/hardware: .*disks: vda/, 240_000);
  await vm.waitFor(/network: \S+ 52:54:00:55:/, 240_000);
  const want = `/${mac.replace(/:/g, '-')}`;
  const deadline = Date.now() + 120_000;
  while (!requests.some((r) => r.startsWith(want)) && Date.now() < deadline && vm.running) await new Promise((r) => setTimeout(r, 500));
  assert.ok(requests.some((r) => r.startsWith(want)), `the agent asked for ${want}; got ${JSON.stringify(requests)}; console:\n${vm.tail()}`);
  assert.match(dnsmasq.log(), new RegExp(`DHCPACK\\(${net.hostIf}\\) ${net.prefix.replace(/\./g, '\\.')}\\.\\d+ ${mac}`));
  assert.doesNotMatch(vm.output, /Initramfs unpacking failed|Kernel panic/);
  assert.doesNotMatch(vm.output, /V8 rejected/, 'the code cache made at build time was used');
  assert.match(vm.output, /loaded virtio_blk/, 'a .ko.zst module was inflated and loaded');
});
