// Rootfs tarballs made by real tools, extracted by src/rootfs/extract.ts.
//
// Faithful: a tree with every kind of entry a root filesystem holds (long names, odd and
// read-only directory modes, setuid/setgid/sticky, foreign numeric owners, relative and absolute
// symlinks, hard links, a FIFO, char and block devices, a binary security.capability set by
// setcap and binary user.* xattrs, an empty and a 5 MiB random file, a name that is not UTF-8) is
// packed by GNU tar (--format=posix and --format=gnu), extracted, and compared entry by entry with
// the source, and judged a second time by GNU tar's own --compare.
// Safe: hostile tarballs made with python3's tarfile (names with "..", absolute names, writes
// through symlinks the tarball made, hard links out of the tree, an entry below a file) are each
// refused with the entry named, and the world outside the target is unchanged.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { extractRootfs } from '../../src/rootfs/extract.ts';
import { lgetxattr } from '../../src/sys/xattr.ts';
import { BootyError } from '../../src/util/errors.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';
import { randomInt, seededRandom } from '../helpers/seeded-random.ts';
import { buildRootfsTree, describe, LATIN1_NAME, LONG_FILE, LONG_TARGET, sha, walk } from '../helpers/rootfs-tree.ts';

const hasTools = ['tar', 'setcap', 'getcap', 'python3', 'mknod'].every((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0);
const skip = process.getuid?.() !== 0
  ? (process.env.CI === 'true' ? false : 'needs root')
  : skipUnlessPresent(hasTools, 'needs GNU tar, setcap/getcap (libcap2-bin), python3 (scripts/host-deps.sh)');

let dir: string;
const sh = (cmd: string): string => execFileSync('bash', ['-euo', 'pipefail', '-c', cmd], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const py = (code: string): string => execFileSync('python3', ['-c', code], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/**
 * FILE in chunks of 1 to 1500 bytes (seeded) up to its last 4 MiB, so that headers and PAX
 * records are split at every kind of place on their way through the raw header tap and tar-stream.
 */
async function* oddChunks(file: string): AsyncGenerator<Buffer> {
  const whole = fs.readFileSync(file);
  const rand = seededRandom(18);
  const cut = Math.max(0, whole.length - 4 * 1024 * 1024);
  for (let off = 0; off < whole.length;) {
    const n = off < cut ? randomInt(rand, 1, 1500) : 64 * 1024;
    yield whole.subarray(off, off + n);
    off += n;
  }
}

before(() => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-rootfs-'));
  buildRootfsTree(path.join(dir, 'tree'));
  sh('tar --xattrs --xattrs-include="*" --numeric-owner --format=posix -cpf posix.tar -C tree .');
  // The GNU format has no place for xattrs (GNU tar refuses --xattrs with it): names, modes,
  // owners, links and devices only, its long names as 'L'/'K' entries instead of PAX records.
  sh('tar --numeric-owner --format=gnu -cpf gnu.tar -C tree .');
});

after(() => {
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
});

const variants = [
  { format: 'posix', chunks: 'file' }, { format: 'gnu', chunks: 'file' }, { format: 'posix', chunks: 'odd' },
] as const;
for (const { format, chunks } of variants) {
  const how = chunks === 'odd' ? ', fed in odd-sized chunks' : '';
  test(`a tree packed by GNU tar --format=${format} extracts identical, entry by entry${how}`, { skip }, async () => {
    const into = fs.mkdtempSync(path.join(dir, `into-${format}-`));
    const tarball = path.join(dir, `${format}.tar`);
    const result = await extractRootfs(chunks === 'odd' ? Readable.from(oddChunks(tarball)) : fs.createReadStream(tarball), into);

    const src = path.join(dir, 'tree');
    const names = walk(src);
    assert.deepEqual(walk(into), names);
    const xattrsPacked = format === 'posix';
    for (const rel of ['', ...names]) {
      assert.deepEqual(describe(into, rel), describe(src, rel, xattrsPacked), `entry "${Buffer.from(rel, 'latin1').toString('utf8')}"`);
    }
    // What the comparison covered, so a tree that silently lost its odd entries fails here.
    assert.ok(names.includes(LONG_FILE) && LONG_FILE.length > 100);
    assert.equal(fs.readlinkSync(path.join(into, 'longlink')), LONG_TARGET);
    assert.ok(names.includes(LATIN1_NAME.toString('latin1')));
    assert.equal(fs.statSync(path.join(into, 'hl-a')).ino, fs.statSync(path.join(into, 'hl-b')).ino);
    assert.equal((fs.statSync(path.join(into, 'readonly')).mode & 0o7777), 0o555);
    assert.equal(fs.statSync(path.join(into, 'owned')).uid, 1234);

    const files = names.filter((n) => fs.lstatSync(Buffer.from(`${src}/${n}`, 'latin1')).isFile());
    assert.deepEqual(result, {
      files: files.length - 1, // hl-b is a hard link entry
      directories: 1 + names.filter((n) => fs.lstatSync(Buffer.from(`${src}/${n}`, 'latin1')).isDirectory()).length,
      symlinks: 3,
      hardLinks: 1,
      devices: 2,
      fifos: 1,
      bytesWritten: files.filter((n) => n !== 'hl-b').reduce((s, n) => s + fs.statSync(Buffer.from(`${src}/${n}`, 'latin1')).size, 0),
    });

    // GNU tar as the second judge (contents, modes, owners, mtimes, link targets, devices).
    sh(`tar --xattrs --xattrs-include="*" --numeric-owner -d -f ${format}.tar -C ${into}`);
    if (!xattrsPacked) return;

    // The capability: the exact bytes (a U+FFFD-mangled value would differ), and getcap agrees.
    const cap = lgetxattr(path.join(src, 'ping'), 'security.capability')!;
    assert.ok(cap.some((b) => b >= 0x80), 'the capability value has a byte >= 0x80 (the case UTF-8 decoding breaks)');
    const got = py(`import os; print(os.getxattr('${into}/ping', 'security.capability', follow_symlinks=False).hex())`).trim();
    assert.equal(got, cap.toString('hex'));
    assert.equal(sh(`getcap ${into}/ping`).replace(into, ''), sh(`getcap ${src}/ping`).replace(src, ''));
    assert.match(sh(`getcap ${into}/ping`), /cap_setuid,cap_net_raw=ep/);
  });
}

// --- hostile tarballs ------------------------------------------------------------------------

/** A snapshot of what must never change: the sentinel directory outside the target, /etc/passwd. */
function outsideWorld(outside: string): string {
  const lines = walk(outside).map((rel) => JSON.stringify([rel, describe(outside, rel)]));
  return [...lines, `passwd ${sha('/etc/passwd')}`].join('\n');
}

/** A tar made by python3's tarfile from ENTRIES (name, type, and link target or content). */
/** (data repeated `repeat` times: a large body that would not fit on python's command line) */
function craft(file: string, entries: Array<{ name: string; type: 'file' | 'dir' | 'symlink' | 'link'; target?: string; data?: string; repeat?: number }>): string {
  const out = path.join(dir, file);
  py(`
import io, json, tarfile
with tarfile.open(${JSON.stringify(out)}, 'w', format=tarfile.GNU_FORMAT) as t:
    for e in json.loads(${JSON.stringify(JSON.stringify(entries))}):
        i = tarfile.TarInfo(e['name'])
        i.mtime = 1600000000
        i.type = {'file': tarfile.REGTYPE, 'dir': tarfile.DIRTYPE, 'symlink': tarfile.SYMTYPE, 'link': tarfile.LNKTYPE}[e['type']]
        data = e.get('data', '').encode() * e.get('repeat', 1)
        if e['type'] in ('symlink', 'link'): i.linkname = e['target']
        if e['type'] == 'file': i.size = len(data)
        t.addfile(i, io.BytesIO(data) if e['type'] == 'file' else None)
`);
  return out;
}

interface Hostile {
  what: string;
  entries: (outside: string) => Parameters<typeof craft>[1];
  /** the entry the refusal must name, and how it must describe it */
  message: (outside: string) => RegExp;
}

const hostile: Hostile[] = [
  { what: 'a ".." name', entries: () => [{ name: '../etc/passwd', type: 'file', data: 'pwned\n' }],
    message: () => /entry "\.\.\/etc\/passwd" leaves the target \(a "\.\." component\); nothing outside .* was written/ },
  { what: 'an absolute name', entries: () => [{ name: '/etc/passwd', type: 'file', data: 'pwned\n' }],
    message: () => /entry "\/etc\/passwd" leaves the target \(an absolute path\)/ },
  { what: 'a ".." that climbs out after a directory', entries: () => [{ name: 'a/', type: 'dir' }, { name: 'a/../../x', type: 'file', data: 'x' }],
    message: () => /entry "a\/\.\.\/\.\.\/x" leaves the target \(a "\.\." component\)/ },
  { what: 'a write through a symlink to an outside directory',
    entries: (outside) => [{ name: 'link', type: 'symlink', target: outside }, { name: 'link/file', type: 'file', data: 'pwned\n' }],
    message: (outside) => new RegExp(`entry "link/file" would be written through the symlink "link" \\(-> ${outside}\\)`) },
  { what: 'a write through a symlink to ".."',
    entries: () => [{ name: 'link', type: 'symlink', target: '..' }, { name: 'link/x', type: 'file', data: 'pwned\n' }],
    message: () => /entry "link\/x" would be written through the symlink "link" \(-> \.\.\)/ },
  { what: 'a hard link climbing out with ".."',
    entries: () => [{ name: 'hl', type: 'link', target: '../../outside/victim' }],
    message: () => /entry "hl" is a hard link to "\.\.\/\.\.\/outside\/victim", which leaves the target \(a "\.\." component\)/ },
  { what: 'a hard link to an absolute path',
    entries: () => [{ name: 'hl', type: 'link', target: '/etc/passwd' }],
    message: () => /entry "hl" is a hard link to "\/etc\/passwd", which leaves the target \(an absolute path\)/ },
  { what: 'a hard link through a symlink the tarball made',
    entries: (outside) => [{ name: 'link', type: 'symlink', target: outside }, { name: 'hl', type: 'link', target: 'link/victim' }],
    message: () => /entry "hl" is a hard link to "link\/victim" through the symlink "link"/ },
  { what: 'an entry below a regular file',
    entries: () => [{ name: 'f', type: 'file', data: 'f' }, { name: 'f/x', type: 'file', data: 'x' }],
    message: () => /entry "f\/x" would be written below "f", which is not a directory/ },
];

for (const h of hostile) {
  test(`hostile tarball refused by name: ${h.what}`, { skip }, async () => {
    const outside = fs.mkdtempSync(path.join(dir, 'outside-'));
    fs.writeFileSync(path.join(outside, 'victim'), 'untouched\n');
    const tarball = craft(`hostile-${hostile.indexOf(h)}.tar`, h.entries(outside));
    const into = fs.mkdtempSync(path.join(dir, 'target-'));
    const before = outsideWorld(outside);
    await assert.rejects(extractRootfs(fs.createReadStream(tarball), into), (err: unknown) => {
      assert.ok(err instanceof BootyError, String(err));
      assert.equal(err.code, 'TAR_UNSAFE_ENTRY');
      assert.equal(err.stage, 'write');
      assert.match(err.message, h.message(outside));
      assert.match(err.message, /the tarball is refused$/);
      return true;
    });
    assert.equal(outsideWorld(outside), before);
    // The symlink cases: the refused entry left nothing behind through the link either.
    assert.deepEqual(fs.readdirSync(outside), ['victim']);
  });
}

test('a file entry after a symlink of the same name replaces the symlink, never writes through it', { skip }, async () => {
  const outside = fs.mkdtempSync(path.join(dir, 'outside-'));
  fs.writeFileSync(path.join(outside, 'victim'), 'untouched\n');
  const before = outsideWorld(outside);
  const tarball = craft('replace.tar', [
    { name: 'name', type: 'symlink', target: path.join(outside, 'victim') },
    { name: 'name', type: 'file', data: 'new content\n' },
    { name: 'dir-link', type: 'symlink', target: outside },
    { name: 'dir-link/', type: 'dir' },
  ]);
  const into = fs.mkdtempSync(path.join(dir, 'target-'));
  const result = await extractRootfs(fs.createReadStream(tarball), into);
  assert.ok(fs.lstatSync(path.join(into, 'name')).isFile());
  assert.equal(fs.readFileSync(path.join(into, 'name'), 'utf8'), 'new content\n');
  assert.ok(fs.lstatSync(path.join(into, 'dir-link')).isDirectory());
  assert.equal(outsideWorld(outside), before);
  assert.deepEqual([result.files, result.symlinks, result.directories], [1, 2, 1]);
});

test('every kind of entry whose name a symlink to the outside already holds replaces the symlink (small and large files, symlink, hard link, directory)', { skip }, async () => {
  // each is created exclusively and only on EEXIST is the symlink removed and the create retried:
  // nothing may reach the outside through it
  const outside = fs.mkdtempSync(path.join(dir, 'outside-'));
  fs.writeFileSync(path.join(outside, 'victim'), 'untouched\n');
  const before = outsideWorld(outside);
  const largeSize = 1024 * 1024 + 1; // above the size buffered whole: the streamed path
  const names = ['small', 'large', 'sym', 'hard', 'dir'];
  const tarball = craft('replace-all.tar', [
    ...names.map((n) => ({ name: n, type: 'symlink' as const, target: path.join(outside, n === 'dir' ? '' : 'victim') })),
    { name: 'small', type: 'file', data: 'small\n' },
    { name: 'large', type: 'file', data: 'L', repeat: largeSize },
    { name: 'sym', type: 'symlink', target: 'small' },
    { name: 'hard', type: 'link', target: 'small' },
    { name: 'dir/', type: 'dir' },
    { name: 'dir/inside', type: 'file', data: 'inside\n' },
  ]);
  const into = fs.mkdtempSync(path.join(dir, 'target-'));
  await extractRootfs(fs.createReadStream(tarball), into);
  assert.equal(fs.readFileSync(path.join(into, 'small'), 'utf8'), 'small\n');
  assert.equal(fs.readFileSync(path.join(into, 'large'), 'utf8'), 'L'.repeat(largeSize));
  assert.equal(fs.readlinkSync(path.join(into, 'sym')), 'small');
  assert.equal(fs.lstatSync(path.join(into, 'hard')).ino, fs.lstatSync(path.join(into, 'small')).ino);
  assert.ok(fs.lstatSync(path.join(into, 'dir')).isDirectory());
  assert.equal(fs.readFileSync(path.join(into, 'dir', 'inside'), 'utf8'), 'inside\n');
  assert.equal(outsideWorld(outside), before);
  assert.deepEqual(fs.readdirSync(outside), ['victim']);
});

test('an existing file in the target is replaced, an existing directory kept', { skip }, async () => {
  const into = fs.mkdtempSync(path.join(dir, 'target-'));
  fs.mkdirSync(path.join(into, 'keep'));
  fs.writeFileSync(path.join(into, 'keep', 'old'), 'old\n');
  fs.writeFileSync(path.join(into, 'file'), 'old\n');
  const hardLinked = path.join(dir, 'outside-hardlink');
  fs.writeFileSync(hardLinked, 'outside\n');
  fs.linkSync(hardLinked, path.join(into, 'shared')); // a write into it would change the outside file
  const tarball = craft('existing.tar', [
    { name: 'keep/', type: 'dir' }, { name: 'file', type: 'file', data: 'new\n' }, { name: 'shared', type: 'file', data: 'new\n' },
  ]);
  await extractRootfs(fs.createReadStream(tarball), into);
  assert.equal(fs.readFileSync(path.join(into, 'keep', 'old'), 'utf8'), 'old\n');
  assert.equal(fs.readFileSync(path.join(into, 'file'), 'utf8'), 'new\n');
  assert.equal(fs.readFileSync(path.join(into, 'shared'), 'utf8'), 'new\n');
  assert.equal(fs.readFileSync(hardLinked, 'utf8'), 'outside\n');
});

for (const format of ['posix', 'gnu'] as const) {
  test(`a sparse entry (GNU tar --sparse, --format=${format}) is refused by its name`, { skip }, async () => {
    const tarball = path.join(dir, `sparse-${format}.tar`);
    sh(`rm -rf sparse && mkdir sparse && truncate -s 4M sparse/holes.img && printf data | dd of=sparse/holes.img bs=1 seek=2M conv=notrunc status=none
        tar --sparse --format=${format} -cf ${tarball} -C sparse .`);
    const into = fs.mkdtempSync(path.join(dir, 'target-'));
    await assert.rejects(extractRootfs(fs.createReadStream(tarball), into), (err: unknown) => {
      assert.ok(err instanceof BootyError);
      assert.equal(err.code, 'TAR_UNSUPPORTED_ENTRY');
      assert.match(err.message, /entry "(\.\/)?holes\.img" is a sparse file \(GNU tar --sparse\)/);
      assert.match(err.hint ?? '', /without --sparse/);
      return true;
    });
  });
}

test('a truncated tarball fails as corrupt, naming the last entry', { skip }, async () => {
  const whole = fs.readFileSync(path.join(dir, 'gnu.tar'));
  const into = fs.mkdtempSync(path.join(dir, 'target-'));
  await assert.rejects(extractRootfs(Readable.from([whole.subarray(0, 3 * 1024 * 1024)]), into), (err: unknown) => {
    assert.ok(err instanceof BootyError);
    assert.equal(err.code, 'TAR_CORRUPT');
    assert.match(err.message, /corrupt or truncated \(.*\) after entry/);
    return true;
  });
});

test('memory stays flat: a 384 MiB file streams through with peak RSS growth under 64 MiB', { skip }, async () => {
  const size = 384 * 1024 * 1024;
  const zeros = Buffer.alloc(1024 * 1024);
  const pack = tarStream.pack();
  const feed = (async () => {
    const sink = pack.entry({ name: 'big.img', size, mode: 0o644, mtime: new Date(1600000000000) });
    for (let left = size; left > 0; left -= zeros.length) {
      if (!sink.write(zeros)) await new Promise<void>((resolve) => sink.once('drain', () => resolve()));
    }
    sink.end(null);
    pack.finalize();
  })();
  const into = fs.mkdtempSync(path.join(dir, 'target-'));
  global.gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 10);
  try {
    const result = await extractRootfs(Readable.from(pack), into);
    await feed;
    assert.equal(result.bytesWritten, size);
  } finally {
    clearInterval(sampler);
  }
  assert.equal(fs.statSync(path.join(into, 'big.img')).size, size);
  process.stderr.write(`# rootfs extract of ${size >> 20} MiB: RSS growth ${((peak - baseline) / 1048576).toFixed(1)} MiB\n`);
  assert.ok(peak - baseline < 64 * 1024 * 1024, `RSS grew by ${peak - baseline} bytes`);
  fs.rmSync(into, { recursive: true });
});

test('an error of the input stream (the caller\'s decompressor) reaches the caller unchanged', { skip }, async () => {
  const whole = fs.readFileSync(path.join(dir, 'gnu.tar'));
  const failure = new Error('unexpected end of file');
  async function* failing(): AsyncGenerator<Buffer> {
    yield whole.subarray(0, 100_000);
    throw failure;
  }
  const into = fs.mkdtempSync(path.join(dir, 'target-'));
  await assert.rejects(extractRootfs(Readable.from(failing()), into), (err: unknown) => err === failure);
});
