import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  buildIndex, globMatch, moduleNameFromPath, modulesForModalias, parseModulesDep, parseModulesSoftdep,
  parseProcModules, planLoad, resolveName,
} from '../../src/agent/modalias.ts';

// Lines taken from the modules.* files depmod wrote for Debian 12's linux-image-6.1.0-*-amd64.
const fixtures = path.join(import.meta.dirname, '../fixtures/modalias');
const read = (n: string) => fs.readFileSync(path.join(fixtures, n), 'utf8');
const index = buildIndex({ alias: read('modules.alias'), dep: read('modules.dep'), softdep: read('modules.softdep'), builtin: read('modules.builtin') });

test('glob: *, ?, ranges, negation, literal specials', () => {
  assert.ok(globMatch('pci:v00001AF4d*sv*sd*bc*sc*i*', 'pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00'));
  assert.ok(!globMatch('pci:v00001AF4d*sv*sd*bc*sc*i*', 'pci:v00008086d00001000sv00001AF4sd00000001bc02sc00i00'));
  assert.ok(globMatch('usb:v?d*', 'usb:vXd1'));
  assert.ok(!globMatch('usb:v?d*', 'usb:vd1'));
  assert.ok(globMatch('acpi*:PNP0[Aa]0[38]:*', 'acpi:PNP0a03:'));
  assert.ok(globMatch('acpi*:PNP0[Aa]0[38]:*', 'acpi:PNP0A08:PNP0A03:'));
  assert.ok(!globMatch('acpi*:PNP0[Aa]0[38]:*', 'acpi:PNP0A05:'));
  assert.ok(globMatch('x[!0-9]y', 'xay'));
  assert.ok(!globMatch('x[!0-9]y', 'x5y'));
  assert.ok(globMatch('x[^0-9]y', 'xay'));
  assert.ok(globMatch('a.b+c(d)', 'a.b+c(d)'));
  assert.ok(!globMatch('a.b', 'axb'));
  assert.ok(globMatch('a[b', 'a[b'), 'an unterminated [ is literal');
  assert.ok(globMatch('[]x]', ']'), 'a ] first in brackets is a member');
  assert.ok(!globMatch('abc', 'abcd'), 'patterns match the whole string');
});

test('module names from paths', () => {
  assert.equal(moduleNameFromPath('kernel/drivers/md/dm-mod.ko'), 'dm_mod');
  assert.equal(moduleNameFromPath('kernel/drivers/nvme/host/nvme-core.ko.zst'), 'nvme_core');
  assert.equal(moduleNameFromPath('virtio_blk.ko'), 'virtio_blk');
});

test('QEMU devices map to their drivers', () => {
  // virtio-blk (legacy id 0x1001) on PCI, then the virtio device it exposes
  assert.deepEqual(modulesForModalias(index, 'pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00'), ['virtio_pci']);
  assert.deepEqual(modulesForModalias(index, 'virtio:d00000002v00001AF4'), ['virtio_blk']);
  assert.deepEqual(modulesForModalias(index, 'virtio:d00000001v00001AF4'), ['virtio_net']);
  assert.deepEqual(modulesForModalias(index, 'virtio:d00000008v00001AF4'), ['virtio_scsi']);
  // QEMU's NVMe controller matches by class 01/08/02; its e1000 by device id; ICH9 AHCI by class
  assert.deepEqual(modulesForModalias(index, 'pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02'), ['nvme']);
  assert.deepEqual(modulesForModalias(index, 'pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00'), ['e1000']);
  assert.deepEqual(modulesForModalias(index, 'pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01'), ['ahci']);
  // a host bridge needs nothing
  assert.deepEqual(modulesForModalias(index, 'pci:v00008086d00001237sv00001AF4sd00001100bc06sc00i00'), []);
});

test('dependencies load first, transitively, each once', () => {
  const plan = planLoad(index, ['virtio_pci', 'virtio_blk', 'virtio_net'], new Set());
  const names = plan.order.map((m) => m.name);
  assert.deepEqual(plan.missing, []);
  assert.equal(new Set(names).size, names.length, 'no module twice');
  const before = (a: string, b: string) => assert.ok(names.indexOf(a) >= 0 && names.indexOf(a) < names.indexOf(b), `${a} before ${b} in ${names.join(' ')}`);
  before('virtio_ring', 'virtio');
  before('virtio', 'virtio_pci');
  before('virtio_pci_legacy_dev', 'virtio_pci');
  before('virtio_pci_modern_dev', 'virtio_pci');
  before('failover', 'net_failover');
  before('net_failover', 'virtio_net');
  assert.equal(plan.order.find((m) => m.name === 'virtio_blk')?.path, 'kernel/drivers/block/virtio_blk.ko');
});

