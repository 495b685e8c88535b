// The EFI_LOAD_OPTION codec and the Boot#### / BootOrder decisions booty makes after a deploy on
// a UEFI machine, over a plain directory laid out as efivarfs (4-byte attributes, then the data).
// That efibootmgr reads what booty writes is proven in the guest: test/e2e/uefi-ipxe-deploy.test.ts.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  decodeLoadOption, describePath, encodeLoadOption, filePathNode, guidBytes, guidText, hardDriveNode,
  isNetworkOption, LOAD_OPTION_ACTIVE, parseFilePath, parseHardDrive, type DevicePathNode,
} from '../../src/uefi/load-option.ts';
import { EFI_GLOBAL_GUID, efivarfsStore, encodeBootOrder, parseBootOrder } from '../../src/uefi/efivars.ts';
import { applyBootEntry, findLoader, osNameOf, planBootEntry, type BootEntryRequest } from '../../src/uefi/boot-entry.ts';

const ESP_GUID = '6F1C3A2B-9D4E-4F10-8A3B-1C2D3E4F5A6B';

// The bytes of HD(1,GPT,6f1c3a2b-9d4e-4f10-8a3b-1c2d3e4f5a6b,0x800,0x40000)/File(\EFI\debian\grubx64.efi),
// laid out by hand from UEFI 2.10 sections 3.1.3, 10.3.5.1 and 10.3.5.4.
function handMadeOption(): Buffer {
  const desc = Buffer.from('Debian (booty, sda)\0', 'utf16le');
  const hd = Buffer.concat([
    Buffer.from([0x04, 0x01, 42, 0]),
    Buffer.from([1, 0, 0, 0]),
    Buffer.from([0x00, 0x08, 0, 0, 0, 0, 0, 0]),
    Buffer.from([0x00, 0x00, 0x04, 0, 0, 0, 0, 0]),
    Buffer.from([0x2b, 0x3a, 0x1c, 0x6f, 0x4e, 0x9d, 0x10, 0x4f, 0x8a, 0x3b, 0x1c, 0x2d, 0x3e, 0x4f, 0x5a, 0x6b]),
    Buffer.from([0x02, 0x02]),
  ]);
  const file = Buffer.from('\\EFI\\debian\\grubx64.efi\0', 'utf16le');
  const fileNode = Buffer.concat([Buffer.from([0x04, 0x04, 4 + file.length, 0]), file]);
  const end = Buffer.from([0x7f, 0xff, 0x04, 0x00]);
  const pathLen = hd.length + fileNode.length + end.length;
  return Buffer.concat([Buffer.from([1, 0, 0, 0, pathLen & 0xff, pathLen >> 8]), desc, hd, fileNode, end]);
}

test('GUID text <-> bytes: mixed endian as GPT and UEFI store it', () => {
  const b = guidBytes(ESP_GUID);
  assert.equal(b.toString('hex'), '2b3a1c6f4e9d104f8a3b1c2d3e4f5a6b');
  assert.equal(guidText(b), ESP_GUID);
  assert.equal(guidText(guidBytes(ESP_GUID.toLowerCase())), ESP_GUID);
  assert.throws(() => guidBytes('not-a-guid'), /not a GUID/);
});

test('a Boot#### value is encoded byte for byte as the specification lays it out, and decodes back', () => {
  const data = encodeLoadOption({
    attributes: LOAD_OPTION_ACTIVE, description: 'Debian (booty, sda)',
    filePath: [hardDriveNode({ partitionNumber: 1, startLba: 0x800n, sizeLba: 0x40000n, partitionGuid: ESP_GUID }), filePathNode('\\EFI\\debian\\grubx64.efi')],
    optionalData: Buffer.alloc(0),
  });
  assert.equal(data.toString('hex'), handMadeOption().toString('hex'));
  const o = decodeLoadOption(data);
  assert.equal(o.attributes, LOAD_OPTION_ACTIVE);
  assert.equal(o.description, 'Debian (booty, sda)');
  assert.deepEqual(parseHardDrive(o.filePath[0]), { partitionNumber: 1, startLba: 0x800n, sizeLba: 0x40000n, partitionGuid: ESP_GUID });
  assert.equal(parseFilePath(o.filePath[1]), '\\EFI\\debian\\grubx64.efi');
  assert.equal(describePath(o), 'HD(1,GPT,6f1c3a2b-9d4e-4f10-8a3b-1c2d3e4f5a6b,0x800,0x40000)/File(\\EFI\\debian\\grubx64.efi)');
  assert.deepEqual(encodeLoadOption(o), data, 'round trip');
});

