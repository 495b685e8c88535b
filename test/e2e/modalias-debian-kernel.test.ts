// The agent's modalias matching against the whole alias table of the Debian kernel the initramfs
// ships (not the fixture's excerpt): QEMU's virtio, NVMe and storage-stack modules must resolve.
// The kernel package is the one the initramfs build unpacked (and ran depmod on) in the cache, so
// this builds the initramfs first when it is not built yet, like every e2e test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { buildIndex, modulesForModalias, planLoad } from '../../src/agent/modalias.ts';
import { cacheRoot, ensureInitramfs } from '../helpers/initramfs-build.ts';

const isRoot = process.getuid?.() === 0;

function kernelModulesDir(): string {
  const base = path.join(cacheRoot, 'initramfs', 'pkg');
  for (const pkg of fs.readdirSync(base).filter((p) => p.startsWith('linux-image-'))) {
    const mods = path.join(base, pkg, 'lib', 'modules');
    for (const rel of fs.existsSync(mods) ? fs.readdirSync(mods) : []) {
      if (fs.existsSync(path.join(mods, rel, 'modules.alias'))) return path.join(mods, rel);
    }
  }
  throw new Error(`no unpacked kernel package with modules.alias under ${base} after building the initramfs`);
}

test('the real Debian kernel tables resolve QEMU\'s hardware', { skip: !isRoot && 'needs root (apt-get download for the initramfs build)' }, async () => {
  await ensureInitramfs();
  const dir = kernelModulesDir();
  const r = (n: string) => fs.readFileSync(path.join(dir, n), 'utf8');
  const full = buildIndex({ alias: r('modules.alias'), dep: r('modules.dep'), softdep: r('modules.softdep'), builtin: r('modules.builtin') });
  assert.ok(full.aliases.length > 1000);
  assert.deepEqual(modulesForModalias(full, 'virtio:d00000002v00001AF4'), ['virtio_blk']);
  const names = planLoad(full, ['virtio_pci', 'virtio_net', 'nvme', 'dm-mod', 'ext4'], new Set()).order.map((m) => m.name);
  for (const m of ['virtio_pci', 'virtio_net', 'nvme', 'nvme_core', 'dm_mod', 'ext4', 'jbd2']) assert.ok(names.includes(m), `${m} in ${names.join(' ')}`);
});
