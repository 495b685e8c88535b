// The small parts of growing: choosing the root LV, reading lvm output, recognising filesystems
// from real mkfs output, resolving paths inside a foreign root, and the real tool runner.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chooseRootLv, findLv, parseLvs, splitMapperName, type LvInfo } from '../../src/disk/lvm.ts';
import { detectContent, formatBytes, type Content } from '../../src/disk/fs-detect.ts';
import { resolveInRoot, executableInRoot } from '../../src/disk/root-path.ts';
import { spawnToolRunner } from '../../src/disk/tools.ts';
import { isBootyError } from '../../src/util/errors.ts';
import { lvmPvHead } from '../helpers/fake-block-io.ts';
import { tempDir } from '../helpers/sparse-disk-image.ts';

const dir = tempDir('booty-growparts-');
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('lvm helpers', () => {
  const lvs: LvInfo[] = parseLvs([
    '  /dev/ubuntu-vg/ubuntu-lv|ubuntu-lv|ubuntu-vg|10737418240|-wi-a-----',
    '  /dev/ubuntu-vg/swap|swap|ubuntu-vg|2147483648|-wi-a-----',
    '  /dev/ubuntu-vg/home|home|ubuntu-vg|21474836480|-wi-a-----',
    '',
  ].join('\n'));

  it('parses lvs output', () => {
    assert.equal(lvs.length, 3);
    assert.deepEqual(lvs[0], { path: '/dev/ubuntu-vg/ubuntu-lv', name: 'ubuntu-lv', vg: 'ubuntu-vg', sizeBytes: 10737418240, attr: '-wi-a-----' });
  });

  it('splits device-mapper names with doubled dashes', () => {
    assert.deepEqual(splitMapperName('ubuntu--vg-ubuntu--lv'), ['ubuntu-vg', 'ubuntu-lv']);
    assert.deepEqual(splitMapperName('vg0-root'), ['vg0', 'root']);
    assert.equal(splitMapperName('nodash'), undefined);
  });

  it('finds an LV by every spelling operators use', () => {
    for (const s of ['/dev/ubuntu-vg/home', 'ubuntu-vg/home', '/dev/mapper/ubuntu--vg-home', 'home']) {
      assert.equal(findLv(lvs, s)?.name, 'home', s);
    }
    assert.equal(findLv(lvs, '/dev/other-vg/home'), undefined);
  });

  it('detects the root LV: named root, else the largest with a filesystem', () => {
    const ext = (gib: number): Content => ({ kind: 'ext', sizeBytes: gib * 2 ** 30, blockSize: 4096 });
    const contents = new Map<string, Content>([
      ['/dev/ubuntu-vg/ubuntu-lv', ext(10)], ['/dev/ubuntu-vg/swap', { kind: 'swap' }], ['/dev/ubuntu-vg/home', ext(20)],
    ]);
    assert.equal(chooseRootLv(lvs, undefined, contents).name, 'home', 'largest filesystem');
    const withRoot = [...lvs, { path: '/dev/ubuntu-vg/root', name: 'root', vg: 'ubuntu-vg', sizeBytes: 1, attr: '' }];
    contents.set('/dev/ubuntu-vg/root', ext(1));
    assert.equal(chooseRootLv(withRoot, undefined, contents).name, 'root', 'named root wins');
    assert.equal(chooseRootLv(lvs, '/dev/ubuntu-vg/ubuntu-lv', contents).name, 'ubuntu-lv', 'asked for');
    assert.throws(() => chooseRootLv(lvs, undefined, new Map([['/dev/ubuntu-vg/swap', { kind: 'swap' }]])),
      (e: unknown) => isBootyError(e) && /no logical volume .* holds an ext4 or XFS filesystem/.test(e.message));
  });
});