test('optional data survives a round trip; broken values are refused with what is wrong', () => {
  const withData = encodeLoadOption({ attributes: 0, description: 'x', filePath: [filePathNode('\\a.efi')], optionalData: Buffer.from('RC') });
  assert.deepEqual(decodeLoadOption(withData).optionalData, Buffer.from('RC'));
  assert.throws(() => decodeLoadOption(Buffer.alloc(3)), /shorter than its header/);
  const good = handMadeOption();
  assert.throws(() => decodeLoadOption(good.subarray(0, good.length - 10)), /runs past the end/);
  const noEnd = Buffer.from(good);
  noEnd.writeUInt16LE(noEnd.readUInt16LE(4) - 4, 4);
  assert.throws(() => decodeLoadOption(noEnd), /no End Entire node/);
  assert.throws(() => filePathNode('EFI\\x.efi'), /starts with a backslash/);
});

// OVMF's entries as it writes them for an e1000 with iPXE's ROM and for its own PXE: MAC() nodes.
function pxeOption(desc: string, withIpv4: boolean): Buffer {
  const nodes: DevicePathNode[] = [
    { type: 0x02, subType: 0x01, data: Buffer.from('d041030a00000000', 'hex') },
    { type: 0x01, subType: 0x01, data: Buffer.from([0x00, 0x02]) },
    { type: 0x03, subType: 0x0b, data: Buffer.concat([Buffer.from('525400aabb01', 'hex'), Buffer.alloc(26), Buffer.from([1])]) },
  ];
  if (withIpv4) nodes.push({ type: 0x03, subType: 0x0c, data: Buffer.alloc(23) });
  return encodeLoadOption({ attributes: LOAD_OPTION_ACTIVE, description: desc, filePath: nodes, optionalData: Buffer.alloc(0) });
}
function diskOption(desc: string): Buffer {
  return encodeLoadOption({ attributes: LOAD_OPTION_ACTIVE, description: desc, filePath: [
    { type: 0x02, subType: 0x01, data: Buffer.from('d041030a00000000', 'hex') },
    { type: 0x01, subType: 0x01, data: Buffer.from([0x00, 0x01]) },
    { type: 0x03, subType: 0x12, data: Buffer.from([0, 0, 0xff, 0xff, 0, 0]) },
  ], optionalData: Buffer.from('4eac0881119f594d850ee21a522c59b2', 'hex') });
}

const fakeDirs: string[] = [];
after(() => { for (const d of fakeDirs) fs.rmSync(d, { recursive: true, force: true }); });

function fakeEfivarfs(vars: Record<string, Buffer>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-efivars-'));
  fakeDirs.push(dir);
  for (const [name, data] of Object.entries(vars)) fs.writeFileSync(path.join(dir, `${name}-${EFI_GLOBAL_GUID}`), Buffer.concat([Buffer.from([7, 0, 0, 0]), data]));
  return dir;
}

const request = (over: Partial<BootEntryRequest> = {}): BootEntryRequest => ({
  diskName: 'sda', loader: '\\EFI\\debian\\grubx64.efi', osName: 'Debian', order: 'network-first',
  esp: { partitionNumber: 1, startLba: 2048n, sizeLba: 262144n, partitionGuid: ESP_GUID },
  diskPartitionGuids: [ESP_GUID, 'AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE'], ...over,
});

// OVMF with a fresh variable store: its disk entry, then iPXE's ROM, then its own PXEv4, then the shell
const ovmfFresh = () => ({
  Boot0000: encodeLoadOption({ attributes: 0, description: 'UiApp', filePath: [filePathNode('\\UiApp')], optionalData: Buffer.alloc(0) }),
  Boot0001: diskOption('UEFI QEMU HARDDISK QM00001'),
  Boot0002: pxeOption('UEFI PXEv4 (MAC:525400AABB01)', false),
  Boot0003: pxeOption('UEFI PXEv4 (MAC:525400AABB01) 2', true),
  Boot0004: encodeLoadOption({ attributes: LOAD_OPTION_ACTIVE, description: 'EFI Internal Shell', filePath: [filePathNode('\\Shell')], optionalData: Buffer.alloc(0) }),
  BootOrder: encodeBootOrder([1, 2, 3, 4]),
  BootCurrent: Buffer.from([2, 0]),
});

