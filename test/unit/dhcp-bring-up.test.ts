// bringUpNetwork() end to end without root: a fake sysfs tree for the NICs, the fake rtnetlink
// kernel and the in-memory DHCP server, on a virtual clock. Checks the NIC choice (BOOTIF, name,
// first with carrier), the netlink requests for address and routes, resolv.conf, the reaction
// to a lost lease, and stop(). The real thing runs in test/integration/dhcp-dnsmasq.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bringUpNetwork } from '../../src/net/configure.ts';
import type { NetworkHandle, NetworkOptions } from '../../src/net/configure.ts';
import { MessageType } from '../../src/net/dhcp/codec.ts';
import { IFF, RTM } from '../../src/net/netlink/codec.ts';
import { BootyError } from '../../src/util/errors.ts';
import { createLogger } from '../../src/util/log.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { FakeDhcpServer } from '../helpers/fake-dhcp-server.ts';
import { FakeRtnetlink } from '../helpers/fake-rtnetlink.ts';

interface Nic { name: string; mac: string; index: number; cable: boolean; physical?: boolean }

function world(nics: Nic[]) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-net-unit-'));
  const kernel = new FakeRtnetlink();
  const clock = new FakeClock();
  const server = new FakeDhcpServer(() => clock.now());
  const lines: string[] = [];
  for (const n of nics) {
    const dir = path.join(root, 'class/net', n.name);
    fs.mkdirSync(dir, { recursive: true });
    if (n.physical ?? true) fs.mkdirSync(path.join(dir, 'device'));
    fs.writeFileSync(path.join(dir, 'type'), '1\n');
    fs.writeFileSync(path.join(dir, 'address'), n.mac + '\n');
    fs.writeFileSync(path.join(dir, 'ifindex'), `${n.index}\n`);
    fs.writeFileSync(path.join(dir, 'operstate'), 'down\n');
    kernel.links.push({ index: n.index, name: n.name, mac: n.mac, flags: IFF.BROADCAST, carrier: false, mtu: 1500 });
  }
  // As on a real NIC: carrier is readable only while the link is up, and 1 only with a cable.
  kernel.onLinkUp = (link, up) => {
    const n = nics.find((x) => x.index === link.index)!;
    const dir = path.join(root, 'class/net', n.name);
    if (up) fs.writeFileSync(path.join(dir, 'carrier'), n.cable ? '1\n' : '0\n');
    else fs.rmSync(path.join(dir, 'carrier'), { force: true });
    fs.writeFileSync(path.join(dir, 'operstate'), up && n.cable ? 'up\n' : 'down\n');
  };
  const resolv = path.join(root, 'etc/resolv.conf');
  const options = (extra: Partial<NetworkOptions> = {}): NetworkOptions => ({
    log: createLogger({ level: 'debug', sinks: [(_l, m) => { lines.push(m); }] }),
    sysfsRoot: root, resolvConf: resolv, clock,
    openNetlink: () => kernel.socket,
    openTransport: async () => server.transport,
    ...extra,
  });
  const cleanup = () => fs.rmSync(root, { recursive: true, force: true });
  return { root, kernel, clock, server, lines, resolv, options, cleanup };
}

async function run(w: ReturnType<typeof world>, opts: NetworkOptions, maxMs = 120_000): Promise<NetworkHandle> {
  let result: { h?: NetworkHandle; e?: unknown } | undefined;
  bringUpNetwork(opts).then((h) => { result = { h }; }, (e: unknown) => { result = { e }; });
  await w.clock.advanceUntil(() => result !== undefined, maxMs);
  if (result!.e !== undefined) throw result!.e;
  return result!.h!;
}

