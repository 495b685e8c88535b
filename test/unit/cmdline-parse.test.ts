import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allValues, lastValue, splitCmdline } from '../../src/agent/cmdline.ts';
import { parseBootParams } from '../../src/agent/boot-params.ts';
import { parseDuration } from '../../src/util/duration.ts';

test('splits words, key=value pairs and flags', () => {
  const c = splitCmdline('BOOT_IMAGE=/vmlinuz console=ttyS0,115200 quiet  booty.debug\n');
  assert.deepEqual(c.words, [
    { key: 'BOOT_IMAGE', value: '/vmlinuz' },
    { key: 'console', value: 'ttyS0,115200' },
    { key: 'quiet', value: undefined },
    { key: 'booty.debug', value: undefined },
  ]);
  assert.deepEqual(c.initArgs, []);
});

test('double quotes keep spaces and are removed; an empty value stays empty', () => {
  const c = splitCmdline('a="x y  z" "b=1 2" c= d="" e=f"g h"i');
  assert.equal(lastValue(c, 'a'), 'x y  z');
  assert.equal(lastValue(c, 'b'), '1 2');
  assert.equal(lastValue(c, 'c'), '');
  assert.equal(lastValue(c, 'd'), '');
  assert.equal(lastValue(c, 'e'), 'fg hi');
});

test('the value keeps everything after the first =', () => {
  const c = splitCmdline('MYURL=http://10.0.0.1:3000/x?a=b ip=10.0.0.5::10.0.0.1:255.255.255.0:h:eth0:none');
  assert.equal(lastValue(c, 'MYURL'), 'http://10.0.0.1:3000/x?a=b');
  assert.equal(lastValue(c, 'ip'), '10.0.0.5::10.0.0.1:255.255.255.0:h:eth0:none');
});

test('-- ends the kernel parameters', () => {
  const c = splitCmdline('quiet -- booty.disk=/dev/sdb single');
  assert.deepEqual(c.words, [{ key: 'quiet', value: undefined }]);
  assert.deepEqual(c.initArgs, ['booty.disk=/dev/sdb', 'single']);
});

test('repeated keys: last wins, all are kept in order', () => {
  const c = splitCmdline('ip=dhcp booty.disk=sda ip=eth1:dhcp booty.disk=sdb');
  assert.equal(lastValue(c, 'booty.disk'), 'sdb');
  assert.deepEqual(allValues(c, 'ip'), ['dhcp', 'eth1:dhcp']);
  assert.equal(lastValue(c, 'missing'), undefined);
});

test('an unterminated quote runs to the end of the line', () => {
  const c = splitCmdline('a="b c');
  assert.equal(lastValue(c, 'a'), 'b c');
});

test('durations', () => {
  assert.equal(parseDuration('30'), 30_000);
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('2m'), 120_000);
  assert.equal(parseDuration('1.5'), 1500);
  assert.equal(parseDuration('soon'), undefined);
  assert.equal(parseDuration('-3'), undefined);
});

test('MYURL: booty server, trailing slash removed', () => {
  const p = parseBootParams('console=ttyS0 MYURL=http://10.0.2.2:3000/');
  assert.deepEqual(p.server, { base: 'http://10.0.2.2:3000', style: 'myurl' });
  assert.equal(p.reportBase, 'http://10.0.2.2:3000');
  assert.deepEqual(p.warnings, []);
});

test('BOOTYURL: BOOTy style; MYURL wins when both are set, with a warning', () => {
  assert.deepEqual(parseBootParams('BOOTYURL=http://h:3000/booty').server, { base: 'http://h:3000/booty', style: 'bootyurl' });
  const both = parseBootParams('BOOTYURL=http://a MYURL=http://b');
  assert.deepEqual(both.server, { base: 'http://b', style: 'myurl' });
  assert.match(both.warnings.join('\n'), /both MYURL and BOOTYURL/);
});

test('the environment fills in what the command line lacks', () => {
  const p = parseBootParams('quiet', { BOOTYURL: 'http://env:1', BOOTIF: '01-52-54-00-12-34-56' });
  assert.deepEqual(p.server, { base: 'http://env:1', style: 'bootyurl' });
  assert.equal(p.bootif, '01-52-54-00-12-34-56');
});

