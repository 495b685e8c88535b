// Tar entry names: what is extracted where, and what is refused before any file-system call.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { displayName, joinComponents, normalizeEntryPath, toFsPath } from '../../src/rootfs/entry-path.ts';

test('ordinary names normalize to their components below the root', () => {
  const cases: Array<[string, string[]]> = [
    ['etc/passwd', ['etc', 'passwd']],
    ['./etc/passwd', ['etc', 'passwd']],
    ['usr//bin/', ['usr', 'bin']],
    ['./', []],
    ['.', []],
    ['a/./b/.', ['a', 'b']],
    ['...', ['...']],
    ['..a/b..', ['..a', 'b..']],
  ];
  for (const [name, components] of cases) {
    assert.deepEqual(normalizeEntryPath(name), { ok: true, components }, name);
  }
});

test('names that leave the target, or are not names, are refused with the reason', () => {
  const cases: Array<[string, string]> = [
    ['../etc/passwd', 'leaves the target (a ".." component)'],
    ['a/../../x', 'leaves the target (a ".." component)'],
    ['a/../b', 'leaves the target (a ".." component)'],
    ['a/..', 'leaves the target (a ".." component)'],
    ['..', 'leaves the target (a ".." component)'],
    ['/etc/passwd', 'leaves the target (an absolute path)'],
    ['//etc', 'leaves the target (an absolute path)'],
    ['', 'has an empty name'],
    ['a\0b', 'has a NUL byte in its name'],
  ];
  for (const [name, why] of cases) {
    assert.deepEqual(normalizeEntryPath(name), { ok: false, why }, JSON.stringify(name));
  }
});

test('names are bytes: a non-UTF-8 name reaches the file system unchanged', () => {
  const latin1Name = Buffer.from([0x63, 0x61, 0x66, 0xe9]).toString('latin1'); // "café" in ISO-8859-1
  const r = normalizeEntryPath(`dir/${latin1Name}`);
  assert.ok(r.ok);
  const rel = joinComponents(r.components);
  assert.deepEqual(toFsPath('/mnt/root', rel), Buffer.from([...Buffer.from('/mnt/root/dir/'), 0x63, 0x61, 0x66, 0xe9]));
  const utf8Name = Buffer.from('café', 'utf8').toString('latin1');
  assert.equal(displayName(utf8Name), 'café');
  assert.deepEqual(toFsPath('/mnt/root', ''), Buffer.from('/mnt/root'));
});
