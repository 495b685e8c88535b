import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBootif, parseIpParam, ipParamNetmask } from '../../src/net/ip-param.ts';
import { BootyError } from '../../src/util/errors.ts';

test('bare autoconf words', () => {
  for (const w of ['dhcp', 'on', 'any', 'DHCP', 'both', 'bootp', 'single-dhcp']) assert.deepEqual(parseIpParam(w), { mode: 'dhcp' }, w);
  for (const w of ['off', 'none', '']) assert.deepEqual(parseIpParam(w), { mode: 'off' }, w);
});

test('dracut <iface>:dhcp[:mtu[:mac]]', () => {
  assert.deepEqual(parseIpParam('eth0:dhcp'), { mode: 'dhcp', iface: 'eth0', mtu: undefined, mac: undefined });
  assert.deepEqual(parseIpParam('enp3s0:on:9000'), { mode: 'dhcp', iface: 'enp3s0', mtu: 9000, mac: undefined });
  assert.deepEqual(parseIpParam('eth1:dhcp:1500:52:54:00:AB:CD:EF'), { mode: 'dhcp', iface: 'eth1', mtu: 1500, mac: '52:54:00:ab:cd:ef' });
});

test('kernel static form with dotted netmask, gateway, hostname, device and two DNS servers', () => {
  assert.deepEqual(parseIpParam('10.0.0.5:10.0.0.9:10.0.0.1:255.255.255.0:node5:eth0:off:1.1.1.1:9.9.9.9'), {
    mode: 'static', iface: 'eth0', address: '10.0.0.5', prefix: 24, gateway: '10.0.0.1', server: '10.0.0.9',
    hostname: 'node5', dns: ['1.1.1.1', '9.9.9.9'], mtu: undefined, mac: undefined,
  });
});

test('static forms: empty fields, prefix netmask, CIDR client address, classful default, ntp field ignored', () => {
  const a = parseIpParam('192.168.1.20::192.168.1.1:24::eno1:none');
  assert.equal(a.mode, 'static');
  assert.deepEqual(a.mode === 'static' && [a.address, a.prefix, a.gateway, a.iface, a.server, a.hostname], ['192.168.1.20', 24, '192.168.1.1', 'eno1', undefined, undefined]);
  const b = parseIpParam('172.16.5.5/20:::::eth2:off');
  assert.deepEqual(b.mode === 'static' && [b.prefix, b.gateway, b.iface], [20, undefined, 'eth2']);
  const c = parseIpParam('10.1.2.3');
  assert.deepEqual(c.mode === 'static' && [c.prefix, c.iface], [8, undefined]);
  assert.equal(c.mode === 'static' && ipParamNetmask(c), '255.0.0.0');
  const d = parseIpParam('10.0.0.5::10.0.0.1:255.255.255.0::eth0:off:10.0.0.53::10.0.0.123');
  assert.deepEqual(d.mode === 'static' && d.dns, ['10.0.0.53']);
});

test('dracut static form with mtu and mac after autoconf', () => {
  const p = parseIpParam('10.0.0.5::10.0.0.1:255.255.255.0:h:eth0:none:9000:aa:bb:cc:dd:ee:ff');
  assert.deepEqual(p.mode === 'static' && [p.mtu, p.mac, p.dns], [9000, 'aa:bb:cc:dd:ee:ff', []]);
});

test('full form with dhcp autoconf is DHCP on that device with that hostname', () => {
  assert.deepEqual(parseIpParam(':::::eth3:dhcp'), { mode: 'dhcp', iface: 'eth3', hostname: undefined, mtu: undefined, mac: undefined });
  assert.deepEqual(parseIpParam('::::web1:eth0:dhcp'), { mode: 'dhcp', iface: 'eth0', hostname: 'web1', mtu: undefined, mac: undefined });
  assert.deepEqual(parseIpParam('::::::'), { mode: 'dhcp', iface: undefined, hostname: undefined, mtu: undefined, mac: undefined });
  assert.deepEqual(parseIpParam('::::::off'), { mode: 'off' });
});

const bad: [string, RegExp][] = [
  ['10.0.0.300::10.0.0.1:255.255.255.0::eth0:off', /client address '10\.0\.0\.300'/],
  ['10.0.0.5::10.0.0.1:255.0.255.0::eth0:off', /netmask '255\.0\.255\.0' is not contiguous/],
  ['10.0.0.5::10.0.0.1:33::eth0:off', /netmask '33'/],
  ['10.0.0.5/40', /prefix length '\/40'/],
  ['10.0.0.5::gw:24::eth0:off', /gateway 'gw'/],
  ['10.0.0.5::10.0.0.1:24::eth0:rarp', /autoconf 'rarp' is not supported/],
  ['10.0.0.5::10.0.0.1:24::eth0:maybe', /autoconf 'maybe' is not one of/],
  ['[2001:db8::5]::[2001:db8::1]:64::eth0:none', /IPv6/],
  ['dhcp6', /not supported/],
  ['eth0:auto6', /not supported/],
  ['eth0:dhcp:abc', /MTU 'abc'/],
  ['eth0:dhcp:1500:zz:bb:cc:dd:ee:ff', /MAC/],
  ['10.0.0.5::10.0.0.1:24::averyveryverylongname0:off', /device 'averyveryverylongname0'/],
  ['eth0:off', /gives no address/],
];
for (const [value, why] of bad) {
  test(`ip=${value} is refused with a message naming the field`, () => {
    assert.throws(() => parseIpParam(value), (e: unknown) =>
      e instanceof BootyError && e.stage === 'config' && e.code === 'bad-ip-param' && why.test(e.message) && e.message.startsWith(`ip=${value}: `));
  });
}

test('BOOTIF: PXELINUX form, plain MAC forms, and refusals', () => {
  assert.equal(parseBootif('01-52-54-00-AB-CD-EF'), '52:54:00:ab:cd:ef');
  assert.equal(parseBootif('52:54:00:ab:cd:ef'), '52:54:00:ab:cd:ef');
  assert.equal(parseBootif('52-54-00-ab-cd-ef'), '52:54:00:ab:cd:ef');
  for (const v of ['06-52-54-00-ab-cd-ef', '52:54:00:ab:cd', 'xx-52-54-00-ab-cd-ef', '', '01-52-54-00-ab-cd-ef-00']) {
    assert.throws(() => parseBootif(v), (e: unknown) => e instanceof BootyError && e.code === 'bad-bootif', v);
  }
});
