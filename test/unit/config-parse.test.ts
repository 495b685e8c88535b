import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseAction, toBootyJson, toBootyObject } from '../../src/config/parse.ts';
import { BootyError } from '../../src/util/errors.ts';
import type { Action } from '../../src/config/action.ts';

const common = { after: 'reboot', onError: 'shell', wipeOnError: false, dryRun: false } as const;
const bootyCommon = { after: 'reboot', onError: 'reboot', wipeOnError: false, dryRun: false } as const;

// [name, input, expected normalized action]
const valid: [string, unknown, Action][] = [
  ['BOOTy example from the compat file',
    { action: 'writeImage', compressed: true, sourceImage: 'http://10.0.0.1:3000/images/ubuntu.img.gz', destinationDevice: '/dev/sda', growPartition: 1, lvmRootName: '/dev/ubuntu-vg/root', dropToShell: false, wipeDevice: false },
    { action: 'deploy', image: 'http://10.0.0.1:3000/images/ubuntu.img.gz', disk: '/dev/sda', format: 'gzip', grow: { partition: 1, lvmRoot: '/dev/ubuntu-vg/root' }, ...bootyCommon }],
  ['BOOTy writeImage minimal: growPartition defaults to 1, format auto',
    { action: 'writeImage', sourceImage: 'https://h/x.img' },
    { action: 'deploy', image: 'https://h/x.img', format: 'auto', grow: { partition: 1 }, ...bootyCommon }],
  ['BOOTy growPartition 0 = no growing; network; dropToShell; wipeDevice; dryRun; growDisk ignored',
    { action: 'writeImage', sourceImage: 'http://h/x', destinationDevice: '/dev/nvme0n1', growPartition: 0, address: '172.16.1.126/24', gateway: '172.16.1.1', nameserver: '8.8.8.8', dropToShell: true, wipeDevice: true, dryRun: true, growDisk: true, compressed: false },
    { action: 'deploy', image: 'http://h/x', disk: '/dev/nvme0n1', format: 'auto', grow: false, post: { network: { address: '172.16.1.126/24', gateway: '172.16.1.1', nameservers: ['8.8.8.8'] } }, after: 'shell', onError: 'shell', wipeOnError: true, dryRun: true }],
  ['BOOTy readImage with the real misspelt field',
    { action: 'readImage', sourceDevice: '/dev/sda', desintationAddress: 'http://h:3000/image', compressed: true },
    { action: 'capture', disk: '/dev/sda', upload: 'http://h:3000/image', format: 'gzip', protocol: 'multipart', ...bootyCommon }],
  ['BOOTy readImage with the correct spelling as alias, uncompressed = raw',
    { action: 'readImage', destinationAddress: 'http://h/image' },
    { action: 'capture', upload: 'http://h/image', format: 'raw', protocol: 'multipart', ...bootyCommon }],
  ['booty deploy minimal gets defaults',
    { action: 'deploy', image: 'http://h/a.img.zst' },
    { action: 'deploy', image: 'http://h/a.img.zst', format: 'auto', grow: false, ...common }],
  ['booty deploy full',
    { action: 'deploy', image: 'http://[fd00::1]:8080/a', disk: '/dev/disk/by-id/wwn-0x5000c500a1b2c3d4', sha256: 'AB'.repeat(32), format: 'zstd', imageSize: 8589934592, grow: { partition: 'last', lvmRoot: '/dev/vg0/root' }, post: { hostname: 'node-1.rack2', network: { address: '10.1.2.3/16', gateway: '10.1.0.1', nameservers: ['10.1.0.2', 'fd00::53'], interface: 'eno1' }, files: { '/etc/motd': 'hi\n' } }, after: 'poweroff', onError: 'reboot', wipeOnError: true, dryRun: false },
    { action: 'deploy', image: 'http://[fd00::1]:8080/a', disk: '/dev/disk/by-id/wwn-0x5000c500a1b2c3d4', sha256: 'ab'.repeat(32), format: 'zstd', imageSize: 8589934592, grow: { partition: 'last', lvmRoot: '/dev/vg0/root' }, post: { hostname: 'node-1.rack2', network: { address: '10.1.2.3/16', gateway: '10.1.0.1', nameservers: ['10.1.0.2', 'fd00::53'], interface: 'eno1' }, files: { '/etc/motd': 'hi\n' } }, after: 'poweroff', onError: 'reboot', wipeOnError: true, dryRun: false }],
  ['booty deploy grow: true means the last partition',
    { action: 'deploy', image: 'http://h/a', grow: true },
    { action: 'deploy', image: 'http://h/a', format: 'auto', grow: { partition: 'last' }, ...common }],
  ['booty capture defaults',
    { action: 'capture', upload: 'http://h/images/x.img.gz' },
    { action: 'capture', upload: 'http://h/images/x.img.gz', format: 'gzip', protocol: 'put', ...common }],
  ['booty capture zstd level 19',
    { action: 'capture', upload: 'http://h/u', disk: '/dev/vdb', format: 'zstd', level: 19, protocol: 'multipart' },
    { action: 'capture', upload: 'http://h/u', disk: '/dev/vdb', format: 'zstd', level: 19, protocol: 'multipart', ...common }],
  ['wipe', { action: 'wipe', disk: '/dev/sdb' }, { action: 'wipe', disk: '/dev/sdb', ...common }],
  ['shell', { action: 'shell' }, { action: 'shell', ...common }],
  ['none with after poweroff', { action: 'none', after: 'poweroff' }, { action: 'none', ...common, after: 'poweroff' }],
  ['combined form: booty wins', { action: 'writeImage', sourceImage: 'http://h/old', booty: { action: 'deploy', image: 'http://h/new' } },
    { action: 'deploy', image: 'http://h/new', format: 'auto', grow: false, ...common }],
  ['JSON text', '{"action":"shell","after":"shell"}', { action: 'shell', ...common, after: 'shell' }],
];