test('a bad server URL is a warning, not a crash', () => {
  const p = parseBootParams('MYURL=ftp://x MYURL2=1');
  assert.equal(p.server, undefined);
  assert.match(p.warnings[0], /only http/);
  assert.match(parseBootParams('MYURL=not-a-url').warnings[0], /is not a URL/);
});

test('booty.* options', () => {
  const p = parseBootParams('booty.disk=/dev/nvme0n1 booty.iface=eno1 booty.onerror=reboot booty.debug booty.token=s3cret booty.timeout=2m booty.settle=45 booty.countdown=5 booty.report=http://r:9/ booty.link-timeout=10 booty.dhcp-timeout=90s booty.break=network,run');
  assert.equal(p.disk, '/dev/nvme0n1');
  assert.equal(p.iface, 'eno1');
  assert.equal(p.onError, 'reboot');
  assert.equal(p.debug, true);
  assert.equal(p.token, 's3cret');
  assert.equal(p.fetchTimeoutMs, 120_000);
  assert.equal(p.settleTimeoutMs, 45_000);
  assert.equal(p.countdownS, 5);
  assert.equal(p.reportBase, 'http://r:9');
  assert.equal(p.linkTimeoutMs, 10_000);
  assert.equal(p.dhcpTimeoutMs, 90_000);
  assert.deepEqual([...p.breakAt], ['network', 'run']);
  assert.deepEqual(p.warnings, []);
});

test('defaults', () => {
  const p = parseBootParams('');
  assert.equal(p.server, undefined);
  assert.equal(p.onError, undefined);
  assert.equal(p.debug, false);
  assert.equal(p.fetchTimeoutMs, 0);
  assert.equal(p.settleTimeoutMs, 30_000);
  assert.equal(p.countdownS, 30);
  assert.equal(parseBootParams('booty.debug=0').debug, false);
});

test('bad booty.* values and unknown booty.* keys are warned about and ignored', () => {
  const p = parseBootParams('booty.onerror=shel booty.timeout=later booty.break=never booty.dsik=sda');
  assert.equal(p.onError, undefined);
  assert.equal(p.fetchTimeoutMs, 0);
  assert.equal(p.breakAt.size, 0);
  const w = p.warnings.join('\n');
  assert.match(w, /booty.onerror=shel/);
  assert.match(w, /booty.timeout=later/);
  assert.match(w, /booty.break=never/);
  assert.match(w, /booty.dsik is not a booty parameter/);
});

test('ip= and BOOTIF= are passed on raw; several ip= use the last, with a warning', () => {
  const p = parseBootParams('BOOTIF=01-aa-bb-cc-dd-ee-ff ip=dhcp ip=10.0.0.5::10.0.0.1:24::eth0:none');
  assert.equal(p.bootif, '01-aa-bb-cc-dd-ee-ff');
  assert.equal(p.ip, '10.0.0.5::10.0.0.1:24::eth0:none');
  assert.match(p.warnings.join('\n'), /2 ip= parameters/);
});

test('module parameters, blacklists and extra modules', () => {
  const p = parseBootParams('virtio-net.napi_tx=1 virtio_net.foo mlx5_core.prof_sel=2 sd_mod.x="a b" booty.modules=e1000e,dm-mod modprobe.blacklist=nouveau booty.blacklist=floppy,pcspkr rd.break');
  assert.equal(p.moduleParams.get('virtio_net'), 'napi_tx=1 foo');
  assert.equal(p.moduleParams.get('mlx5_core'), 'prof_sel=2');
  assert.equal(p.moduleParams.get('sd_mod'), 'x="a b"');
  assert.equal(p.moduleParams.has('booty'), false);
  assert.equal(p.moduleParams.has('modprobe'), false);
  assert.deepEqual(p.extraModules, ['e1000e', 'dm_mod']);
  assert.deepEqual(p.blacklist.sort(), ['floppy', 'nouveau', 'pcspkr']);
});
