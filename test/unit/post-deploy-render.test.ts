import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  disableIfupdownStanzas, parseCidr, planPostDeploy, renderHosts, renderIfupdown, renderNetplan, renderNetworkd,
  renderNmKeyfile, validHostname, type RootFacts,
} from '../../src/disk/post-deploy-render.ts';
import { isBootyError } from '../../src/util/errors.ts';

const none: RootFacts = { netplan: false, networkd: false, ifupdown: false, networkManager: false, resolved: false, resolvConf: 'absent' };
const debian: RootFacts = {
  ...none, networkd: true, ifupdown: true, resolved: false, resolvConf: 'file', hosts: '127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n\n::1\tlocalhost ip6-localhost ip6-loopback\n',
  interfaces: 'source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\nallow-hotplug ens3\niface ens3 inet dhcp\n',
};
const ubuntu: RootFacts = { ...none, netplan: true, networkd: true, resolved: true, resolvConf: 'symlink', hosts: '127.0.0.1 localhost\n' };
const boothNet = { address: '172.16.1.126/24', gateway: '172.16.1.1', nameservers: ['172.16.1.2', '1.1.1.1'] };
const mac = 'AA-BB-CC-00-11-22';

const paths = (p: { writes: { path: string }[] }) => p.writes.map((w) => w.path);
const file = (p: { writes: { path: string; content: string }[] }, name: string) => {
  const w = p.writes.find((x) => x.path === name);
  assert.ok(w, `${name} written`);
  return w.content;
};

