// The DHCP client state machine against an in-memory server on a virtual clock: retransmission
// and backoff, NAK, xid/chaddr filtering, renewal at T1 (unicast), rebinding at T2 (broadcast),
// expiry, re-acquisition and release. The same client against real dnsmasq is in
// test/integration/dhcp-dnsmasq.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DhcpClient } from '../../src/net/dhcp/client.ts';
import type { Lease } from '../../src/net/dhcp/client.ts';
import { FLAG_BROADCAST, MessageType, Opt, macToBytes, encodeDhcp, BOOTREPLY } from '../../src/net/dhcp/codec.ts';
import { BootyError } from '../../src/util/errors.ts';
import { createLogger } from '../../src/util/log.ts';
import type { Level } from '../../src/util/log.ts';
import { FakeClock, settle } from '../helpers/fake-clock.ts';
import { FakeDhcpServer } from '../helpers/fake-dhcp-server.ts';
import { randomInt, seededRandom } from '../helpers/seeded-random.ts';

const MAC = '52:54:00:aa:bb:01';

function setup(opts: { random?: () => number; renewRetryMinMs?: number; rapidCommit?: boolean } = {}) {
  const clock = new FakeClock();
  const server = new FakeDhcpServer(() => clock.now());
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', sinks: [(l: Level, m: string) => { lines.push(`${l}: ${m}`); }] });
  const client = new DhcpClient({
    transport: server.transport, iface: 'eth0', mac: MAC, log, clock,
    random: opts.random ?? (() => 0.5), renewRetryMinMs: opts.renewRetryMinMs, rapidCommit: opts.rapidCommit,
  });
  const events: string[] = [];
  client.on('bound', (l) => events.push(`bound ${l.address}`));
  client.on('renewed', (l) => events.push(`renewed ${l.address}`));
  client.on('lost', (l) => events.push(`lost ${l.address}`));
  return { clock, server, client, events, lines };
}

/** Starts the client and drives the virtual clock until start() settles. */
async function start(s: ReturnType<typeof setup>, timeoutMs = 60_000): Promise<Lease> {
  let result: { lease?: Lease; error?: unknown } | undefined;
  s.client.start(timeoutMs).then((lease) => { result = { lease }; }, (error: unknown) => { result = { error }; });
  await s.clock.advanceUntil(() => result !== undefined, timeoutMs + 10_000);
  if (result!.error !== undefined) throw result!.error;
  assert.deepEqual(s.events, [`bound ${result!.lease!.address}`]);
  s.events.length = 0; // tests look at what happens after the first lease
  return result!.lease!;
}

test('DISCOVER, OFFER, REQUEST, ACK: the lease carries address, mask, router, DNS and times', async () => {
  const s = setup();
  const lease = await start(s);
  assert.equal(lease.address, '10.9.0.50');
  assert.equal(lease.prefix, 24);
  assert.equal(lease.gateway, '10.9.0.1');
  assert.deepEqual(lease.dns, ['10.9.0.2', '10.9.0.3']);
  assert.equal(lease.domainName, 'lab.example');
  assert.equal(lease.serverId, '10.9.0.1');
  assert.deepEqual([lease.leaseTime, lease.renewalTime, lease.rebindingTime], [120, 60, 105]);
  assert.equal(s.client.state, 'bound');

  const [discover] = s.server.of(MessageType.DISCOVER);
  const [request] = s.server.of(MessageType.REQUEST);
  assert.equal(discover.to, 'broadcast');
  assert.equal(discover.msg.flags & FLAG_BROADCAST, FLAG_BROADCAST, 'broadcast flag: no address yet');
  assert.deepEqual(discover.msg.chaddr, macToBytes(MAC));
  assert.equal(discover.msg.options.vendorClass, 'booty');
  assert.deepEqual(discover.msg.options.clientId, Buffer.from([1, 0x52, 0x54, 0, 0xaa, 0xbb, 1]));
  for (const o of [Opt.SUBNET_MASK, Opt.ROUTER, Opt.DNS, Opt.LEASE_TIME, Opt.T1, Opt.T2]) {
    assert.ok(discover.msg.options.paramRequestList?.includes(o), `requests option ${o}`);
  }
  assert.equal(request.to, 'broadcast');
  assert.equal(request.msg.xid, discover.msg.xid, 'REQUEST answers the OFFER of the same exchange');
  assert.equal(request.msg.options.requestedIp, '10.9.0.50');
  assert.equal(request.msg.options.serverId, '10.9.0.1');
  await s.client.stop({ release: false });
});

