// LLDPDU parsing against frames real lldpd sent (test/fixtures/lldp: Debian 12's lldpd 1.0.16,
// captured with tcpdump), the IEEE 802.1 VLAN TLVs lldpd did not send there (built by hand from
// the standard's layout), and refusals of frames that are not LLDPDUs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { parseLldpFrame } from '../../src/net/lldp/lldpdu.ts';

/** The frames of a classic pcap file (little-endian, microsecond). */
function pcapFrames(file: string): Buffer[] {
  const b = fs.readFileSync(file);
  assert.equal(b.readUInt32LE(0), 0xa1b2c3d4, 'a little-endian pcap');
  const out: Buffer[] = [];
  for (let off = 24; off + 16 <= b.length;) {
    const len = b.readUInt32LE(off + 8);
    out.push(b.subarray(off + 16, off + 16 + len));
    off += 16 + len;
  }
  return out;
}

const fixture = path.join(import.meta.dirname, '..', 'fixtures', 'lldp', 'lldpd-1.0.16.pcap');

test('lldpd\'s frames: chassis and port id, TTL, names, description, management address', () => {
  const [first, second] = pcapFrames(fixture);
  assert.deepEqual(parseLldpFrame(second), {
    sourceMac: 'a6:ed:02:4b:d3:c0',
    chassisId: 'a6:ed:02:4b:d3:c0', chassisIdSubtype: 'mac',
    portId: 'a6:ed:02:4b:d3:c0', portIdSubtype: 'mac',
    ttl: 120,
    portDescription: 'rack7 port 12',
    systemName: 'booty-tor-7',
    systemDescription: 'booty test switch',
    managementAddresses: ['fe80::a4ed:2ff:fe4b:d3c0'],
  });
  const a = parseLldpFrame(first);
  assert.equal(a.systemName, 'vm');
  assert.equal(a.portDescription, 'bls22945');
});

function tlv(type: number, value: Buffer): Buffer {
  const h = Buffer.alloc(2);
  h.writeUInt16BE((type << 9) | value.length);
  return Buffer.concat([h, value]);
}
const eth = (payload: Buffer, tag = false) => Buffer.concat([
  Buffer.from('0180c200000e' + '020000aabbcc' + (tag ? '8100002a' : '') + '88cc', 'hex'), payload,
]);

test('802.1 Port VLAN ID and VLAN names, text ids, IPv4 addresses, a VLAN-tagged frame', () => {
  const vlanName = Buffer.concat([Buffer.from('0080c2030064', 'hex'), Buffer.from([7]), Buffer.from('servers')]);
  const frame = eth(Buffer.concat([
    tlv(1, Buffer.concat([Buffer.from([7]), Buffer.from('SW-RACK7')])),
    tlv(2, Buffer.concat([Buffer.from([5]), Buffer.from('Ethernet1/12')])),
    tlv(3, Buffer.from([0, 30])),
    tlv(5, Buffer.from('tor7.example.net')),
    tlv(8, Buffer.from('05010a000001020000000100', 'hex')),
    tlv(127, Buffer.from('0080c2010064', 'hex')),
    tlv(127, vlanName),
    tlv(127, Buffer.from('00120f0100', 'hex')),
    tlv(0, Buffer.alloc(0)),
  ]), true);
  assert.deepEqual(parseLldpFrame(frame), {
    sourceMac: '02:00:00:aa:bb:cc', chassisId: 'SW-RACK7', chassisIdSubtype: 'local', portId: 'Ethernet1/12', portIdSubtype: 'interface-name',
    ttl: 30, systemName: 'tor7.example.net', managementAddresses: ['10.0.0.1'], vlan: 100, vlans: [{ id: 100, name: 'servers' }],
  });
  const chassisIp = eth(Buffer.concat([tlv(1, Buffer.from('0501c0a80101', 'hex')), tlv(2, Buffer.from('03020000aabbcc', 'hex')), tlv(3, Buffer.from([0, 120])), tlv(0, Buffer.alloc(0))]));
  const n = parseLldpFrame(chassisIp);
  assert.equal(n.chassisId, '192.168.1.1');
  assert.equal(n.chassisIdSubtype, 'network-address');
  assert.equal(n.portId, '02:00:00:aa:bb:cc');
});

test('not LLDPDUs: other ethertypes, truncated TLVs, mandatory TLVs missing or out of order', () => {
  const [, good] = pcapFrames(fixture);
  const ipv4 = Buffer.from(good); ipv4.writeUInt16BE(0x0800, 12);
  assert.throws(() => parseLldpFrame(ipv4), /ethertype 0x800/);
  assert.throws(() => parseLldpFrame(good.subarray(0, 40)), /claims \d+ bytes|without an End/);
  assert.throws(() => parseLldpFrame(eth(Buffer.concat([tlv(2, Buffer.from('0501', 'hex')), tlv(0, Buffer.alloc(0))]))), /TLV 1 has type 2, expected 1/);
  assert.throws(() => parseLldpFrame(eth(Buffer.concat([tlv(1, Buffer.from('0701', 'hex')), tlv(2, Buffer.from('0701', 'hex')), tlv(0, Buffer.alloc(0))]))), /TLV 3 has type 0, expected 3/);
  assert.throws(() => parseLldpFrame(Buffer.alloc(10)), /shorter than an Ethernet header/);
});
