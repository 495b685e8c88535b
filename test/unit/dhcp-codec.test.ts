import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BOOTREPLY, BOOTREQUEST, DhcpDecodeError, FLAG_BROADCAST, MessageType, Opt, decodeClasslessRoutes, decodeDhcp,
  encodeDhcp, macToBytes, maskToPrefix, networkOf, prefixToMask, sameSubnet, bytesToMac,
} from '../../src/net/dhcp/codec.ts';

const mac = macToBytes('52:54:00:12:34:56');

function offer(): Buffer {
  return encodeDhcp({
    op: BOOTREPLY, xid: 0xdeadbeef, chaddr: mac, flags: FLAG_BROADCAST, yiaddr: '192.168.7.23', siaddr: '192.168.7.1',
    options: {
      messageType: MessageType.OFFER, serverId: '192.168.7.1', leaseTime: 3600, renewalTime: 1800, rebindingTime: 3150,
      subnetMask: '255.255.255.0', routers: ['192.168.7.1', '192.168.7.254'], dns: ['1.1.1.1', '9.9.9.9'],
      domainName: 'lab.example', hostname: 'node7', broadcast: '192.168.7.255', mtu: 1400,
      classlessRoutes: [{ destination: '10.0.0.0', prefix: 8, gateway: '192.168.7.2' }, { destination: '0.0.0.0', prefix: 0, gateway: '192.168.7.1' }],
    },
  });
}

test('an OFFER round-trips through encode and decode with every option booty reads', () => {
  const buf = offer();
  assert.equal(buf.readUInt32BE(236), 0x63825363, 'magic cookie at 236');
  const m = decodeDhcp(buf);
  assert.equal(m.op, BOOTREPLY);
  assert.equal(m.xid, 0xdeadbeef);
  assert.equal(m.flags, FLAG_BROADCAST);
  assert.equal(m.yiaddr, '192.168.7.23');
  assert.equal(m.siaddr, '192.168.7.1');
  assert.equal(bytesToMac(m.chaddr), '52:54:00:12:34:56');
  assert.deepEqual(m.options, {
    messageType: MessageType.OFFER, serverId: '192.168.7.1', leaseTime: 3600, renewalTime: 1800, rebindingTime: 3150,
    subnetMask: '255.255.255.0', routers: ['192.168.7.1', '192.168.7.254'], dns: ['1.1.1.1', '9.9.9.9'],
    domainName: 'lab.example', hostname: 'node7', broadcast: '192.168.7.255', mtu: 1400,
    classlessRoutes: [{ destination: '10.0.0.0', prefix: 8, gateway: '192.168.7.2' }, { destination: '0.0.0.0', prefix: 0, gateway: '192.168.7.1' }],
  });
});

test('a request carries client id, parameter list and vendor class, padded to 300 bytes', () => {
  const buf = encodeDhcp({
    xid: 7, chaddr: mac, flags: FLAG_BROADCAST,
    options: {
      messageType: MessageType.DISCOVER, clientId: Buffer.concat([Buffer.from([1]), mac]),
      paramRequestList: [1, 3, 6], vendorClass: 'booty', maxMessageSize: 1472,
    },
  });
  assert.equal(buf.length, 300);
  const m = decodeDhcp(buf);
  assert.equal(m.op, BOOTREQUEST);
  assert.equal(m.options.vendorClass, 'booty');
  assert.deepEqual(m.options.paramRequestList, [1, 3, 6]);
  assert.deepEqual(m.options.clientId, Buffer.from([1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]));
  assert.equal(m.options.maxMessageSize, 1472);
  // the options end with END, then zero padding
  const end = buf.indexOf(Opt.END, 240);
  assert.ok(end > 240);
  assert.ok(buf.subarray(end + 1).every((b) => b === 0));
});

test('values longer than 255 bytes are split and concatenated again (RFC 3396)', () => {
  const dns = Array.from({ length: 100 }, (_, i) => `10.1.${i}.1`); // 400 bytes
  const buf = encodeDhcp({ op: BOOTREPLY, xid: 1, chaddr: mac, options: { messageType: MessageType.ACK, dns } });
  // two instances of option 6: 255 + 145 bytes
  const first = buf.indexOf(Buffer.from([Opt.DNS, 255]), 240);
  assert.ok(first > 0);
  assert.deepEqual(decodeDhcp(buf).options.dns, dns);
});

function withOptions(bytes: number[], header: (b: Buffer) => void = () => {}): Buffer {
  const b = Buffer.alloc(240);
  b[0] = BOOTREPLY; b[1] = 1; b[2] = 6;
  b.writeUInt32BE(0x63825363, 236);
  header(b);
  return Buffer.concat([b, Buffer.from(bytes)]);
}

test('option overload reads options from the file and sname fields, file first', () => {
  const buf = withOptions([Opt.OVERLOAD, 1, 3, Opt.MESSAGE_TYPE, 1, MessageType.ACK, Opt.END], (b) => {
    // file field (108..235): router and half of a split DNS list
    Buffer.from([Opt.ROUTER, 4, 10, 0, 0, 1, Opt.DNS, 4, 10, 0, 0, 53, Opt.END]).copy(b, 108);
    // sname field (44..107): the second half of the DNS list and the hostname
    Buffer.from([Opt.DNS, 4, 10, 0, 0, 54, Opt.HOSTNAME, 3, 0x61, 0x62, 0x63, Opt.END]).copy(b, 44);
  });
  const m = decodeDhcp(buf);
  assert.equal(m.options.messageType, MessageType.ACK);
  assert.deepEqual(m.options.routers, ['10.0.0.1']);
  assert.deepEqual(m.options.dns, ['10.0.0.53', '10.0.0.54']);
  assert.equal(m.options.hostname, 'abc');
  assert.equal(m.sname, '');
  assert.equal(m.file, '');
});