// [name, input, field the message must name, words it must contain]
const invalid: [string, unknown, string, string][] = [
  ['device not under /dev', { action: 'writeImage', sourceImage: 'http://h/a', destinationDevice: 'sda' }, 'destinationDevice', 'absolute /dev path'],
  ['device with ..', { action: 'deploy', image: 'http://h/a', disk: '/dev/../etc/passwd' }, 'disk', '/dev path'],
  ['relative URL', { action: 'deploy', image: 'images/a.img' }, 'image', 'http'],
  ['file URL', { action: 'writeImage', sourceImage: 'file:///etc/shadow' }, 'sourceImage', 'http'],
  ['ftp URL', { action: 'capture', upload: 'ftp://h/a' }, 'upload', 'http'],
  ['javascript URL', { action: 'deploy', image: 'javascript:alert(1)' }, 'image', 'http'],
  ['URL without host', { action: 'deploy', image: 'http:///a' }, 'image', 'http'],
  ['URL with spaces', { action: 'deploy', image: 'http://h/a b' }, 'image', 'http'],
  ['URL with leading space', { action: 'deploy', image: ' http://h/a' }, 'image', 'http'],
  ['misspelt field rejected in booty form', { action: 'deploy', image: 'http://h/a', imgae: 1 }, 'imgae', 'not a known field'],
  ['unknown field in BOOTy form', { action: 'writeImage', sourceImage: 'http://h/a', sourceImages: 'x' }, 'sourceImages', 'not a known field'],
  ['unknown action', { action: 'flashBios' }, 'action', 'one of'],
  ['missing action', { image: 'http://h/a' }, 'action', 'one of'],
  ['action of wrong type', { action: 7 }, 'action', 'one of'],
  ['missing image', { action: 'deploy' }, 'image', 'required'],
  ['missing sourceImage', { action: 'writeImage' }, 'sourceImage', 'required'],
  ['missing desintationAddress', { action: 'readImage' }, 'desintationAddress', 'required'],
  ['compressed as string', { action: 'writeImage', sourceImage: 'http://h/a', compressed: 'yes' }, 'compressed', 'true or false'],
  ['growPartition negative', { action: 'writeImage', sourceImage: 'http://h/a', growPartition: -1 }, 'growPartition', 'partition number'],
  ['growPartition fractional', { action: 'writeImage', sourceImage: 'http://h/a', growPartition: 1.5 }, 'growPartition', 'partition number'],
  ['bad CIDR', { action: 'writeImage', sourceImage: 'http://h/a', address: '10.0.0.1/33' }, 'address', 'CIDR'],
  ['bad gateway', { action: 'writeImage', sourceImage: 'http://h/a', gateway: '10.0.0.256' }, 'gateway', 'IP'],
  ['contradicting spellings', { action: 'readImage', desintationAddress: 'http://a/x', destinationAddress: 'http://b/x' }, 'destinationAddress', 'contradicts'],
  ['sha256 too short', { action: 'deploy', image: 'http://h/a', sha256: 'abc' }, 'sha256', 'sha256'],
  ['format unknown', { action: 'deploy', image: 'http://h/a', format: 'bzip2' }, 'format', 'one of'],
  ['imageSize negative', { action: 'deploy', image: 'http://h/a', imageSize: -5 }, 'imageSize', 'non-negative'],
  ['grow partition 0', { action: 'deploy', image: 'http://h/a', grow: { partition: 0 } }, 'grow.partition', 'partition number'],
  ['grow as string', { action: 'deploy', image: 'http://h/a', grow: 'yes' }, 'grow', 'false, true'],
  ['grow without partition', { action: 'deploy', image: 'http://h/a', grow: { lvmRoot: '/dev/vg/root' } }, 'grow.partition', 'required'],
  ['nameserver list entry', { action: 'deploy', image: 'http://h/a', post: { network: { nameservers: ['1.1.1.1', 'dns'] } } }, 'post.network.nameservers[1]', 'IP'],
  ['file path relative', { action: 'deploy', image: 'http://h/a', post: { files: { 'etc/x': '' } } }, 'post.files["etc/x"]', 'absolute path'],
  ['hostname with underscore', { action: 'deploy', image: 'http://h/a', post: { hostname: 'a_b' } }, 'post.hostname', 'hostname'],
  ['after unknown', { action: 'shell', after: 'halt' }, 'after', 'one of'],
  ['wipeOnError as number', { action: 'wipe', wipeOnError: 1 }, 'wipeOnError', 'true or false'],
  ['zstd level on raw', { action: 'capture', upload: 'http://h/a', format: 'raw', level: 3 }, 'level', 'absent'],
  ['gzip level 12', { action: 'capture', upload: 'http://h/a', level: 12 }, 'level', 'gzip level'],
  ['protocol unknown', { action: 'capture', upload: 'http://h/a', protocol: 'ftp' }, 'protocol', 'one of'],
  ['shell with a disk', { action: 'shell', disk: '/dev/sda' }, 'disk', 'not a known field'],
  ['combined form with broken booty part', { action: 'writeImage', booty: { action: 'deploy', image: 'ftp://x' } }, 'booty.image', 'http'],
  ['combined form with booty not an object', { action: 'writeImage', booty: 'deploy' }, 'booty', 'object'],
  ['overlong URL', { action: 'deploy', image: 'http://h/' + 'a'.repeat(5000) }, 'image', 'too long'],
];

