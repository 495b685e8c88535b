// The newc writer against GNU cpio(1): what cpio lists and extracts must be exactly what we
// wrote, and two archives of the same tree must be byte-identical.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type CpioEntry, readCpio, writeCpio, encodeHeader, checkName } from '../../src/build/cpio.ts';

async function archive(entries: CpioEntry[], mtime = 1_700_000_000): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of writeCpio(entries, { mtime })) parts.push(b);
  return Buffer.concat(parts);
}

function fixture(): CpioEntry[] {
  const big = Buffer.alloc(70_001, 7); // not a multiple of 4: exercises data padding
  return [
    { name: 'usr/bin/tool', kind: 'file', perm: 0o755, size: 5, data: Buffer.from('#!x\n\n') },
    { name: 'etc/conf', kind: 'file', perm: 0o644, size: 3, data: async () => Buffer.from('a=b') },
    { name: 'usr/lib/big.bin', kind: 'file', perm: 0o600, size: big.length, data: big },
    { name: 'empty', kind: 'file', perm: 0o644, size: 0, data: Buffer.alloc(0) },
    { name: 'bin', kind: 'symlink', target: 'usr/bin' },
    { name: 'usr', kind: 'dir', perm: 0o755 },
    { name: 'usr/bin', kind: 'dir', perm: 0o755 },
    { name: 'usr/lib', kind: 'dir', perm: 0o755 },
    { name: 'etc', kind: 'dir', perm: 0o755 },
    { name: 'tmp', kind: 'dir', perm: 0o1777 },
    { name: 'dev', kind: 'dir', perm: 0o755 },
    { name: 'dev/console', kind: 'char', perm: 0o600, major: 5, minor: 1 },
    { name: 'dev/sda', kind: 'block', perm: 0o660, major: 8, minor: 0 },
    { name: 'ünïcode name', kind: 'file', perm: 0o644, size: 2, data: Buffer.from('ok') },
  ];
}

test('cpio -t lists every entry, sorted, with modes, owners and mtime as written', async () => {
  const buf = await archive(fixture());
  const listing = execFileSync('cpio', ['-t', '-v', '--quiet', '--numeric-uid-gid'], { input: buf, env: { ...process.env, LC_ALL: 'C', TZ: 'UTC' } }).toString();
  const lines = listing.trim().split('\n');
  const names = lines.map((l) => l.replace(/^.* \d\d:\d\d (?:\d{4} )?|^.* \w{3} +\d+ +\d{4} /, ''));
  const expected = fixture().map((e) => e.name).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  assert.equal(lines.length, expected.length);
  assert.match(lines.find((l) => l.includes('dev/console'))!, /^crw------- +1 0 +0 +5, +1 /);
  assert.match(lines.find((l) => l.includes('dev/sda'))!, /^brw-rw---- +1 0 +0 +8, +0 /);
  assert.match(lines.find((l) => l.endsWith('tmp'))!, /^drwxrwxrwt +2 0 +0 /);
  assert.match(lines.find((l) => l.includes('bin -> usr/bin'))!, /^lrwxrwxrwx/);
  assert.match(lines.find((l) => l.includes('usr/lib/big.bin'))!, /^-rw------- +1 0 +0 +70001 /);
  for (const n of expected) assert.ok(names.some((x) => x === n || x.startsWith(`${n} ->`)), `cpio lists ${n}: ${listing}`);
  // GNU cpio prints in archive order: it must be byte order of the names
  const order = lines.map((l) => expected.findIndex((n) => l.endsWith(` ${n}`) || l.includes(` ${n} -> `)));
  assert.deepEqual(order, [...order].sort((a, b) => a - b));
});

test('cpio -i extracts the same bytes, links and mtimes', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'booty-cpio-'));
  try {
    const entries = fixture().filter((e) => e.kind !== 'char' && e.kind !== 'block'); // mknod needs root
    const buf = await archive(entries, 1_234_567_890);
    execFileSync('cpio', ['-i', '-d', '--quiet', '--preserve-modification-time', '--no-absolute-filenames'], { cwd: dir, input: buf });
    assert.equal(readFileSync(path.join(dir, 'usr/bin/tool'), 'utf8'), '#!x\n\n');
    assert.equal(readFileSync(path.join(dir, 'etc/conf'), 'utf8'), 'a=b');
    assert.deepEqual(readFileSync(path.join(dir, 'usr/lib/big.bin')), Buffer.alloc(70_001, 7));
    assert.equal(readFileSync(path.join(dir, 'empty')).length, 0);
    assert.equal(readFileSync(path.join(dir, 'ünïcode name'), 'utf8'), 'ok');
    assert.equal(readlinkSync(path.join(dir, 'bin')), 'usr/bin');
    assert.equal(statSync(path.join(dir, 'usr/bin/tool')).mode & 0o7777, 0o755);
    assert.equal(statSync(path.join(dir, 'usr/lib/big.bin')).mtimeMs, 1_234_567_890_000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an archive GNU cpio wrote reads back through readCpio (the parser is not just our mirror)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'booty-cpio-'));
  try {
    writeFileSync(path.join(dir, 'a.txt'), 'hello world');
    const buf = execFileSync('cpio', ['-o', '-H', 'newc', '--quiet'], { cwd: dir, input: 'a.txt\n' });
    const got = readCpio(buf);
    assert.equal(got.length, 1);
    assert.equal(got[0].name, 'a.txt');
    assert.equal(got[0].data.toString(), 'hello world');
    assert.equal(got[0].fields.mode & 0o170000, 0o100000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('same entries in any order give identical bytes; another mtime does not', async () => {
  const a = await archive(fixture());
  const b = await archive([...fixture()].reverse());
  assert.ok(a.equals(b));
  const c = await archive(fixture(), 1);
  assert.ok(!a.equals(c));
  // inode numbers count from 1 in name order, owners are 0
  const parsed = readCpio(a);
  assert.deepEqual(parsed.map((e) => e.fields.ino), parsed.map((_, i) => i + 1));
  assert.ok(parsed.every((e) => e.fields.uid === 0 && e.fields.gid === 0 && e.fields.mtime === 1_700_000_000));
  assert.equal(a.length % 4, 0);
});

test('headers: 110 bytes + name + NUL padded to 4; bad names and sizes are refused', async () => {
  const h = encodeHeader({ ino: 1, mode: 0o100644, uid: 0, gid: 0, nlink: 1, mtime: 0, filesize: 3, devmajor: 0, devminor: 0, rdevmajor: 0, rdevminor: 0, namesize: 2, check: 0 }, 'a');
  assert.equal(h.length, 112);
  assert.equal(h.toString('ascii', 0, 14), '07070100000001');
  for (const bad of ['/abs', 'a//b', 'a/../b', './a', 'dir/', '']) assert.throws(() => checkName(bad), /bad entry name/);
  await assert.rejects(archive([{ name: 'x', kind: 'file', perm: 0o644, size: 5, data: Buffer.from('abc') }]), /changed size/);
  await assert.rejects(archive([{ name: 'x', kind: 'dir', perm: 0o755 }, { name: 'x', kind: 'dir', perm: 0o755 }]), /duplicate/);
});
