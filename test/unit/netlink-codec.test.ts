import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AF_INET, IFA, IFF, NLMSG, NLM_F, RTA, RTM, RTPROT, RT_SCOPE, RT_TABLE_MAIN, NetlinkDecodeError,
  addressRequest, getLinksRequest, parseAttrs, parseError, parseMessages, routeRequest, setLinkRequest, nlmsg,
} from '../../src/net/netlink/codec.ts';
import { Rtnl, NetlinkError } from '../../src/net/netlink/rtnl.ts';
import { FakeRtnetlink } from '../helpers/fake-rtnetlink.ts';

test('RTM_NEWLINK sets IFF_UP with the change mask, and the MTU when asked', () => {
  const b = setLinkRequest(42, { index: 3, up: true, mtu: 1400 });
  assert.equal(b.readUInt32LE(0), b.length, 'nlmsg_len');
  assert.equal(b.readUInt16LE(4), RTM.NEWLINK);
  assert.equal(b.readUInt16LE(6), NLM_F.REQUEST | NLM_F.ACK);
  assert.equal(b.readUInt32LE(8), 42);
  assert.equal(b.readInt32LE(16 + 4), 3, 'ifi_index');
  assert.equal(b.readUInt32LE(16 + 8), IFF.UP, 'ifi_flags');
  assert.equal(b.readUInt32LE(16 + 12), IFF.UP, 'ifi_change');
  const attrs = parseAttrs(b.subarray(32));
  assert.equal(attrs.get(4)!.readUInt32LE(0), 1400);
  const down = setLinkRequest(1, { index: 3, up: false });
  assert.equal(down.readUInt32LE(16 + 8), 0);
  assert.equal(down.readUInt32LE(16 + 12), IFF.UP);
  assert.equal(down.length, 32);
});

test('RTM_NEWADDR carries local, address and broadcast; create|replace so a rerun is idempotent', () => {
  const b = addressRequest(7, 'add', { index: 2, address: '10.0.2.15', prefix: 24, broadcast: '10.0.2.255' });
  const [m] = parseMessages(b);
  assert.equal(m.type, RTM.NEWADDR);
  assert.equal(m.flags, NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | NLM_F.REPLACE);
  assert.equal(m.payload[0], AF_INET);
  assert.equal(m.payload[1], 24);
  assert.equal(m.payload.readUInt32LE(4), 2);
  const a = parseAttrs(m.payload.subarray(8));
  assert.deepEqual([...a.get(IFA.LOCAL)!], [10, 0, 2, 15]);
  assert.deepEqual([...a.get(IFA.ADDRESS)!], [10, 0, 2, 15]);
  assert.deepEqual([...a.get(IFA.BROADCAST)!], [10, 0, 2, 255]);
  const del = parseMessages(addressRequest(8, 'del', { index: 2, address: '10.0.2.15', prefix: 24 }))[0];
  assert.equal(del.type, RTM.DELADDR);
  assert.equal(del.flags, NLM_F.REQUEST | NLM_F.ACK);
});

test('RTM_NEWROUTE: default route via a gateway, and an on-link host route with scope link', () => {
  const [def] = parseMessages(routeRequest(1, 'add', { destination: '0.0.0.0', prefix: 0, gateway: '10.0.2.2', oif: 2, protocol: RTPROT.DHCP }));
  assert.equal(def.type, RTM.NEWROUTE);
  assert.deepEqual([...def.payload.subarray(0, 8)], [AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT.DHCP, RT_SCOPE.UNIVERSE, 1]);
  const a = parseAttrs(def.payload.subarray(12));
  assert.equal(a.has(RTA.DST), false, 'a default route has no RTA_DST');
  assert.deepEqual([...a.get(RTA.GATEWAY)!], [10, 0, 2, 2]);
  assert.equal(a.get(RTA.OIF)!.readUInt32LE(0), 2);

  const [bcast] = parseMessages(routeRequest(2, 'add', { destination: '255.255.255.255', prefix: 32, oif: 5 }));
  assert.equal(bcast.payload[1], 32);
  assert.equal(bcast.payload[6], RT_SCOPE.LINK);
  const b = parseAttrs(bcast.payload.subarray(12));
  assert.deepEqual([...b.get(RTA.DST)!], [255, 255, 255, 255]);
  assert.equal(b.has(RTA.GATEWAY), false);
});