test('network-first: the entry booty netbooted through (BootCurrent) first, the new entry right after it, then the other network entries', () => {
  const dir = fakeEfivarfs(ovmfFresh());
  const store = efivarfsStore(dir, undefined);
  assert.ok(isNetworkOption(decodeLoadOption(store.get('Boot0002')!)));
  assert.ok(!isNetworkOption(decodeLoadOption(store.get('Boot0001')!)));
  const plan = planBootEntry(store, request());
  assert.equal(plan.number, 5, 'the lowest free number');
  assert.deepEqual(plan.network, [2, 3]);
  assert.equal(plan.via, 2);
  assert.deepEqual(plan.orderAfter, [2, 5, 3, 1, 4]);
  applyBootEntry(store, plan);
  assert.deepEqual(parseBootOrder(store.get('BootOrder')), [2, 5, 3, 1, 4]);
  const raw = fs.readFileSync(path.join(dir, `Boot0005-${EFI_GLOBAL_GUID}`));
  assert.equal(raw.readUInt32LE(0), 7, 'NV|BS|RT attributes first');
  assert.equal(decodeLoadOption(raw.subarray(4)).description, 'Debian (booty, sda)');
  assert.equal(store.get('BootCurrent')!.readUInt16LE(0), 2, 'other variables untouched');
});

test('network-first without a network BootCurrent (booted some other way): all network entries, then the new one', () => {
  const vars = ovmfFresh();
  vars.BootCurrent = Buffer.from([1, 0]);
  const plan = planBootEntry(efivarfsStore(fakeEfivarfs(vars), undefined), request());
  assert.equal(plan.via, undefined);
  assert.deepEqual(plan.orderAfter, [2, 3, 5, 1, 4]);
  const { BootCurrent: _, ...none } = ovmfFresh();
  assert.deepEqual(planBootEntry(efivarfsStore(fakeEfivarfs(none), undefined), request()).orderAfter, [2, 3, 5, 1, 4]);
});

test('disk-first: the new entry first, the rest in their order', () => {
  const store = efivarfsStore(fakeEfivarfs(ovmfFresh()), undefined);
  const plan = planBootEntry(store, request({ order: 'disk-first' }));
  assert.deepEqual(plan.orderAfter, [5, 1, 2, 3, 4]);
});

test('trial: BootOrder as network-first, and BootNext names the new entry for one boot; other orders write no BootNext', () => {
  const dir = fakeEfivarfs(ovmfFresh());
  const store = efivarfsStore(dir, undefined);
  const plan = planBootEntry(store, request({ order: 'trial' }));
  assert.deepEqual(plan.orderAfter, [2, 5, 3, 1, 4], 'the network stays first');
  assert.equal(plan.bootNext, 5);
  applyBootEntry(store, plan);
  const raw = fs.readFileSync(path.join(dir, `BootNext-${EFI_GLOBAL_GUID}`));
  assert.deepEqual([...raw], [7, 0, 0, 0, 5, 0], 'NV|BS|RT, then the entry number as a UINT16');
  const other = efivarfsStore(fakeEfivarfs(ovmfFresh()), undefined);
  const p2 = planBootEntry(other, request());
  assert.equal(p2.bootNext, undefined);
  applyBootEntry(other, p2);
  assert.equal(other.get('BootNext'), undefined);
});

test('a second deploy replaces booty\'s entries for the disk (by its tag or its partition GUID), not others\'', () => {
  const vars: Record<string, Buffer> = ovmfFresh();
  const old = (desc: string, guid: string) => encodeLoadOption({ attributes: 1, description: desc, filePath: [hardDriveNode({ partitionNumber: 1, startLba: 2048n, sizeLba: 1n, partitionGuid: guid }), filePathNode('\\EFI\\old\\grubx64.efi')], optionalData: Buffer.alloc(0) });
  vars.Boot0007 = old('Ubuntu (booty, sda)', '11111111-2222-3333-4444-555555555555');      // same disk name, other image
  vars.Boot0009 = old('Debian (booty, vdb)', ESP_GUID);                                    // same ESP GUID (moved disk)
  vars.Boot000A = old('Debian (booty, sdb)', '99999999-2222-3333-4444-555555555555');      // another disk: kept
  vars.Boot000B = old('debian', ESP_GUID);                                                 // grub-install's own entry: not booty's, kept
  vars.BootOrder = encodeBootOrder([7, 9, 1, 2, 3, 10, 11, 4]);
  const dir = fakeEfivarfs(vars);
  const store = efivarfsStore(dir, undefined);
  const plan = planBootEntry(store, request());
  assert.deepEqual(plan.replaced, [7, 9]);
  assert.equal(plan.number, 7, 'reuses the first old number');
  applyBootEntry(store, plan);
  assert.equal(store.get('Boot0009'), undefined, 'the other old entry is deleted');
  assert.ok(store.get('Boot000A') !== undefined && store.get('Boot000B') !== undefined);
  assert.deepEqual(parseBootOrder(store.get('BootOrder')), [2, 7, 3, 1, 10, 11, 4]);
  // and once more: idempotent
  const again = planBootEntry(store, request());
  assert.equal(again.number, 7);
  assert.deepEqual(again.replaced, [7]);
  assert.deepEqual(again.orderAfter, [2, 7, 3, 1, 10, 11, 4]);
});