describe('detectContent on real filesystems', () => {
  const headOf = (file: string) => {
    const fd = fs.openSync(file, 'r');
    try {
      const b = Buffer.alloc(128 * 1024);
      fs.readSync(fd, b, 0, b.length, 0);
      return b;
    } finally { fs.closeSync(fd); }
  };

  it('reads ext4 and its size as mkfs.ext4 made it', () => {
    const f = path.join(dir, 'ext4.img');
    execFileSync('truncate', ['-s', '48M', f]);
    execFileSync('mkfs.ext4', ['-q', '-F', '-b', '4096', f], { stdio: 'ignore' });
    const c = detectContent(headOf(f));
    assert.deepEqual(c, { kind: 'ext', blockSize: 4096, sizeBytes: 48 * 2 ** 20 });
    assert.equal(formatBytes(48 * 2 ** 20), '48.0 MiB');
  });

  it('reads a 64-bit ext4 with 1 KiB blocks', () => {
    const f = path.join(dir, 'ext4-1k.img');
    execFileSync('truncate', ['-s', '20M', f]);
    execFileSync('mkfs.ext4', ['-q', '-F', '-b', '1024', '-O', '64bit', f], { stdio: 'ignore' });
    assert.deepEqual(detectContent(headOf(f)), { kind: 'ext', blockSize: 1024, sizeBytes: 20 * 2 ** 20 });
  });

  it('reads XFS and its size as mkfs.xfs made it', () => {
    const f = path.join(dir, 'xfs.img');
    execFileSync('truncate', ['-s', '320M', f]);
    execFileSync('mkfs.xfs', ['-q', '-f', f], { stdio: 'ignore' });
    const c = detectContent(headOf(f));
    assert.equal(c.kind, 'xfs');
    assert.equal(c.kind === 'xfs' && c.sizeBytes, 320 * 2 ** 20);
  });

  it('recognises swap, LVM labels and nothing', () => {
    const f = path.join(dir, 'swap.img');
    execFileSync('truncate', ['-s', '4M', f]);
    execFileSync('mkswap', [f], { stdio: 'ignore' });
    assert.equal(detectContent(headOf(f)).kind, 'swap');
    assert.equal(detectContent(lvmPvHead()).kind, 'lvm2-pv');
    assert.equal(detectContent(Buffer.alloc(128 * 1024)).kind, 'unknown');
  });
});

describe('resolveInRoot', () => {
  const root = path.join(dir, 'root');
  fs.mkdirSync(path.join(root, 'usr/sbin'), { recursive: true });
  fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
  fs.symlinkSync('usr/sbin', path.join(root, 'sbin'));
  fs.symlinkSync('/run/systemd/resolve/stub-resolv.conf', path.join(root, 'etc/resolv.conf'));
  fs.symlinkSync('../../../../../../etc/passwd', path.join(root, 'etc/escape'));
  fs.writeFileSync(path.join(root, 'usr/sbin/resize2fs'), '#!/bin/sh\n', { mode: 0o755 });

  it('keeps absolute symlinks inside the root', () => {
    assert.equal(resolveInRoot(root, '/etc/resolv.conf'), path.join(root, 'run/systemd/resolve/stub-resolv.conf'));
  });
  it('keeps .. from climbing out of the root', () => {
    assert.equal(resolveInRoot(root, '/etc/escape'), path.join(root, 'etc/passwd'));
    assert.equal(resolveInRoot(root, '/../../etc/hostname'), path.join(root, 'etc/hostname'));
  });
  it('follows relative symlinks to tools', () => {
    assert.equal(executableInRoot(root, '/sbin/resize2fs'), path.join(root, 'usr/sbin/resize2fs'));
    assert.equal(executableInRoot(root, '/sbin/xfs_growfs'), undefined);
  });
  it('refuses symlink loops', () => {
    fs.symlinkSync('/loop', path.join(root, 'loop'));
    assert.throws(() => resolveInRoot(root, '/loop/x'), /too many symlinks/);
  });
});

describe('spawnToolRunner', () => {
  const tools = spawnToolRunner();
  it('captures output and accepts listed exit codes', async () => {
    const r = await tools.run('sh', ['-c', 'echo out; echo err >&2; exit 1'], { okCodes: [0, 1] });
    assert.deepEqual(r, { code: 1, stdout: 'out\n', stderr: 'err\n' });
  });
  it('names tool, arguments, exit code and the tail of stderr on failure', async () => {
    await assert.rejects(tools.run('sh', ['-c', 'for i in 1 2 3 4 5 6 7; do echo line$i >&2; done; exit 3']), (e: unknown) => {
      assert.ok(isBootyError(e));
      assert.equal(e.stage, 'grow');
      assert.match(e.message, /^sh -c .* exited with code 3: line3 \| line4 \| line5 \| line6 \| line7$/);
      return true;
    });
  });
  it('says when a tool is missing', async () => {
    assert.equal(tools.find('no-such-tool-booty'), undefined);
    await assert.rejects(tools.run('no-such-tool-booty', []), /no-such-tool-booty  ?not found on PATH/);
  });
  it('finds tools inside a root', () => {
    const root = path.join(dir, 'root');
    assert.equal(tools.find('resize2fs', root), '/usr/sbin/resize2fs');
    assert.equal(tools.find('lvm', root), undefined);
  });
});