test('RTM_GETLINK dump request', () => {
  const [m] = parseMessages(getLinksRequest(9));
  assert.equal(m.type, RTM.GETLINK);
  assert.equal(m.flags, NLM_F.REQUEST | NLM_F.DUMP);
  assert.equal(m.payload.length, 16);
});

test('NLMSG_ERROR decodes to errno and the sequence it answers', () => {
  const body = Buffer.alloc(20);
  body.writeInt32LE(-17, 0);
  body.writeUInt32LE(20, 4);
  body.writeUInt32LE(77, 12); // seq inside the echoed header
  const [m] = parseMessages(nlmsg(NLMSG.ERROR, 0, 77, body));
  assert.deepEqual(parseError(m), { errno: 17, seq: 77 });
});

test('truncated or lying lengths are decode errors, not out-of-bounds reads', () => {
  const good = setLinkRequest(1, { index: 1, up: true, mtu: 1500 });
  const lying = Buffer.from(good); lying.writeUInt32LE(good.length + 8, 0);
  assert.throws(() => parseMessages(lying), NetlinkDecodeError);
  const tiny = Buffer.from(good); tiny.writeUInt32LE(8, 0);
  assert.throws(() => parseMessages(tiny), NetlinkDecodeError);
  const badAttr = Buffer.from([8, 0, 1, 0, 1, 2]);
  assert.throws(() => parseAttrs(badAttr), NetlinkDecodeError);
  assert.deepEqual(parseMessages(Buffer.alloc(0)), []);
});

test('Rtnl: a link dump across datagrams, skipping a stale reply, with carrier and operstate', () => {
  const k = new FakeRtnetlink();
  k.links = [
    { index: 1, name: 'lo', mac: '00:00:00:00:00:00', flags: IFF.UP | IFF.LOOPBACK, carrier: true, mtu: 65536 },
    { index: 2, name: 'eth0', mac: '52:54:00:12:34:56', flags: IFF.UP | IFF.BROADCAST, carrier: true, mtu: 1500 },
    { index: 3, name: 'eth1', mac: '52:54:00:12:34:57', flags: IFF.BROADCAST, carrier: false, mtu: 9000 },
  ];
  const r = new Rtnl(k.socket, 100);
  const links = r.links();
  assert.deepEqual(links.map((l) => [l.index, l.name, l.mac, l.mtu, l.carrier, l.operstate, l.up]), [
    [1, 'lo', '00:00:00:00:00:00', 65536, true, 'up', true],
    [2, 'eth0', '52:54:00:12:34:56', 1500, true, 'up', true],
    [3, 'eth1', '52:54:00:12:34:57', 9000, false, 'down', false],
  ]);
  assert.equal(r.link('eth1')?.index, 3);
});

test('Rtnl: requests are acked; a refusal becomes a NetlinkError naming the operation', () => {
  const k = new FakeRtnetlink();
  k.links = [{ index: 2, name: 'eth0', mac: '52:54:00:12:34:56', flags: 0, carrier: true, mtu: 1500 }];
  const r = new Rtnl(k.socket);
  r.setLinkUp(2);
  assert.equal(k.links[0].flags & IFF.UP, IFF.UP);
  r.addAddress({ index: 2, address: '10.0.0.5', prefix: 24 });
  r.addRoute({ destination: '0.0.0.0', prefix: 0, gateway: '10.0.0.1', oif: 2 });
  assert.deepEqual(k.of(RTM.NEWADDR), [{ type: RTM.NEWADDR, prefix: 24, index: 2, local: '10.0.0.5', address: '10.0.0.5' }]);
  assert.equal(k.of(RTM.NEWROUTE)[0].gateway, '10.0.0.1');
  k.failNext.set(RTM.NEWROUTE, 101); // ENETUNREACH
  assert.throws(() => r.addRoute({ destination: '0.0.0.0', prefix: 0, gateway: '192.168.9.1', oif: 2 }), (e: unknown) =>
    e instanceof NetlinkError && e.code === 'ENETUNREACH' && /add route default via 192\.168\.9\.1 dev #2/.test(e.message));
  assert.throws(() => r.setLinkUp(9), (e: unknown) => e instanceof NetlinkError && e.code === 'ENODEV');
});