test('unanswered DISCOVERs are retransmitted at 2 s twice, then with doubling intervals (2, 2, 4 s)', async () => {
  const s = setup();
  s.server.ignoreDiscovers = 3; // dnsmasq ignores the first while it pings the address
  await start(s);
  const times = s.server.of(MessageType.DISCOVER).map((p) => p.at);
  assert.equal(times.length, 4);
  assert.deepEqual(times.slice(1).map((t, i) => t - times[i]), [2000, 2000, 4000]);
  // all DISCOVERs of one exchange share its xid; secs counts up
  assert.equal(new Set(s.server.of(MessageType.DISCOVER).map((p) => p.msg.xid)).size, 1);
  assert.deepEqual(s.server.of(MessageType.DISCOVER).map((p) => p.msg.secs), [0, 2, 4, 8]);
  await s.client.stop({ release: false });
});

test('retransmission jitter stays within ±1 s (and a quarter of the interval)', async () => {
  for (const [r, expected] of [[0, [1500, 1500, 3000]], [0.999999, [2500, 2500, 5000]]] as const) {
    const s = setup({ random: () => r });
    s.server.ignoreDiscovers = 3;
    await start(s);
    const times = s.server.of(MessageType.DISCOVER).map((p) => p.at);
    assert.deepEqual(times.slice(1).map((t, i) => t - times[i]), expected);
    await s.client.stop({ release: false });
  }
});

test('no server: a BootyError (stage dhcp) naming the NIC and what was sent, with capped backoff', async () => {
  const s = setup();
  s.server.online = false;
  await assert.rejects(start(s, 120_000), (e: unknown) => {
    assert.ok(e instanceof BootyError);
    assert.equal(e.stage, 'dhcp');
    assert.equal(e.code, 'dhcp-timeout');
    assert.match(e.message, /no DHCP lease on eth0 \(52:54:00:aa:bb:01\) after 120 s: sent \d+ DISCOVER, got no OFFER/);
    return true;
  });
  const times = s.server.of(MessageType.DISCOVER).map((p) => p.at);
  const gaps = times.slice(1).map((t, i) => t - times[i]);
  // the initial interval twice (a server probing the address for 3 s offers at the third
  // DISCOVER, 4 s in), then doubling up to the cap
  assert.deepEqual(gaps, [2000, 2000, 4000, 8000, 16000, 32000, 32000]);
});

test('a NAK restarts from DISCOVER with a new xid', async () => {
  const s = setup({ random: seededRandom(11) });
  s.server.nakRequests = 1;
  const lease = await start(s);
  assert.equal(lease.address, '10.9.0.50');
  const discovers = s.server.of(MessageType.DISCOVER);
  assert.equal(discovers.length, 2);
  assert.notEqual(discovers[0].msg.xid, discovers[1].msg.xid);
  assert.ok(s.lines.some((l) => /NAK from 10\.9\.0\.1 \(wrong network\)/.test(l)));
  await s.client.stop({ release: false });
});

test('replies for another xid or another MAC, and garbage, are ignored', async () => {
  const s = setup();
  s.server.online = false;
  const starting = s.client.start(30_000);
  await s.clock.advance(10);
  const d = s.server.of(MessageType.DISCOVER)[0].msg;
  s.server.inject(s.server.reply(d, MessageType.OFFER, {}, '10.9.0.66', d.xid ^ 1));
  s.server.inject(s.server.reply({ ...d, chaddr: macToBytes('52:54:00:00:00:09') }, MessageType.OFFER, {}, '10.9.0.67'));
  s.server.inject(Buffer.from('not dhcp at all'));
  const rand = seededRandom(7);
  for (let i = 0; i < 300; i++) {
    const good = s.server.reply(d, MessageType.OFFER, {}, '10.9.0.68');
    const bad = Buffer.from(good);
    for (let k = 0; k < 6; k++) bad[randomInt(rand, 240, bad.length - 1)] = randomInt(rand, 0, 255);
    // keep the option that would make it acceptable out: a damaged OFFER may still decode,
    // so give it the wrong xid to be sure it must be ignored
    bad.writeUInt32BE((d.xid ^ 2) >>> 0, 4);
    s.server.inject(bad.subarray(0, randomInt(rand, 0, bad.length)));
  }
  await s.clock.advance(10);
  assert.equal(s.client.state, 'selecting');
  assert.equal(s.server.of(MessageType.REQUEST).length, 0);
  s.server.online = true;
  await s.clock.advanceUntil(() => s.client.state === 'bound', 30_000);
  assert.equal((await starting).address, '10.9.0.50');
  await s.client.stop({ release: false });
});

