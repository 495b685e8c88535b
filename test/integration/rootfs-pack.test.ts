// Rootfs trees packed by src/rootfs/pack.ts, judged by GNU tar.
//
// The tree holds every kind of entry a root filesystem has (test/helpers/rootfs-tree.ts) plus what
// only a packer meets: a path longer than ustar's 255 bytes, an owner id above ustar's 6 octal
// digits, a symlink whose target is not UTF-8, and a socket (tar cannot hold one: skipped, counted).
// GNU tar extracts booty's archive and the result is compared entry by entry with the source
// (type, mode, owner, mtime, content, link target, device, xattrs incl. the binary capability),
// and GNU tar's --compare checks the archive against the source a second time. booty's own
// extractor then reads the same archive back identically.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { packTree, type PackResult } from '../../src/rootfs/pack.ts';
import { extractRootfs } from '../../src/rootfs/extract.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';
import { buildRootfsTree, describe, LATIN1_NAME, ROOTFS_TREE_TOOLS, walk } from '../helpers/rootfs-tree.ts';

const hasTools = ['tar', ...ROOTFS_TREE_TOOLS].every((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0);
const skip = process.getuid?.() !== 0
  ? (process.env.CI === 'true' ? false : 'needs root')
  : skipUnlessPresent(hasTools, 'needs GNU tar, setcap/getcap (libcap2-bin), python3 (scripts/host-deps.sh)');

let dir: string;
let tree: string;
let packed: PackResult;
const sh = (cmd: string): string => execFileSync('bash', ['-euo', 'pipefail', '-c', cmd], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
/** 3 x 90-byte components + a file: 285 bytes, beyond ustar's prefix + name (155 + 100). */
const VERY_LONG = `${'a'.repeat(90)}/${'b'.repeat(90)}/${'c'.repeat(90)}/file`;
const BIG_ID = 3_000_000;

before(async () => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-pack-'));
  tree = path.join(dir, 'tree');
  buildRootfsTree(tree);
  sh(`cd tree
    mkdir -p ${path.dirname(VERY_LONG)}; printf 'deep\\n' > ${VERY_LONG}
    printf 'big\\n' > big-owner; chown ${BIG_ID}:${BIG_ID} big-owner
    python3 -c "import socket; s = socket.socket(socket.AF_UNIX); s.bind('sock')"
    touch -h -d @1600000000 ${VERY_LONG} big-owner`);
  fs.symlinkSync(Buffer.concat([Buffer.from('target-'), LATIN1_NAME]), path.join(tree, 'latin1-link'));
  // whole seconds, as the archive keeps them (the directories above got new entries: theirs too)
  sh(`cd tree; touch -h -d @1600000000 latin1-link . ${path.dirname(VERY_LONG)} ${path.dirname(path.dirname(VERY_LONG))} ${VERY_LONG.split('/')[0]}`);
  const { tar, done } = packTree(tree);
  await pipeline(tar, fs.createWriteStream(path.join(dir, 'booty.tar')));
  packed = await done;
});

after(() => {
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
});

/** The source's entries that a copy must have: all but the socket. */
function expectedNames(): string[] {
  return walk(tree).filter((n) => n !== 'sock');
}

test('GNU tar extracts booty\'s archive into a tree identical to the source, entry by entry', { skip }, () => {
  const into = fs.mkdtempSync(path.join(dir, 'gnu-'));
  sh(`tar --xattrs --xattrs-include='*' --numeric-owner -xpf booty.tar -C ${into}`);
  const names = expectedNames();
  assert.deepEqual(walk(into), names);
  for (const rel of ['', ...names]) {
    assert.deepEqual(describe(into, rel), describe(tree, rel), `entry "${Buffer.from(rel, 'latin1').toString('utf8')}"`);
  }
  // what the comparison covered, so a tree that silently lost its odd entries fails here
  assert.ok(names.includes(VERY_LONG));
  assert.ok(names.includes(LATIN1_NAME.toString('latin1')));
  assert.equal(fs.statSync(path.join(into, 'big-owner')).uid, BIG_ID);
  assert.equal(fs.statSync(path.join(into, 'hl-a')).ino, fs.statSync(path.join(into, 'hl-b')).ino);
  assert.match(sh(`getcap ${into}/ping`), /cap_setuid,cap_net_raw=ep/);
  assert.ok(describe(into, 'plain.txt').xattrs !== undefined && Object.keys(describe(into, 'plain.txt').xattrs as object).includes('user.blob'));
});

test('GNU tar --compare finds no difference between booty\'s archive and the source', { skip }, () => {
  const r = spawnSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-d', '-f', 'booty.tar', '-C', tree], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, `tar -d: ${r.stdout}${r.stderr}`);
  // the listing names a hard link as one, once
  const listing = sh('tar -tvf booty.tar');
  assert.match(listing, /\.\/hl-b link to \.\/hl-a|\.\/hl-a link to \.\/hl-b/);
  assert.doesNotMatch(listing, /sock/);
});

test('the counts say what was archived, and the socket was skipped', { skip }, () => {
  const names = expectedNames();
  const st = (n: string) => fs.lstatSync(Buffer.from(`${tree}/${n}`, 'latin1'));
  const files = names.filter((n) => st(n).isFile());
  assert.equal(packed.files, files.length - 1); // hl-a and hl-b: one file, one link
  assert.equal(packed.hardLinks, 1);
  assert.equal(packed.directories, 1 + names.filter((n) => st(n).isDirectory()).length);
  assert.equal(packed.symlinks, names.filter((n) => st(n).isSymbolicLink()).length);
  assert.equal(packed.devices, 2);
  assert.equal(packed.fifos, 1);
  assert.equal(packed.socketsSkipped, 1);
  assert.equal(packed.fileBytes, files.filter((n) => n !== 'hl-b').reduce((s, n) => s + st(n).size, 0));
  assert.ok(packed.withXattrs >= 3); // ping, plain.txt, owned-dir
});

test('booty\'s extractor reads its own archive back identically', { skip }, async () => {
  const into = fs.mkdtempSync(path.join(dir, 'booty-'));
  await extractRootfs(fs.createReadStream(path.join(dir, 'booty.tar')), into);
  const names = expectedNames();
  assert.deepEqual(walk(into), names);
  for (const rel of ['', ...names]) {
    assert.deepEqual(describe(into, rel), describe(tree, rel), `entry "${Buffer.from(rel, 'latin1').toString('utf8')}"`);
  }
});

test('a path that is not a directory is refused, naming it', { skip }, async () => {
  const { tar, done } = packTree(path.join(tree, 'plain.txt'));
  tar.on('error', () => {}); // the same error as `done`'s
  tar.resume();
  await assert.rejects(done, /plain\.txt: is not a directory/);
});
