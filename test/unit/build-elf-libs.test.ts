// The ELF reader behind the initramfs library closure, checked against the host's own ldd on
// real binaries (ldd runs the loader; we only read headers: both must name the same libraries).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, copyFileSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readElfDeps } from '../../src/build/elf.ts';
import { libraryClosure } from '../../src/build/libs.ts';
import { PackageRoot, usrMergeSpellings } from '../../src/build/debs.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';

const hostBinaries = ['/sbin/lvm', '/sbin/resize2fs', '/usr/bin/ls', '/sbin/sfdisk', process.execPath].filter(existsSync);

function lddNames(file: string): { needed: Set<string>; interp: string | undefined } {
  const out = execFileSync('ldd', [file]).toString();
  const needed = new Set<string>();
  let interp: string | undefined;
  for (const line of out.split('\n')) {
    const m = /^\s*(\S+)(?: => (\S+))?/.exec(line);
    if (!m || m[1] === 'linux-vdso.so.1' || m[1] === 'statically') continue;
    if (m[1].startsWith('/')) interp = m[1]; else needed.add(m[1]);
  }
  return { needed, interp };
}

test('DT_NEEDED and PT_INTERP match what ldd reports', () => {
  assert.ok(hostBinaries.length >= 2, 'host binaries to compare with');
  for (const bin of hostBinaries) {
    const ours = readElfDeps(bin)!;
    const ldd = lddNames(bin);
    assert.equal(ours.interp, ldd.interp, bin);
    // ldd lists the transitive closure; the direct needs must all be in it
    // (ldd shows a direct need of the loader itself by its absolute path, as the interpreter)
    for (const n of ours.needed) assert.ok(ldd.needed.has(n) || n === path.basename(ldd.interp ?? ''), `${bin}: ${n} in ldd output`);
  }
});

test('not ELF: undefined; a static binary: no interpreter, no needs', { skip: skipUnlessPresent(existsSync('/bin/busybox'), 'no /bin/busybox (busybox-static)') }, () => {
  assert.equal(readElfDeps('/etc/hostname') ?? readElfDeps('/etc/passwd'), undefined);
  const d = readElfDeps('/bin/busybox')!;
  assert.deepEqual(d.needed, []);
  assert.equal(d.interp, undefined);
});

test('the closure found inside a package root equals ldd\'s, and a missing library is named', { skip: skipUnlessPresent(existsSync('/sbin/resize2fs'), 'no /sbin/resize2fs (e2fsprogs)') }, async () => {
  const bin = '/sbin/resize2fs';
  const dir = mkdtempSync(path.join(os.tmpdir(), 'booty-libs-'));
  try {
    // A fake "unpacked package": the host's libraries for resize2fs, some behind symlinks.
    const pkg = path.join(dir, 'pkg');
    mkdirSync(path.join(pkg, 'lib', 'x86_64-linux-gnu'), { recursive: true });
    mkdirSync(path.join(pkg, 'lib64'), { recursive: true });
    const ldd = lddNames(bin);
    for (const n of ldd.needed) {
      const real = execFileSync('readlink', ['-f', `/lib/x86_64-linux-gnu/${n}`]).toString().trim();
      copyFileSync(real, path.join(pkg, 'lib', 'x86_64-linux-gnu', `${n}.real`));
      symlinkSync(`${n}.real`, path.join(pkg, 'lib', 'x86_64-linux-gnu', n));
    }
    copyFileSync(execFileSync('readlink', ['-f', ldd.interp!]).toString().trim(), path.join(pkg, 'lib', 'x86_64-linux-gnu', 'ld-linux-x86-64.so.2'));
    // absolute link, as libc6 ships it: must resolve inside the package, not on the host
    symlinkSync('/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', path.join(pkg, 'lib64', 'ld-linux-x86-64.so.2'));
    const root = new PackageRoot([{ name: 'fake', version: '1', dir: pkg }]);
    const c = await libraryClosure([{ path: bin, label: 'resize2fs' }], root);
    // libc.so.6 itself needs the loader by soname, which ldd prints as the interpreter
    assert.deepEqual(new Set(c.libs.keys()), new Set([...ldd.needed, 'ld-linux-x86-64.so.2']));
    for (const lib of c.libs.values()) assert.ok(lib.path.startsWith(pkg), `${lib.soname} resolved inside the package: ${lib.path}`);
    assert.ok(c.interpreters.get('/lib64/ld-linux-x86-64.so.2')!.path.startsWith(pkg));

    const partial = new PackageRoot([{ name: 'empty', version: '1', dir: path.join(dir, 'nothing') }]);
    await assert.rejects(libraryClosure([{ path: bin, label: 'resize2fs' }], partial),
      (e: Error & { describe(): string }) => /libext2fs\.so\.2 \(needed by resize2fs\).*dpkg -S/s.test(e.describe()));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('usrmerge spellings', () => {
  assert.deepEqual(usrMergeSpellings('sbin/lvm'), ['sbin/lvm', 'usr/sbin/lvm']);
  assert.deepEqual(usrMergeSpellings('usr/lib/x/y.so'), ['usr/lib/x/y.so', 'lib/x/y.so']);
  assert.deepEqual(usrMergeSpellings('etc/a'), ['etc/a']);
});