test('renewal at T1 is a unicast REQUEST with ciaddr; the next T1 counts from the renewal', async () => {
  const s = setup();
  const lease = await start(s);
  const boundAt = s.clock.now();
  await s.clock.advance(59_000);
  assert.equal(s.server.of(MessageType.REQUEST).length, 1, 'nothing before T1');
  await s.clock.advance(1_100);
  assert.deepEqual(s.events, ['renewed 10.9.0.50']);
  const renew = s.server.of(MessageType.REQUEST)[1];
  assert.equal(renew.to, '10.9.0.1');
  assert.equal(renew.msg.ciaddr, lease.address);
  assert.equal(renew.msg.flags & FLAG_BROADCAST, 0);
  assert.equal(renew.msg.options.requestedIp, undefined, 'RENEWING carries no requested-address');
  assert.equal(renew.msg.options.serverId, undefined, 'RENEWING carries no server id');
  assert.ok(renew.at - boundAt >= 59_000 && renew.at - boundAt <= 61_000);
  await s.clock.advance(60_000);
  assert.deepEqual(s.events, ['renewed 10.9.0.50', 'renewed 10.9.0.50']);
  assert.equal(s.client.state, 'bound');
  await s.client.stop({ release: false });
});

test('server gone at T1: unicast retries until T2, then broadcast REBINDING; it comes back: lease kept', async () => {
  const s = setup({ renewRetryMinMs: 5_000 });
  await start(s);
  s.server.online = false;
  await s.clock.advance(104_000); // T1 = 60 s, T2 = 105 s
  const renewing = s.server.of(MessageType.REQUEST).slice(1);
  assert.ok(renewing.length >= 2, `retransmitted while RENEWING (${renewing.length})`);
  assert.ok(renewing.every((p) => p.to === '10.9.0.1'));
  assert.equal(s.client.state, 'renewing');
  await s.clock.advance(2_000);
  assert.equal(s.client.state, 'rebinding');
  const rebind = s.server.of(MessageType.REQUEST).at(-1)!;
  assert.equal(rebind.to, 'broadcast');
  assert.equal(rebind.msg.ciaddr, '10.9.0.50');
  s.server.online = true;
  await s.clock.advanceUntil(() => s.events.length > 0, 20_000);
  assert.deepEqual(s.events, ['renewed 10.9.0.50']);
  assert.equal(s.client.state, 'bound');
  await s.client.stop({ release: false });
});

test('lease expires with no server: lost, then DISCOVER again until a server answers', async () => {
  const s = setup();
  await start(s);
  s.server.online = false;
  await s.clock.advance(121_000);
  assert.deepEqual(s.events, ['lost 10.9.0.50']);
  assert.equal(s.client.lease, undefined);
  const before = s.server.of(MessageType.DISCOVER).length;
  await s.clock.advance(20_000);
  assert.ok(s.server.of(MessageType.DISCOVER).length > before, 'keeps discovering');
  s.server.pool = '10.9.0.77';
  s.server.online = true;
  await s.clock.advanceUntil(() => s.events.length === 2, 60_000);
  assert.deepEqual(s.events, ['lost 10.9.0.50', 'bound 10.9.0.77']);
  await s.client.stop({ release: false });
});

test('a NAK while renewing loses the lease and starts over', async () => {
  const s = setup();
  await start(s);
  s.server.nakRequests = 1;
  await s.clock.advanceUntil(() => s.events.length === 2, 90_000);
  assert.deepEqual(s.events, ['lost 10.9.0.50', 'bound 10.9.0.50']);
  await s.client.stop({ release: false });
});

test('an ACK without T1/T2 uses 50% and 87.5% of the lease; contradictory times are fixed', async () => {
  const s = setup();
  s.server.options = { subnetMask: '255.255.0.0', routers: ['10.9.0.1'], leaseTime: 1000 };
  const l = await start(s);
  assert.deepEqual([l.leaseTime, l.renewalTime, l.rebindingTime, l.prefix], [1000, 500, 875, 16]);
  await s.client.stop({ release: false });
  const s2 = setup();
  s2.server.options = { leaseTime: 100, renewalTime: 90, rebindingTime: 80 };
  const l2 = await start(s2);
  assert.ok(l2.renewalTime < l2.rebindingTime && l2.rebindingTime < l2.leaseTime, JSON.stringify(l2));
  assert.equal(l2.prefix, 8, 'no mask: classful (10/8)');
  await s2.client.stop({ release: false });
});

test('option 121 wins over option 3 for the default route (RFC 3442)', async () => {
  const s = setup();
  s.server.options = {
    ...s.server.options, routers: ['10.9.0.1'],
    classlessRoutes: [{ destination: '0.0.0.0', prefix: 0, gateway: '10.9.0.254' }],
  };
  const l = await start(s);
  assert.equal(l.gateway, '10.9.0.254');
  await s.client.stop({ release: false });
});

test('stop() releases the lease to the server and leaves no timer behind', async () => {
  const s = setup();
  await start(s);
  await s.client.stop();
  const [release] = s.server.of(MessageType.RELEASE);
  assert.equal(release.to, '10.9.0.1');
  assert.equal(release.msg.ciaddr, '10.9.0.50');
  assert.equal(release.msg.options.serverId, '10.9.0.1');
  assert.equal(s.client.state, 'stopped');
  assert.ok(s.server.closed);
  await settle();
  assert.equal(s.clock.pendingTimers, 0);
  await s.clock.advance(300_000);
  assert.equal(s.server.of(MessageType.REQUEST).length, 1, 'no renewal after stop');
});