test('DHCP on the BOOTIF NIC: link up, address, default route, resolv.conf; stop releases and removes', async () => {
  const w = world([
    { name: 'eth0', mac: '52:54:00:00:00:01', index: 2, cable: true },
    { name: 'eth1', mac: '52:54:00:00:00:02', index: 3, cable: true },
  ]);
  try {
    const h = await run(w, w.options({ bootif: '52:54:00:00:00:02' }));
    assert.deepEqual([h.iface, h.mac, h.address, h.prefix, h.gateway, h.dns], ['eth1', '52:54:00:00:00:02', '10.9.0.50', 24, '10.9.0.1', ['10.9.0.2', '10.9.0.3']]);
    assert.deepEqual(w.kernel.of(RTM.NEWLINK).map((r) => [r.index, r.up]), [[3, 1]], 'only the BOOTIF NIC is touched');
    assert.deepEqual(w.kernel.of(RTM.NEWADDR), [{ type: RTM.NEWADDR, prefix: 24, index: 3, local: '10.9.0.50', address: '10.9.0.50', broadcast: '10.9.0.255' }]);
    const [route] = w.kernel.of(RTM.NEWROUTE);
    assert.deepEqual([route.prefix, route.gateway, route.oif], [0, '10.9.0.1', 3]);
    assert.equal(fs.readFileSync(w.resolv, 'utf8'), '# written by booty\nsearch lab.example\nnameserver 10.9.0.2\nnameserver 10.9.0.3\n');
    await h.stop();
    assert.equal(w.server.of(MessageType.RELEASE).length, 1);
    assert.deepEqual(w.kernel.of(RTM.DELADDR).map((r) => [r.local, r.index]), [['10.9.0.50', 3]]);
    assert.ok(w.kernel.closed);
  } finally { w.cleanup(); }
});

test('onDhcpWaiting: called once, after the first DISCOVER went out and before any lease (a NAK restart does not call it again)', async () => {
  const w = world([{ name: 'eth0', mac: '52:54:00:00:00:01', index: 2, cable: true }]);
  try {
    w.server.ignoreDiscovers = 1;
    w.server.nakRequests = 1;
    const calls: { discovers: number; requests: number }[] = [];
    const h = await run(w, w.options({ onDhcpWaiting: () => calls.push({ discovers: w.server.of(MessageType.DISCOVER).length, requests: w.server.of(MessageType.REQUEST).length }) }));
    assert.equal(h.address, '10.9.0.50');
    assert.deepEqual(calls, [{ discovers: 1, requests: 0 }]);
    assert.ok(w.server.of(MessageType.DISCOVER).length >= 3, 'retransmitted, then again after the NAK');
    await h.stop();
  } finally { w.cleanup(); }
});

test('no NIC named: the first with carrier wins, the others go down again', async () => {
  const w = world([
    { name: 'eno1', mac: '52:54:00:00:00:01', index: 2, cable: false },
    { name: 'eno2', mac: '52:54:00:00:00:02', index: 3, cable: true },
    { name: 'veth9', mac: '52:54:00:00:00:09', index: 4, cable: true, physical: false },
  ]);
  try {
    const h = await run(w, w.options());
    assert.equal(h.iface, 'eno2');
    assert.deepEqual(w.kernel.of(RTM.NEWLINK).map((r) => [r.index, r.up]), [[2, 1], [3, 1], [2, 0]], 'virtual veth9 skipped; eno1 set down');
    await h.stop({ release: false, deconfigure: false });
  } finally { w.cleanup(); }
});

test('no carrier anywhere: a network BootyError listing every NIC', async () => {
  const w = world([
    { name: 'eno1', mac: '52:54:00:00:00:01', index: 2, cable: false },
    { name: 'eno2', mac: '52:54:00:00:00:02', index: 3, cable: false },
  ]);
  try {
    await assert.rejects(run(w, w.options({ linkTimeoutMs: 5_000 })), (e: unknown) => {
      assert.ok(e instanceof BootyError);
      assert.equal(e.stage, 'network');
      assert.equal(e.code, 'no-link');
      assert.match(e.message, /no carrier on eno1, eno2 after 5 s; interfaces: eno1 52:54:00:00:00:01 no-carrier down; eno2 52:54:00:00:00:02 no-carrier down/);
      return true;
    });
    assert.ok(w.kernel.closed, 'netlink socket closed on failure');
  } finally { w.cleanup(); }
});

test('a BOOTIF that matches no NIC names the MAC', async () => {
  const w = world([{ name: 'eth0', mac: '52:54:00:00:00:01', index: 2, cable: true }]);
  try {
    await assert.rejects(run(w, w.options({ bootif: 'aa:bb:cc:dd:ee:ff', linkTimeoutMs: 3_000 })),
      /the NIC with MAC aa:bb:cc:dd:ee:ff \(BOOTIF\) not found after 3 s; interfaces: eth0 52:54:00:00:00:01/);
  } finally { w.cleanup(); }
});