test('pad bytes are skipped and a missing END is tolerated', () => {
  const m = decodeDhcp(withOptions([Opt.PAD, Opt.PAD, Opt.MESSAGE_TYPE, 1, 2, Opt.PAD, Opt.LEASE_TIME, 4, 0, 0, 0, 60]));
  assert.equal(m.options.messageType, 2);
  assert.equal(m.options.leaseTime, 60);
});

test('rapid commit (option 80, RFC 4039) is an empty option on the wire and a flag when decoded', () => {
  const buf = encodeDhcp({ xid: 9, chaddr: mac, options: { messageType: MessageType.DISCOVER, rapidCommit: true } });
  const at = buf.indexOf(Buffer.from([Opt.RAPID_COMMIT, 0]), 240);
  assert.ok(at >= 240, 'option 80 with length 0 among the options');
  const m = decodeDhcp(buf);
  assert.equal(m.options.rapidCommit, true);
  assert.deepEqual(m.raw.get(Opt.RAPID_COMMIT), Buffer.alloc(0));
  // absent (or false): no option 80 at all
  const plain = encodeDhcp({ xid: 9, chaddr: mac, options: { messageType: MessageType.DISCOVER, rapidCommit: false } });
  assert.equal(decodeDhcp(plain).raw.has(Opt.RAPID_COMMIT), false);
  assert.equal(decodeDhcp(plain).options.rapidCommit, undefined);
});

test('unknown options are kept raw and do not disturb the known ones', () => {
  const m = decodeDhcp(withOptions([224, 3, 1, 2, 3, Opt.MESSAGE_TYPE, 1, 5, Opt.END]));
  assert.deepEqual(m.raw.get(224), Buffer.from([1, 2, 3]));
  assert.equal(m.options.messageType, 5);
});

const malformed: [string, Buffer, DhcpDecodeError['code']][] = [
  ['empty', Buffer.alloc(0), 'too-short'],
  ['header only, no cookie', Buffer.alloc(236), 'too-short'],
  ['too long for UDP', Buffer.concat([withOptions([]), Buffer.alloc(70_000)]), 'too-long'],
  ['bad op', withOptions([], (b) => { b[0] = 9; }), 'bad-header'],
  ['hlen over 16', withOptions([], (b) => { b[2] = 17; }), 'bad-header'],
  ['no magic cookie', withOptions([], (b) => { b.writeUInt32BE(0, 236); }), 'bad-cookie'],
  ['option without length byte', withOptions([Opt.MESSAGE_TYPE]), 'truncated-option'],
  ['option longer than the packet', withOptions([Opt.DNS, 8, 1, 2, 3, 4]), 'truncated-option'],
  ['message type of 2 bytes', withOptions([Opt.MESSAGE_TYPE, 2, 1, 1]), 'bad-option'],
  ['server id of 3 bytes', withOptions([Opt.SERVER_ID, 3, 1, 2, 3]), 'bad-option'],
  ['router list not a multiple of 4', withOptions([Opt.ROUTER, 5, 1, 2, 3, 4, 5]), 'bad-option'],
  ['non-contiguous netmask', withOptions([Opt.SUBNET_MASK, 4, 255, 0, 255, 0]), 'bad-option'],
  ['lease time of 2 bytes', withOptions([Opt.LEASE_TIME, 2, 0, 1]), 'bad-option'],
  ['overload value 4', withOptions([Opt.OVERLOAD, 1, 4]), 'bad-option'],
  ['truncated option inside the overloaded file field', withOptions([Opt.OVERLOAD, 1, 1], (b) => { b[234] = Opt.DNS; b[235] = 9; }), 'truncated-option'],
  ['classless route prefix 33', withOptions([Opt.CLASSLESS_ROUTES, 5, 33, 1, 2, 3, 4]), 'bad-option'],
  ['classless route cut short', withOptions([Opt.CLASSLESS_ROUTES, 6, 24, 10, 0, 0, 1, 2]), 'bad-option'],
  ['rapid commit with a value', withOptions([Opt.RAPID_COMMIT, 1, 0]), 'bad-option'],
];

for (const [name, buf, code] of malformed) {
  test(`malformed input is a typed error: ${name}`, () => {
    assert.throws(() => decodeDhcp(buf), (e: unknown) => e instanceof DhcpDecodeError && e.code === code);
  });
}

test('classless static routes keep only the significant octets of the destination', () => {
  const v = Buffer.from([0, 10, 0, 0, 1, 24, 192, 168, 5, 10, 0, 0, 2, 32, 10, 9, 9, 9, 0, 0, 0, 0]);
  assert.deepEqual(decodeClasslessRoutes(v), [
    { destination: '0.0.0.0', prefix: 0, gateway: '10.0.0.1' },
    { destination: '192.168.5.0', prefix: 24, gateway: '10.0.0.2' },
    { destination: '10.9.9.9', prefix: 32, gateway: '0.0.0.0' },
  ]);
});

test('netmask and prefix helpers', () => {
  assert.equal(maskToPrefix('255.255.255.0'), 24);
  assert.equal(maskToPrefix('255.255.254.0'), 23);
  assert.equal(maskToPrefix('0.0.0.0'), 0);
  assert.equal(maskToPrefix('255.255.255.255'), 32);
  assert.throws(() => maskToPrefix('255.0.255.0'));
  assert.equal(prefixToMask(20), '255.255.240.0');
  assert.equal(prefixToMask(0), '0.0.0.0');
  assert.equal(networkOf('10.1.2.3', 16), '10.1.0.0');
  assert.ok(sameSubnet('10.1.2.3', '10.1.200.1', 16));
  assert.ok(!sameSubnet('10.1.2.3', '10.2.0.1', 16));
});