describe('renderers', () => {
  it('hosts: replaces the 127.0.1.1 line, keeps the rest, adds the short name', () => {
    const out = renderHosts(debian.hosts, 'web1.example.org');
    assert.equal(out, '127.0.0.1\tlocalhost\n127.0.1.1\tweb1.example.org web1\n\n::1\tlocalhost ip6-localhost ip6-loopback\n');
    assert.match(renderHosts(undefined, 'db'), /^127\.0\.0\.1\tlocalhost\n127\.0\.1\.1\tdb\n/);
    assert.equal(renderHosts('10.0.0.1 gw\n', 'x'), '127.0.1.1\tx\n10.0.0.1 gw\n');
  });

  it('systemd-networkd: matches by MAC, static address, gateway, DNS', () => {
    const out = renderNetworkd({ mac: 'aa:bb:cc:00:11:22' }, { address: parseCidr('10.1.2.3/16'), gateway: '10.1.0.1', dns: ['10.1.0.2'] });
    assert.equal(out.split('\n').filter((l) => !l.startsWith('#')).join('\n'),
      '[Match]\nMACAddress=aa:bb:cc:00:11:22\n\n[Network]\nAddress=10.1.2.3/16\nGateway=10.1.0.1\nDNS=10.1.0.2\n');
  });

  it('netplan: a match block, no DHCP, a default route every netplan version reads', () => {
    const out = renderNetplan({ mac: 'aa:bb:cc:00:11:22' }, { address: parseCidr('10.1.2.3/16'), gateway: '10.1.0.1', dns: ['10.1.0.2', '9.9.9.9'] });
    assert.equal(out.replace(/^#.*\n/, ''), [
      'network:', '  version: 2', '  ethernets:', '    booty0:', '      match:', '        macaddress: "aa:bb:cc:00:11:22"',
      '      dhcp4: false', '      dhcp6: false', '      addresses:', '        - "10.1.2.3/16"',
      '      routes:', '        - to: "0.0.0.0/0"', '          via: "10.1.0.1"',
      '      nameservers:', '        addresses:', '          - "10.1.0.2"', '          - "9.9.9.9"', '',
    ].join('\n'));
    const byName = renderNetplan({ name: 'ens3' }, { address: parseCidr('2001:db8::5/64'), gateway: '2001:db8::1', dns: [] });
    assert.match(byName, /\n {4}ens3:\n {6}dhcp4: false/);
    assert.match(byName, /to: "::\/0"/);
  });

  it('ifupdown: static stanza with CIDR address and dns-nameservers', () => {
    assert.equal(renderIfupdown('ens3', { address: parseCidr('10.1.2.3/16'), gateway: '10.1.0.1', dns: ['10.1.0.2'] }).replace(/^#.*\n/, ''),
      'auto ens3\niface ens3 inet static\n    address 10.1.2.3/16\n    gateway 10.1.0.1\n    dns-nameservers 10.1.0.2\n');
  });

  it('ifupdown: disables the existing stanza for the NIC and keeps the others', () => {
    const out = disableIfupdownStanzas(
      'auto lo ens3\niface lo inet loopback\n\nallow-hotplug ens3\niface ens3 inet dhcp\n    hostname x\n\niface ens4 inet dhcp\n', 'ens3');
    assert.equal(out, [
      '# auto lo ens3   # disabled by booty', 'auto lo', 'iface lo inet loopback', '',
      '# allow-hotplug ens3   # disabled by booty', '# iface ens3 inet dhcp   # disabled by booty', '#     hostname x   # disabled by booty', '',
      'iface ens4 inet dhcp', '', 'source /etc/network/interfaces.d/*', '',
    ].join('\n'));
    assert.doesNotMatch(disableIfupdownStanzas('source /etc/network/interfaces.d/*\n', 'eth0'), /\n\nsource/);
  });

  it('NetworkManager keyfile: manual IPv4 with gateway, MAC match', () => {
    const out = renderNmKeyfile({ mac: 'aa:bb:cc:00:11:22' }, { address: parseCidr('10.1.2.3/16'), gateway: '10.1.0.1', dns: ['10.1.0.2'] });
    assert.match(out, /\[ethernet\]\nmac-address=AA:BB:CC:00:11:22\n/);
    assert.match(out, /\[ipv4\]\nmethod=manual\naddress1=10\.1\.2\.3\/16,10\.1\.0\.1\ndns=10\.1\.0\.2;\n/);
    assert.match(out, /\[ipv6\]\nmethod=ignore/);
  });

  it('validates addresses and host names', () => {
    assert.deepEqual(parseCidr('172.16.1.126/24'), { cidr: '172.16.1.126/24', ip: '172.16.1.126', prefix: 24, family: 4 });
    for (const bad of ['172.16.1.126', '172.16.1.300/24', '10.0.0.1/33', 'fe80::1/129', 'host/24']) {
      assert.throws(() => parseCidr(bad), (e: unknown) => isBootyError(e) && e.code === 'post-deploy-invalid', bad);
    }
    assert.ok(validHostname('web-01.example.org'));
    assert.ok(!validHostname('-bad'));
    assert.ok(!validHostname('under_score'));
    assert.ok(!validHostname('a'.repeat(64)));
  });
});

describe('planPostDeploy', () => {
  it('Debian with ifupdown: interfaces.d stanza, old stanza disabled, networkd file, resolv.conf, hostname', () => {
    const p = planPostDeploy({ hostname: 'web1', network: { ...boothNet, interface: 'ens3' } }, debian, { mac, initramfsName: 'eth0' });
    assert.deepEqual(paths(p).sort(), [
      '/etc/hostname', '/etc/hosts', '/etc/network/interfaces', '/etc/network/interfaces.d/booty-ens3',
      '/etc/resolv.conf', '/etc/systemd/network/10-booty.network',
    ]);
    assert.match(file(p, '/etc/network/interfaces.d/booty-ens3'), /iface ens3 inet static\n {4}address 172\.16\.1\.126\/24\n {4}gateway 172\.16\.1\.1\n {4}dns-nameservers 172\.16\.1\.2 1\.1\.1\.1/);
    assert.match(file(p, '/etc/network/interfaces'), /# iface ens3 inet dhcp/);
    assert.match(file(p, '/etc/systemd/network/10-booty.network'), /MACAddress=aa:bb:cc:00:11:22/);
    assert.match(file(p, '/etc/resolv.conf'), /nameserver 172\.16\.1\.2\nnameserver 1\.1\.1\.1\n$/);
    assert.equal(file(p, '/etc/hostname'), 'web1\n');
    assert.deepEqual(p.warnings, []);
  });

  it('Ubuntu with netplan: one netplan file (0600), resolved drop-in, resolv.conf symlink left alone', () => {
    const p = planPostDeploy({ network: boothNet }, ubuntu, { mac });
    assert.deepEqual(paths(p).sort(), ['/etc/netplan/90-booty.yaml', '/etc/systemd/resolved.conf.d/90-booty.conf']);
    assert.equal(p.writes.find((w) => w.path.endsWith('.yaml'))?.mode, 0o600);
    assert.match(file(p, '/etc/systemd/resolved.conf.d/90-booty.conf'), /DNS=172\.16\.1\.2 1\.1\.1\.1/);
  });

  it('ifupdown without a known OS name falls back to the initramfs name and warns', () => {
    const p = planPostDeploy({ network: boothNet }, { ...debian, networkd: false }, { mac, initramfsName: 'eth0' });
    assert.ok(paths(p).includes('/etc/network/interfaces.d/booty-eth0'));
    assert.match(p.warnings.join('\n'), /set network\.interface/);
  });

  it('NetworkManager systems get a keyfile', () => {
    const p = planPostDeploy({ network: boothNet }, { ...none, networkManager: true, resolvConf: 'file' }, { mac });
    assert.deepEqual(paths(p).sort(), ['/etc/NetworkManager/system-connections/booty.nmconnection', '/etc/resolv.conf']);
  });

  it('nameservers alone touch only the resolver, never the NIC', () => {
    const p = planPostDeploy({ network: { nameservers: ['9.9.9.9'], gateway: '10.0.0.1' } }, debian, { mac });
    assert.deepEqual(paths(p), ['/etc/resolv.conf']);
    assert.match(p.warnings.join('\n'), /gateway 10\.0\.0\.1 given without an address/);
  });

  it('files are written as given; relative paths and .. are refused', () => {
    const p = planPostDeploy({ files: { '/etc/motd': 'hello\n', '/root/.ssh/authorized_keys': 'ssh-ed25519 AAAA x\n' } }, none, {});
    assert.deepEqual(p.writes.map((w) => [w.path, w.content]), [['/etc/motd', 'hello\n'], ['/root/.ssh/authorized_keys', 'ssh-ed25519 AAAA x\n']]);
    assert.throws(() => planPostDeploy({ files: { 'etc/motd': 'x' } }, none, {}), /must be absolute/);
    assert.throws(() => planPostDeploy({ files: { '/etc/../../x': 'x' } }, none, {}), /without "\.\."/);
  });

  it('refuses a static address with no way to recognise the NIC, and bad input', () => {
    assert.throws(() => planPostDeploy({ network: boothNet }, debian, {}), /needs the NIC/);
    assert.throws(() => planPostDeploy({ network: { address: '10.0.0.5/24', gateway: 'fe80::1' } }, debian, { mac }), /different IP versions/);
    assert.throws(() => planPostDeploy({ network: { address: '10.0.0.5/24', nameservers: ['dns.example'] } }, debian, { mac }), /nameserver "dns\.example"/);
    assert.throws(() => planPostDeploy({ hostname: 'bad_name' }, debian, {}), /not a valid host name/);
  });
});