test('DHCP timeout is a dhcp BootyError naming the NIC', async () => {
  const w = world([{ name: 'eth0', mac: '52:54:00:00:00:01', index: 2, cable: true }]);
  w.server.online = false;
  try {
    await assert.rejects(run(w, w.options({ iface: 'eth0', dhcpTimeoutMs: 20_000 })), (e: unknown) =>
      e instanceof BootyError && e.stage === 'dhcp' && /no DHCP lease on eth0 \(52:54:00:00:00:01\) after 20 s/.test(e.message));
  } finally { w.cleanup(); }
});

test('static ip= with a gateway outside the subnet: host route to the gateway first, no DHCP', async () => {
  const w = world([{ name: 'eth0', mac: '52:54:00:00:00:01', index: 2, cable: true }]);
  try {
    const h = await run(w, w.options({
      ip: { mode: 'static', iface: 'eth0', address: '10.1.1.5', prefix: 32, gateway: '10.1.0.1', dns: ['10.1.0.53'] },
    }));
    assert.deepEqual([h.address, h.prefix, h.gateway, h.lease], ['10.1.1.5', 32, '10.1.0.1', undefined]);
    assert.deepEqual(w.kernel.of(RTM.NEWROUTE).map((r) => [r.destination ?? 'default', r.prefix, r.gateway ?? 'link']),
      [['10.1.0.1', 32, 'link'], ['default', 0, '10.1.0.1']]);
    assert.equal(w.server.sent.length, 0);
    assert.match(fs.readFileSync(w.resolv, 'utf8'), /nameserver 10\.1\.0\.53/);
    await h.stop();
    assert.equal(w.kernel.of(RTM.DELADDR).length, 1);
  } finally { w.cleanup(); }
});

test('ip=off is refused: booty cannot work without the network', async () => {
  const w = world([]);
  try {
    await assert.rejects(run(w, w.options({ ip: { mode: 'off' } })), (e: unknown) => e instanceof BootyError && e.code === 'network-off');
  } finally { w.cleanup(); }
});

test('lease lost: the address is removed; a new lease puts the new address and route back', async () => {
  const w = world([{ name: 'eth0', mac: '52:54:00:00:00:01', index: 2, cable: true }]);
  try {
    const events: string[] = [];
    const h = await run(w, w.options({ onLeaseEvent: (e, l) => events.push(`${e} ${l.address}`) }));
    w.server.online = false;
    await w.clock.advance(121_000);
    assert.deepEqual(events, ['lost 10.9.0.50']);
    assert.deepEqual(w.kernel.of(RTM.DELADDR).map((r) => r.local), ['10.9.0.50']);
    assert.equal(h.lease, undefined);
    w.server.pool = '10.9.0.61';
    w.server.online = true;
    await w.clock.advanceUntil(() => events.length === 2, 60_000);
    assert.deepEqual(events, ['lost 10.9.0.50', 'bound 10.9.0.61']);
    assert.equal(h.address, '10.9.0.61');
    assert.deepEqual(w.kernel.of(RTM.NEWADDR).map((r) => r.local), ['10.9.0.50', '10.9.0.61']);
    assert.equal(w.kernel.of(RTM.NEWROUTE).length, 2);
    await h.stop({ release: false });
  } finally { w.cleanup(); }
});

test('routine renewals change nothing on the interface', async () => {
  const w = world([{ name: 'eth0', mac: '52:54:00:00:00:01', index: 2, cable: true }]);
  try {
    const events: string[] = [];
    const h = await run(w, w.options({ onLeaseEvent: (e) => events.push(e) }));
    await w.clock.advance(200_000);
    assert.deepEqual(events, ['renewed', 'renewed', 'renewed']);
    assert.equal(w.kernel.of(RTM.NEWADDR).length, 1);
    assert.equal(w.kernel.of(RTM.NEWROUTE).length, 1);
    await h.stop({ release: false });
  } finally { w.cleanup(); }
});
