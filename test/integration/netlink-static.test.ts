// rtnetlink against the real kernel, in a network namespace: `booty net --ip <kernel ip= syntax>`
// sets the link up, the address and the routes through our koffi netlink socket; `ip` reads them
// back and a ping from the neighbour namespace proves they work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DhcpLab, isRoot } from '../helpers/netns-dhcp-lab.ts';

const skip = !isRoot() ? 'needs root (network namespaces)' : false;

function ping(ns: string, address: string): void {
  execFileSync('ip', ['netns', 'exec', ns, 'ping', '-c', '1', '-W', '5', address], { stdio: 'ignore' });
}

test('static ip=: link up, address, default route and DNS through rtnetlink; rerun is idempotent', { skip }, async () => {
  const lab = new DhcpLab('10.66.0');
  try {
    const list = lab.booty(['net', '--list']);
    assert.equal(await list.exited, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`^${lab.clientIf} ${lab.clientMac} down`, 'm'));

    const resolv = path.join(lab.dir, 'resolv.conf');
    const ipArg = `10.66.0.5::10.66.0.1:255.255.255.0:node5:${lab.clientIf}:off:10.66.0.53`;
    for (let run = 1; run <= 2; run++) {
      const p = lab.booty(['net', '--ip', ipArg, '--resolv-conf', resolv]);
      assert.equal(await p.exited, 0, `run ${run}: ${p.stderr}`);
      assert.match(p.stdout, new RegExp(`^configured: iface=${lab.clientIf} mac=${lab.clientMac} address=10\\.66\\.0\\.5 prefix=24 gateway=10\\.66\\.0\\.1 dns=10\\.66\\.0\\.53 hostname=node5`, 'm'));
    }
    assert.deepEqual(lab.clientAddresses(), ['10.66.0.5/24']);
    const def = lab.clientRoutes().find((r) => r.dst === 'default');
    assert.deepEqual([def?.gateway, def?.dev, def?.protocol], ['10.66.0.1', lab.clientIf, 'static']);
    assert.equal(fs.readFileSync(resolv, 'utf8'), '# written by booty\nnameserver 10.66.0.53\n');
    ping(lab.serverNs, '10.66.0.5');
  } finally {
    await lab.close();
  }
});

test('static /32 with the gateway outside it: the host route to the gateway goes in first', { skip }, async () => {
  const lab = new DhcpLab('10.67.0');
  try {
    const p = lab.booty(['net', '--iface', lab.clientIf, '--ip', `10.67.0.9/32::10.67.0.1:::${lab.clientIf}:none`, '--no-resolv-conf']);
    assert.equal(await p.exited, 0, p.stderr);
    assert.deepEqual(lab.clientAddresses(), ['10.67.0.9/32']);
    const routes = lab.clientRoutes();
    assert.ok(routes.some((r) => r.dst === '10.67.0.1' && r.scope === 'link'), JSON.stringify(routes));
    assert.equal(routes.find((r) => r.dst === 'default')?.gateway, '10.67.0.1');
    ping(lab.serverNs, '10.67.0.9');
  } finally {
    await lab.close();
  }
});

test('a NIC that does not exist: the network exit code and a sentence listing the NICs there are', { skip }, async () => {
  const lab = new DhcpLab('10.68.0');
  try {
    const p = lab.booty(['net', '--iface', 'nosuch0', '--link-timeout', '1', '--no-resolv-conf']);
    assert.equal(await p.exited, 12, p.stderr);
    assert.match(p.stderr, new RegExp(`booty: network: NIC nosuch0 not found after 1 s; interfaces: ${lab.clientIf} ${lab.clientMac}`));
  } finally {
    await lab.close();
  }
});