test('already loaded modules and their subtrees are skipped', () => {
  const plan = planLoad(index, ['virtio_blk'], new Set(['virtio', 'virtio_ring']));
  assert.deepEqual(plan.order.map((m) => m.name), ['virtio_blk']);
  assert.deepEqual(planLoad(index, ['virtio_blk'], new Set(['virtio_blk'])).order, []);
});

test('aliases and soft dependencies: ext4 pulls crc32c (an alias of crc32c_generic) first', () => {
  assert.deepEqual(resolveName(index, 'fs-ext4'), ['ext4']);
  assert.deepEqual(resolveName(index, 'crypto-crc32c'), ['crc32c_generic']);
  assert.deepEqual(resolveName(index, 'dm-mod'), ['dm_mod']);
  const names = planLoad(index, ['ext4'], new Set()).order.map((m) => m.name);
  assert.deepEqual(names, ['crc32c_generic', 'crc16', 'mbcache', 'jbd2', 'ext4']);
});

test('built-ins are not missing; unknown names are', () => {
  const plan = planLoad(index, ['unix', 'no_such_driver'], new Set());
  assert.deepEqual(plan.order, []);
  assert.deepEqual(plan.missing, ['no_such_driver']);
});

test('dependency cycles do not hang', () => {
  const idx = buildIndex({ alias: '', dep: 'a.ko: b.ko\nb.ko: a.ko\n' });
  const names = planLoad(idx, ['a'], new Set()).order.map((m) => m.name);
  assert.deepEqual(names.sort(), ['a', 'b']);
});

test('post soft dependencies load after the module', () => {
  const idx = buildIndex({ alias: 'alias helper-x hx\n', dep: 'm.ko:\nhx.ko:\npre1.ko:\n', softdep: 'softdep m pre: pre1 post: helper-x\n' });
  assert.deepEqual(planLoad(idx, ['m'], new Set()).order.map((x) => x.name), ['pre1', 'm', 'hx']);
  assert.deepEqual(parseModulesSoftdep('softdep a-b pre: c d post: e\n').get('a_b'), { pre: ['c', 'd'], post: ['e'] });
});

test('parsers skip junk lines', () => {
  assert.equal(parseModulesDep('\n# comment\nfoo.ko:\n').size, 1);
  assert.deepEqual([...parseProcModules('virtio_blk 20480 0 - Live 0x0\next4 1 2 crc16, Live 0x0\n')], ['virtio_blk', 'ext4']);
});

// The real Debian kernel's tables: test/e2e/modalias-debian-kernel.test.ts (it needs the built initramfs's
// unpacked kernel package).

test('the lookup by literal prefix finds what a pass over every alias finds, in modules.alias order', () => {
  const linear = (m: string) => {
    const found: string[] = [];
    for (const a of index.aliases) if (globMatch(a.pattern, m) && !found.includes(a.module)) found.push(a.module);
    return found;
  };
  // a modalias made from each pattern (wildcards filled in), some cut short, plus QEMU's and strangers
  const samples = new Set<string>(['pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00', 'virtio:d00000002v00001AF4', 'acpi:PNP0A08:PNP0A03:', 'cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0094', 'pci:', '', 'zz:unknown']);
  for (const a of index.aliases) {
    const filled = a.pattern.replace(/\[!?\^?(.)[^\]]*\]/g, '$1').replace(/\*/g, '0').replace(/\?/g, 'X');
    samples.add(filled);
    samples.add(filled.slice(0, Math.max(0, a.prefix.length - 1)));
  }
  let matched = 0;
  for (const m of samples) {
    const want = linear(m);
    if (want.length > 0) matched++;
    assert.deepEqual(modulesForModalias(index, m), want, m);
  }
  assert.ok(matched > index.aliases.length / 2, `most filled-in patterns match something (${matched} of ${samples.size})`);
});