test('an ACK for an OFFER must come from the server that made the offer', async () => {
  const s = setup();
  s.server.online = false;
  const starting = s.client.start(30_000);
  await s.clock.advance(10);
  const d = s.server.of(MessageType.DISCOVER)[0].msg;
  s.server.inject(s.server.reply(d, MessageType.OFFER));
  await s.clock.advance(10);
  const r = s.server.of(MessageType.REQUEST)[0].msg;
  // an ACK from another server id is not the answer
  s.server.inject(encodeDhcp({ op: BOOTREPLY, xid: r.xid, chaddr: r.chaddr, yiaddr: '10.9.0.99', options: { messageType: MessageType.ACK, serverId: '10.9.0.200', leaseTime: 60 } }));
  await s.clock.advance(10);
  assert.equal(s.client.state, 'requesting');
  s.server.inject(s.server.reply(r, MessageType.ACK));
  assert.equal((await starting).address, '10.9.0.50');
  await s.client.stop({ release: false });
});

test('rapid commit: the DISCOVER asks for it; a server that grants it ACKs at once and no REQUEST is sent', async () => {
  const s = setup();
  s.server.rapidCommit = true;
  s.server.ignoreDiscovers = 1; // the ACK answers the retransmission: the lease still counts from the first DISCOVER
  const lease = await start(s);
  assert.equal(lease.address, '10.9.0.50');
  assert.deepEqual([lease.leaseTime, lease.renewalTime, lease.rebindingTime], [120, 60, 105]);
  const discovers = s.server.of(MessageType.DISCOVER);
  assert.equal(discovers.length, 2);
  for (const d of discovers) {
    assert.equal(d.msg.options.rapidCommit, true);
    assert.deepEqual(d.msg.raw.get(Opt.RAPID_COMMIT), Buffer.alloc(0), 'option 80 is empty (RFC 4039)');
  }
  assert.equal(s.server.of(MessageType.REQUEST).length, 0, 'no REQUEST/ACK exchange');
  assert.equal(lease.obtainedAt, discovers[0].at);
  assert.ok(s.lines.some((l) => /ACK of 10\.9\.0\.50 from 10\.9\.0\.1 \(rapid commit\)/.test(l)));
  // renewal works as after a normal ACK: a unicast REQUEST at T1, counted from the first DISCOVER
  await s.clock.advance(discovers[0].at + 61_000 - s.clock.now());
  assert.deepEqual(s.events, ['renewed 10.9.0.50']);
  const [renew] = s.server.of(MessageType.REQUEST);
  assert.equal(renew.to, '10.9.0.1');
  assert.equal(renew.msg.options.rapidCommit, undefined, 'only DISCOVERs carry option 80');
  await s.client.stop({ release: false });
});

test('rapid commit asked, server ignores it: OFFER, REQUEST (without option 80), ACK as usual', async () => {
  const s = setup();
  const lease = await start(s);
  assert.equal(lease.address, '10.9.0.50');
  assert.equal(s.server.of(MessageType.DISCOVER)[0].msg.options.rapidCommit, true);
  const [request] = s.server.of(MessageType.REQUEST);
  assert.equal(request.msg.options.rapidCommit, undefined);
  assert.equal(request.msg.options.requestedIp, '10.9.0.50');
  await s.client.stop({ release: false });
});

test('an ACK to a DISCOVER counts only with option 80, and only when the client asked for rapid commit', async () => {
  for (const rapidCommit of [true, false]) {
    const s = setup({ rapidCommit });
    s.server.online = false;
    const starting = s.client.start(30_000);
    await s.clock.advance(10);
    const d = s.server.of(MessageType.DISCOVER)[0].msg;
    assert.equal(d.options.rapidCommit, rapidCommit ? true : undefined);
    // an ACK without option 80 answers no DISCOVER; with it, it counts only if the client asked
    s.server.inject(s.server.reply(d, MessageType.ACK, {}, '10.9.0.77'));
    if (!rapidCommit) s.server.inject(s.server.reply(d, MessageType.ACK, { rapidCommit: true }, '10.9.0.78'));
    await s.clock.advance(10);
    assert.equal(s.client.state, 'selecting', `rapidCommit ${rapidCommit}: still selecting`);
    s.server.online = true;
    await s.clock.advanceUntil(() => s.client.state === 'bound', 30_000);
    assert.equal((await starting).address, '10.9.0.50');
    assert.equal(s.server.of(MessageType.REQUEST).length, 1, 'the usual REQUEST/ACK');
    await s.client.stop({ release: false });
  }
});