test('an empty variable store (no BootOrder yet): the entry alone', () => {
  const store = efivarfsStore(fakeEfivarfs({}), undefined);
  const plan = planBootEntry(store, request());
  assert.equal(plan.number, 0);
  assert.deepEqual(plan.orderAfter, [0]);
});

test('the loader found on an ESP: shim, then grub, then systemd-boot, then the fallback path', () => {
  const esp = (files: string[]) => ({
    vendorDirs: [...new Set(files.map((f) => f.split('/')[1]))],
    exists: (rel: string) => files.some((f) => f.toLowerCase() === rel.toLowerCase()),
  });
  assert.deepEqual(findLoader(esp(['EFI/BOOT/BOOTX64.EFI', 'EFI/debian/grubx64.efi', 'EFI/debian/shimx64.efi'])), { path: '\\EFI\\debian\\shimx64.efi', kind: 'shim', vendor: 'debian' });
  assert.deepEqual(findLoader(esp(['EFI/BOOT/BOOTX64.EFI', 'EFI/ubuntu/grubx64.efi'])), { path: '\\EFI\\ubuntu\\grubx64.efi', kind: 'grub', vendor: 'ubuntu' });
  assert.equal(findLoader(esp(['EFI/systemd/systemd-bootx64.efi', 'EFI/BOOT/BOOTX64.EFI']))?.kind, 'systemd-boot');
  assert.deepEqual(findLoader(esp(['EFI/BOOT/BOOTX64.EFI'])), { path: '\\EFI\\BOOT\\BOOTX64.EFI', kind: 'fallback', vendor: '' });
  assert.equal(findLoader(esp(['EFI/debian/readme.txt'])), undefined);
  assert.equal(osNameOf({ path: '', kind: 'grub', vendor: 'debian' }), 'Debian');
  assert.equal(osNameOf({ path: '', kind: 'fallback', vendor: '' }), 'OS');
});

// Made by the real efibootmgr 17 (Debian 12) inside the deployed UEFI test image under OVMF:
// `efibootmgr -c -d /dev/sda -p 1 -L booty-fixture -l '\EFI\debian\grubx64.efi'`, the efivarfs
// file read back with od (scripts/test-image-uefi/booty-test-efi-marker prints it; the e2e test
// firmware-netboot.test.ts repeats this comparison on every run with the image's current GUID).
const EFIBOOTMGR_FIXTURE = '0700000001000000620062006f006f00740079002d006600690078007400750072006500000004012a0001000000000800000000000000000400000000008362ffb44a3abb43886611554a51dc550202040434005c004500460049005c00640065006200690061006e005c0067007200750062007800360034002e0065006600690000007fff0400';

test('booty encodes a load option byte for byte as efibootmgr writes it, and decodes efibootmgr\'s', () => {
  const raw = Buffer.from(EFIBOOTMGR_FIXTURE, 'hex');
  assert.equal(raw.readUInt32LE(0), 7, 'efivarfs attributes: NV|BS|RT');
  const theirs = decodeLoadOption(raw.subarray(4));
  assert.equal(theirs.attributes, LOAD_OPTION_ACTIVE);
  assert.equal(theirs.description, 'booty-fixture');
  assert.equal(describePath(theirs), 'HD(1,GPT,b4ff6283-3a4a-43bb-8866-11554a51dc55,0x800,0x40000)/File(\\EFI\\debian\\grubx64.efi)');
  assert.equal(theirs.optionalData.length, 0);
  const ours = encodeLoadOption({
    attributes: LOAD_OPTION_ACTIVE, description: 'booty-fixture', optionalData: Buffer.alloc(0),
    filePath: [hardDriveNode({ partitionNumber: 1, startLba: 0x800n, sizeLba: 0x40000n, partitionGuid: 'B4FF6283-3A4A-43BB-8866-11554A51DC55' }), filePathNode('\\EFI\\debian\\grubx64.efi')],
  });
  assert.equal(ours.toString('hex'), raw.subarray(4).toString('hex'));
});
