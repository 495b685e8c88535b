// booty's DHCP client and rtnetlink configuration against real dnsmasq, in network namespaces:
// `booty net` runs in the client namespace exactly as the agent brings its NIC up; the test reads
// the result back with `ip` and dnsmasq's lease file. dnsmasq pings an address before offering it,
// so it ignores the first DISCOVER: the client's retransmission is exercised every run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { DhcpLab, hasDnsmasq, isRoot } from '../helpers/netns-dhcp-lab.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';

const skip = !isRoot() ? 'needs root (network namespaces)' : skipUnlessPresent(hasDnsmasq(), 'needs dnsmasq (dnsmasq-base)');

test('lease from dnsmasq: address, default route and resolv.conf set; released and removed on stop', { skip }, async () => {
  const lab = new DhcpLab('10.77.0');
  try {
    await lab.startDnsmasq({ extra: ['--dhcp-option=3,10.77.0.1', '--dhcp-option=6,10.77.0.53,10.77.0.54', '--domain=lab.test'] });
    const mac = lab.clientMac;
    const resolv = path.join(lab.dir, 'resolv.conf');
    // choose the NIC by BOOTIF, as PXELINUX passes it
    const p = lab.booty(['net', '--bootif', `01-${mac.replace(/:/g, '-')}`, '--json', '--hold', '300', '--resolv-conf', resolv]);
    const bound = await p.waitForEvent('bound');
    assert.equal(bound.iface, lab.clientIf);
    assert.equal(bound.mac, mac);
    const address = bound.address as string;
    assert.match(address, /^10\.77\.0\.(5\d|[6-9]\d)$/);
    assert.deepEqual([bound.prefix, bound.gateway, bound.dns, bound.server, bound.leaseTime], [24, '10.77.0.1', ['10.77.0.53', '10.77.0.54'], '10.77.0.1', 120]);

    // what the kernel now has, seen from outside
    assert.deepEqual(lab.clientAddresses(), [`${address}/24`]);
    const routes = lab.clientRoutes();
    const def = routes.find((r) => r.dst === 'default');
    assert.ok(def, JSON.stringify(routes));
    assert.equal(def.gateway, '10.77.0.1');
    assert.equal(def.dev, lab.clientIf);
    assert.equal(def.protocol, 'dhcp');
    assert.equal(fs.readFileSync(resolv, 'utf8'), '# written by booty\nsearch lab.test\nnameserver 10.77.0.53\nnameserver 10.77.0.54\n');
    assert.match(fs.readFileSync(lab.leaseFile, 'utf8'), new RegExp(`${mac} ${address.replace(/\./g, '\\.')}`));
    assert.match(lab.dnsmasqLog, /vendor class: booty/);
    // the client asked for rapid commit (option 80); this dnsmasq does not offer it (no
    // --dhcp-rapid-commit) and ignores the option: the usual OFFER, REQUEST, ACK
    assert.match(p.stderr, /dhcp: DISCOVER on \S+ \(attempt 1, xid 0x[0-9a-f]+, rapid commit asked\)/);
    assert.match(p.stderr, /dhcp: OFFER of /);
    assert.match(p.stderr, /dhcp: REQUEST /);
    assert.match(lab.dnsmasqLog, /DHCPREQUEST\(/);

    // the server can reach us at the leased address
    const { execFileSync } = await import('node:child_process');
    // dnsmasq's own ping probe of the address (before the OFFER) can leave a FAILED neighbour
    // entry on the server side for a moment: a first ping may then bounce without an ARP
    // request, so try a few times before calling the address unreachable.
    let reached = false;
    for (let i = 0; i < 5 && !reached; i++) {
      try {
        execFileSync('ip', ['netns', 'exec', lab.serverNs, 'ping', '-c', '1', '-W', '2', address], { stdio: 'ignore' });
        reached = true;
      } catch {
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    assert.ok(reached, `the server namespace cannot ping the leased address ${address}`);

    assert.equal(await p.stop(), 0);
    assert.ok(p.events().some((e) => e.event === 'stopped'));
    assert.deepEqual(lab.clientAddresses(), [], 'address removed on stop');
    assert.equal(lab.clientRoutes().find((r) => r.dst === 'default'), undefined);
    await p.waitFor('dnsmasq to process the RELEASE', () => (/DHCPRELEASE/.test(lab.dnsmasqLog) ? true : undefined), 15_000);
    assert.match(lab.dnsmasqLog, new RegExp(`DHCPRELEASE\\(${lab.serverIf}\\) ${address.replace(/\./g, '\\.')} ${mac}`));
  } finally {
    await lab.close();
  }
});

test('renewal at T1 against dnsmasq; dnsmasq killed and restarted mid-lease: the address stays', { skip }, async () => {
  const lab = new DhcpLab('10.78.0');
  try {
    // 2-minute lease (dnsmasq's minimum) with T1 at 4 s and T2 at 10 s, so renewal happens at once
    const dnsmasqOpts = { leaseTime: 120, extra: ['--dhcp-option=3,10.78.0.1', '--dhcp-option=option:T1,4', '--dhcp-option=option:T2,10'] };
    await lab.startDnsmasq(dnsmasqOpts);
    // no --iface: the first NIC with carrier, as the agent does without BOOTIF
    const p = lab.booty(['net', '--json', '--hold', '300', '--no-resolv-conf', '--renew-retry-min', '2']);
    const bound = await p.waitForEvent('bound');
    const address = bound.address as string;
    assert.deepEqual([bound.iface, bound.t1, bound.t2], [lab.clientIf, 4, 10]);

    // a real renewal: unicast REQUEST to the server, ACK, nothing changes on the interface
    const renewed = await p.waitForEvent('renewed');
    assert.equal(renewed.address, address);
    assert.match(lab.dnsmasqLog, new RegExp(`DHCPREQUEST\\(${lab.serverIf}\\) ${address.replace(/\./g, '\\.')}`));

    // the server vanishes: the client keeps retrying and keeps its address meanwhile
    await lab.stopDnsmasq();
    const eventsBefore = p.events().length;
    const stderrBefore = p.stderr.length;
    await p.waitFor('a renewal attempt with the server down',
      () => (/RENEWING|REBINDING/.test(p.stderr.slice(stderrBefore)) ? true : undefined), 30_000);
    assert.deepEqual(lab.clientAddresses(), [`${address}/24`], 'address kept while the server is away');
    assert.ok(!p.events().slice(eventsBefore).some((e) => e.event === 'lost'));

    // it comes back with the same lease database: the lease is renewed, same address
    await lab.startDnsmasq(dnsmasqOpts);
    const again = await p.waitForEvent('renewed', eventsBefore);
    assert.equal(again.address, address);
    assert.deepEqual(lab.clientAddresses(), [`${address}/24`]);
    assert.equal(lab.clientRoutes().find((r) => r.dst === 'default')?.gateway, '10.78.0.1');
    assert.ok(!p.events().some((e) => e.event === 'lost'), 'the lease was never lost');
    assert.equal(await p.stop(), 0);
  } finally {
    await lab.close();
  }
});

test('rapid commit granted by dnsmasq (--dhcp-rapid-commit): ACK on the DISCOVER, no REQUEST, address set', { skip }, async () => {
  const lab = new DhcpLab('10.80.0');
  try {
    await lab.startDnsmasq({ extra: ['--dhcp-option=3,10.80.0.1', '--dhcp-rapid-commit'] });
    const mac = lab.clientMac;
    const p = lab.booty(['net', '--iface', lab.clientIf, '--json', '--hold', '300', '--no-resolv-conf']);
    const bound = await p.waitForEvent('bound');
    const address = bound.address as string;
    assert.match(address, /^10\.80\.0\.(5\d|[6-9]\d)$/);
    assert.deepEqual([bound.prefix, bound.gateway, bound.server, bound.leaseTime], [24, '10.80.0.1', '10.80.0.1', 120]);
    assert.deepEqual(lab.clientAddresses(), [`${address}/24`]);
    assert.match(p.stderr, new RegExp(`dhcp: ACK of ${address.replace(/\./g, '\\.')} from 10\\.80\\.0\\.1 \\(rapid commit\\)`));
    assert.doesNotMatch(p.stderr, /dhcp: (OFFER|REQUEST) /, 'no OFFER/REQUEST exchange');
    // dnsmasq's side: a DISCOVER answered by an ACK, the lease committed, no REQUEST seen
    assert.match(lab.dnsmasqLog, new RegExp(`DHCPACK\\(${lab.serverIf}\\) ${address.replace(/\./g, '\\.')} ${mac}`));
    assert.doesNotMatch(lab.dnsmasqLog, /DHCPOFFER|DHCPREQUEST/);
    assert.match(fs.readFileSync(lab.leaseFile, 'utf8'), new RegExp(`${mac} ${address.replace(/\./g, '\\.')}`));
    assert.equal(await p.stop(), 0);
  } finally {
    await lab.close();
  }
});

test('no DHCP server: booty net fails with the dhcp exit code and a sentence naming the NIC', { skip }, async () => {
  const lab = new DhcpLab('10.79.0');
  try {
    const p = lab.booty(['net', '--iface', lab.clientIf, '--dhcp-timeout', '5', '--no-resolv-conf']);
    const code = await p.exited;
    assert.equal(code, 13, p.stderr);
    assert.match(p.stderr, new RegExp(`booty: dhcp: no DHCP lease on ${lab.clientIf} \\(${lab.clientMac}\\) after 5 s: sent \\d+ DISCOVER, got no OFFER`));
    assert.deepEqual(lab.clientAddresses(), []);
  } finally {
    await lab.close();
  }
});