describe('parseAction: valid inputs', () => {
  for (const [name, input, expected] of valid) {
    it(name, () => {
      assert.deepStrictEqual(parseAction(input), expected);
    });
  }
});

describe('parseAction: refused inputs name the field', () => {
  for (const [name, input, field, words] of invalid) {
    it(name, () => {
      assert.throws(() => parseAction(input), (e: unknown) => {
        assert.ok(e instanceof BootyError, `not a BootyError: ${String(e)}`);
        assert.equal(e.stage, 'config');
        assert.equal(e.diskState, 'untouched');
        assert.ok(e.message.includes(`"${field}"`), `message does not name field "${field}": ${e.message}`);
        assert.ok(e.message.toLowerCase().includes(words.toLowerCase()), `message lacks "${words}": ${e.message}`);
        return true;
      });
    });
  }
  it('the example message reads as documented', () => {
    assert.throws(() => parseAction({ action: 'writeImage', sourceImage: 'http://h/a', destinationDevice: 'sda' }),
      (e: BootyError) => e.describe() === 'booty: config: field "destinationDevice" must be an absolute /dev path (e.g. /dev/sda), got "sda"; the disk was not written');
  });
  for (const bad of [null, 42, 'not json', '[1,2]', [], true]) {
    it(`non-object ${JSON.stringify(bad)} is refused`, () => {
      assert.throws(() => parseAction(bad), (e: unknown) => e instanceof BootyError && e.stage === 'config' && /JSON/.test(e.message));
    });
  }
});

describe('toBootyJson', () => {
  for (const [name, , action] of valid) {
    it(`round-trips: ${name}`, () => {
      assert.deepStrictEqual(parseAction(toBootyJson(action)), action);
    });
  }
  it('carries the fields an unmodified BOOTy agent reads for a deploy', () => {
    const a = parseAction({ action: 'deploy', image: 'http://h/u.img.gz', disk: '/dev/sda', grow: { partition: 2, lvmRoot: '/dev/vg/root' }, post: { network: { address: '10.0.0.5/24', gateway: '10.0.0.1', nameservers: ['10.0.0.2'] } }, after: 'shell', wipeOnError: true });
    const o = toBootyObject(a);
    assert.deepStrictEqual({ ...o, booty: undefined }, {
      action: 'writeImage', sourceImage: 'http://h/u.img.gz', destinationDevice: '/dev/sda', compressed: true, growPartition: 2,
      lvmRootName: '/dev/vg/root', address: '10.0.0.5/24', gateway: '10.0.0.1', nameserver: '10.0.0.2', dropToShell: true,
      wipeDevice: true, dryRun: false, booty: undefined,
    });
  });
  it('carries the misspelt upload field for a capture', () => {
    const o = toBootyObject(parseAction({ action: 'capture', upload: 'http://h/image', disk: '/dev/vda', format: 'raw' }));
    assert.equal(o.action, 'readImage');
    assert.equal(o.desintationAddress, 'http://h/image');
    assert.equal(o.sourceDevice, '/dev/vda');
    assert.equal(o.compressed, false);
  });
  it('tells a BOOTy agent "compressed" only for gzip (or an auto image named .gz)', () => {
    assert.equal(toBootyObject(parseAction({ action: 'deploy', image: 'http://h/a.img.zst' })).compressed, false);
    assert.equal(toBootyObject(parseAction({ action: 'deploy', image: 'http://h/a', format: 'gzip' })).compressed, true);
  });
});
