// The agent's hardware scan: the cheap per-bus read of modaliases finds what the full walk of
// /sys/devices finds that drivers bind to (bus devices, the CPU, DMI), on a fake sysfs tree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readBusModaliases, readModaliases } from '../../src/agent/modules.ts';

function fakeSys(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-sysfs-'));
  const file = (rel: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  };
  const dev = (rel: string, alias: string, bus: string) => {
    file(`devices/${rel}/modalias`, `${alias}\n`);
    file(`devices/${rel}/power/control`, 'auto\n');
    fs.mkdirSync(path.join(root, 'bus', bus, 'devices'), { recursive: true });
    fs.symlinkSync(path.join(root, 'devices', rel), path.join(root, 'bus', bus, 'devices', path.basename(rel)));
  };
  dev('pci0000:00/0000:00:03.0', 'pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00', 'pci');
  dev('pci0000:00/0000:00:03.0/virtio0', 'virtio:d00000001v00001AF4', 'virtio');
  dev('pci0000:00/0000:00:04.0', 'pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00', 'pci');
  file('devices/system/cpu/modalias', 'cpu:type:x86,ven0002fam000Fmod006B:feature:,0000,0001\n');
  file('devices/virtual/dmi/id/modalias', 'dmi:bvnSeaBIOS:svnQEMU:\n');
  file('devices/pci0000:00/0000:00:05.0/modalias', '\n'); // an empty one counts for nothing
  fs.mkdirSync(path.join(root, 'bus', 'platform', 'devices'), { recursive: true }); // a bus without devices
  return root;
}

test('per-bus scan finds the same modaliases as the full walk, CPU and DMI included', (t) => {
  const root = fakeSys();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const viaBus = readBusModaliases(root);
  assert.ok(viaBus !== undefined);
  assert.deepEqual(viaBus, readModaliases(path.join(root, 'devices')));
  assert.equal(viaBus.length, 5);
  assert.ok(viaBus.some((a) => a.startsWith('cpu:type:x86')));
  assert.ok(viaBus.includes('virtio:d00000001v00001AF4'));
});

test('no readable /sys/bus: undefined, so the caller falls back to the full walk', (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-sysfs-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  assert.equal(readBusModaliases(root), undefined);
});

test('across scans: a device read once is not read again; one whose modalias appears later is found then', (t) => {
  const root = fakeSys();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const known = new Map<string, string>();
  // a device on the bus whose attribute is not there yet (sysfs adds a device's directory first)
  const late = path.join(root, 'devices', 'pci0000:00', '0000:00:06.0');
  fs.mkdirSync(late, { recursive: true });
  fs.symlinkSync(late, path.join(root, 'bus', 'pci', 'devices', '0000:00:06.0'));
  const first = readBusModaliases(root, known)!;
  assert.equal(first.length, 5);
  // rewriting a known device's attribute shows whether it is read again: it is not
  fs.writeFileSync(path.join(root, 'devices', 'pci0000:00', '0000:00:04.0', 'modalias'), 'pci:changed\n');
  fs.writeFileSync(path.join(late, 'modalias'), 'pci:v00008086d00001234sv00000000sd00000000bc01sc08i02\n');
  const second = readBusModaliases(root, known)!;
  assert.ok(!second.includes('pci:changed'), 'a known device is taken from the earlier scan');
  assert.ok(second.includes('pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00'));
  assert.ok(second.includes('pci:v00008086d00001234sv00000000sd00000000bc01sc08i02'), 'the late attribute is found');
  assert.equal(second.length, 6);
  // without the caller's map every scan reads every device
  assert.ok(readBusModaliases(root)!.includes('pci:changed'));
});
