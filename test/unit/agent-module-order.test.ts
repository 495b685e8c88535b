// The order in which one scan round loads the drivers it found (src/agent/modules.ts): network
// drivers first (DHCP waits for a NIC), then the rest (disks), CPU feature modules last. Checked
// on a module directory and a sysfs tree made in a temp dir, read the way the agent reads the real
// ones. The module names are made up: the scan skips what the host running the test has loaded
// (its /proc/modules), and this host's own virtio drivers would otherwise drop out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ModuleLoader, modulesForThisRound } from '../../src/agent/modules.ts';
import { createLogger } from '../../src/util/log.ts';

test('one scan round: network drivers, then disk drivers, CPU feature modules last', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-modorder-'));
  try {
    const mods = path.join(dir, 'modules');
    fs.mkdirSync(mods);
    const names = ['t_virtio_net', 't_virtio_blk', 't_e1000', 't_ahci', 't_crc32c'];
    fs.writeFileSync(path.join(mods, 'modules.dep'), names.map((n) => `kernel/${n}.ko:\n`).join(''));
    fs.writeFileSync(path.join(mods, 'modules.alias'), [
      'alias virtio:d00000001v* t_virtio_net',
      'alias virtio:d00000002v* t_virtio_blk',
      'alias pci:v00008086d0000100Esv*sd*bc*sc*i* t_e1000',
      'alias pci:v*d*sv*sd*bc01sc06i01* t_ahci',
      'alias cpu:type:x86,ven*fam*mod*:feature:*0094* t_crc32c',
    ].join('\n') + '\n');
    const sys = path.join(dir, 'devices');
    const dev = (p: string, alias: string) => { fs.mkdirSync(path.join(sys, p), { recursive: true }); fs.writeFileSync(path.join(sys, p, 'modalias'), alias + '\n'); };
    dev('system/cpu', 'cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0094,00C0');
    dev('pci0000:00/0000:00:02.0', 'pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00');
    dev('pci0000:00/0000:00:02.0/virtio0', 'virtio:d00000002v00001AF4');
    dev('pci0000:00/0000:00:03.0/virtio1', 'virtio:d00000001v00001AF4');
    dev('pci0000:00/0000:00:04.0', 'pci:v00008086d0000100Esv00008086sd00001100bc02sc00i00');
    dev('pci0000:00/0000:00:05.0', 'pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01');
    const loader = new ModuleLoader({ log: createLogger({ level: 'error', sinks: [] }), moduleDir: mods, sysDevices: sys });
    const { wanted } = loader.scan();
    assert.deepEqual(wanted, ['t_e1000', 't_virtio_net', 't_ahci', 't_virtio_blk', 't_crc32c']);
    // a round with device drivers to load leaves the CPU feature modules for a later round
    const { why } = loader.scan();
    assert.deepEqual(modulesForThisRound(wanted, why), ['t_e1000', 't_virtio_net', 't_ahci', 't_virtio_blk']);
    assert.deepEqual(modulesForThisRound(['t_crc32c'], why), ['t_crc32c'], 'alone, they load');
    assert.deepEqual(modulesForThisRound([], why), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
