// Module selection from depmod's files, the initramfs tree (implied parents, usrmerge) and pins.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { moduleName, parseBuiltin, parseExactAliases, parseList, parseModulesDep, parseSoftdeps, selectModules } from '../../src/build/kmods.ts';
import { InitramfsTree, mergedUsrPath } from '../../src/build/tree.ts';
import { validatePins, kernelRelease } from '../../src/build/pins.ts';
import { packageDirName } from '../../src/build/debs.ts';

const dep = parseModulesDep([
  'kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko',
  'kernel/lib/crc16.ko:',
  'kernel/fs/mbcache.ko:',
  'kernel/fs/jbd2/jbd2.ko:',
  'kernel/crypto/crc32c_generic.ko:',
  'kernel/arch/x86/crypto/crc32c-intel.ko:',
  'kernel/drivers/md/dm-mod.ko:',
  'kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko',
  'kernel/drivers/virtio/virtio_pci_modern_dev.ko:',
  'kernel/drivers/unused.ko:',
].join('\n'));
const db = {
  dep,
  softdeps: parseSoftdeps('# comment\nsoftdep ext4 pre: crc32c\nsoftdep virtio_pci post: not_anywhere\n'),
  aliases: parseExactAliases('alias crypto-crc32c crc32c_generic\nalias crc32c crc32c_generic\nalias crc32c crc32c_intel\nalias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\n'),
  builtin: parseBuiltin('kernel/net/packet/af_packet.ko\n'),
};

test('closure: dependencies, soft dependencies through aliases, built-ins, dash/underscore', () => {
  const sel = selectModules(['ext4', 'dm-mod', 'virtio_pci', 'af_packet'], db);
  assert.deepEqual(sel.paths, [
    'kernel/arch/x86/crypto/crc32c-intel.ko', 'kernel/crypto/crc32c_generic.ko', 'kernel/drivers/md/dm-mod.ko',
    'kernel/drivers/virtio/virtio_pci.ko', 'kernel/drivers/virtio/virtio_pci_modern_dev.ko',
    'kernel/fs/ext4/ext4.ko', 'kernel/fs/jbd2/jbd2.ko', 'kernel/fs/mbcache.ko', 'kernel/lib/crc16.ko',
  ]);
  assert.deepEqual(sel.builtin, ['af_packet']);
  assert.ok(!sel.paths.includes('kernel/drivers/unused.ko'));
});

test('a module that exists nowhere is an error naming it', () => {
  assert.throws(() => selectModules(['ext4', 'no_such_driver'], db), /not found.*no_such_driver/);
});

test('names, lists', () => {
  assert.equal(moduleName('kernel/drivers/md/dm-mod.ko'), 'dm_mod');
  assert.equal(moduleName('x/crc32c-intel.ko.zst'), 'crc32c_intel');
  assert.deepEqual(parseList('# c\nsbin/lvm  a b # why\n\n  usr/sbin/x\n'), [['sbin/lvm', 'a', 'b'], ['usr/sbin/x']]);
});

test('tree: usrmerge paths, implied parents, duplicates refused, breakdown by part', () => {
  assert.equal(mergedUsrPath('sbin/lvm'), 'usr/sbin/lvm');
  assert.equal(mergedUsrPath('/lib64/ld-linux-x86-64.so.2'), 'usr/lib64/ld-linux-x86-64.so.2');
  assert.equal(mergedUsrPath('etc/lvm/lvm.conf'), 'etc/lvm/lvm.conf');
  const t = new InitramfsTree();
  t.addFile('usr/lib/booty/booty.mjs', { source: Buffer.from('x'), size: 1, perm: 0o644, part: 'bundle', origin: 't' });
  t.addFile('usr/bin/node', { source: Buffer.from('nnn'), size: 3, perm: 0o755, part: 'node', origin: 't' });
  t.addSymlink('bin', 'usr/bin', 'config');
  t.addDir('tmp', 0o1777);
  assert.throws(() => t.addSymlink('usr/bin/node', 'x', 'config'), /added twice/);
  const names = t.toCpioEntries().map((e) => `${e.kind}:${e.name}`).sort();
  assert.deepEqual(names, ['dir:tmp', 'dir:usr', 'dir:usr/bin', 'dir:usr/lib', 'dir:usr/lib/booty', 'file:usr/bin/node', 'file:usr/lib/booty/booty.mjs', 'symlink:bin']);
  assert.deepEqual(t.breakdown(), [{ part: 'node', bytes: 3, files: 1 }, { part: 'bundle', bytes: 1, files: 1 }]);
});

test('pins: validated, kernel release from the package name, safe cache names', () => {
  const p = validatePins({ kernel: { package: 'linux-image-6.1.0-56-amd64', version: '6.1.192-2' }, packages: { lvm2: '2.03.16-2' } });
  assert.equal(kernelRelease(p), '6.1.0-56-amd64');
  assert.throws(() => validatePins({ kernel: { package: 'linux-image-amd64', version: '1' }, packages: {} }), /not a linux-image-\*-amd64/);
  assert.throws(() => validatePins({ kernel: { package: 'linux-image-6.1.0-56-amd64', version: '1' }, packages: { x: '' } }), /x has no version/);
  assert.equal(packageDirName('busybox-static', '1:1.35.0-4+deb12u1+b1'), 'busybox-static_1_1.35.0-4+deb12u1+b1');
});
