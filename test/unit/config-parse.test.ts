import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseAction, summarizeAction, toBootyJson, toBootyObject } from '../../src/config/parse.ts';
import { parseSize } from '../../src/config/disk-size.ts';
import { BootyError } from '../../src/util/errors.ts';
import type { Action } from '../../src/config/action.ts';

const common = { after: 'reboot', onError: 'shell', wipeOnError: false, dryRun: false } as const;
const bootyCommon = { after: 'reboot', onError: 'reboot', wipeOnError: false, dryRun: false } as const;

// [name, input, expected normalized action]
const valid: [string, unknown, Action][] = [
  ['deploy with bootOrder (UEFI boot entry placement)',
    { action: 'deploy', image: 'http://h/u.img', bootOrder: 'disk-first', grow: false },
    { action: 'deploy', image: 'http://h/u.img', format: 'auto', bootOrder: 'disk-first', grow: false, ...common }],
  ['deploy with a trial boot: confirmWithin and onTrialFailure default to 900 s and redeploy',
    { action: 'deploy', image: 'http://h/u.img', bootOrder: 'trial' },
    { action: 'deploy', image: 'http://h/u.img', format: 'auto', bootOrder: 'trial', confirmWithin: 900, onTrialFailure: 'redeploy', grow: false, ...common }],
  ['deploy with a trial boot that captures the disk when it fails',
    { action: 'deploy', image: 'http://h/u.img', bootOrder: 'trial', confirmWithin: 60, onTrialFailure: 'capture', trialCaptureUpload: 'http://h/images/forensics.img.zst' },
    { action: 'deploy', image: 'http://h/u.img', format: 'auto', bootOrder: 'trial', confirmWithin: 60, onTrialFailure: 'capture', trialCaptureUpload: 'http://h/images/forensics.img.zst', grow: false, ...common }],
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
  ['wipe', { action: 'wipe', disk: '/dev/sdb' }, { action: 'wipe', disk: '/dev/sdb', method: 'quick', fallback: 'none', ...common }],
  ['wipe secure with fallback zero', { action: 'wipe', disk: '/dev/nvme0n1', method: 'secure', fallback: 'zero' },
    { action: 'wipe', disk: '/dev/nvme0n1', method: 'secure', fallback: 'zero', ...common }],
  ['inspect', { action: 'inspect', pollSeconds: 2 }, { action: 'inspect', pollSeconds: 2, ...common }],
  ['deploy with a transport hint', { action: 'deploy', image: 'http://h/a', diskHints: { transport: 'nvme' } },
    { action: 'deploy', image: 'http://h/a', diskHints: { transport: 'nvme' }, format: 'auto', grow: false, ...common }],
  ['shell', { action: 'shell' }, { action: 'shell', ...common }],
  ['none with after poweroff', { action: 'none', after: 'poweroff' }, { action: 'none', ...common, after: 'poweroff' }],
  ['combined form: booty wins', { action: 'writeImage', sourceImage: 'http://h/old', booty: { action: 'deploy', image: 'http://h/new' } },
    { action: 'deploy', image: 'http://h/new', format: 'auto', grow: false, ...common }],
  ['JSON text', '{"action":"shell","after":"shell"}', { action: 'shell', ...common, after: 'shell' }],
  ['deploy with every disk hint: sizes become bytes ("G" binary, "GB" decimal)',
    { action: 'deploy', image: 'http://h/a', diskHints: { name: '/dev/sda', minSize: '100G', maxSize: '2TB', serial: 'S4EVNF0M', model: 'Samsung', vendor: 'ATA', wwn: '0x5000c500a1b2c3d4', rotational: false, hctl: '0:0:0:0', byPath: 'pci-0000:00:1f.2-ata-1.0' } },
    { action: 'deploy', image: 'http://h/a', diskHints: { name: '/dev/sda', minSize: 100 * 2 ** 30, maxSize: 2e12, serial: 'S4EVNF0M', model: 'Samsung', vendor: 'ATA', wwn: '0x5000c500a1b2c3d4', rotational: false, hctl: '0:0:0:0', byPath: 'pci-0000:00:1f.2-ata-1.0' }, format: 'auto', grow: false, ...common }],
  ['capture with size hints in bytes and with units',
    { action: 'capture', upload: 'http://h/u', diskHints: { minSize: 4096, maxSize: '1.5 TiB' } },
    { action: 'capture', upload: 'http://h/u', diskHints: { minSize: 4096, maxSize: 1.5 * 2 ** 40 }, format: 'gzip', protocol: 'put', ...common }],
  ['wipe with a kernel name hint and lower-case units', { action: 'wipe', diskHints: { name: 'nvme0n1', minSize: '512m', maxSize: '1tb' } },
    { action: 'wipe', diskHints: { name: 'nvme0n1', minSize: 512 * 2 ** 20, maxSize: 1e12 }, method: 'quick', fallback: 'none', ...common }],
  ['combined form carries the hints', { action: 'writeImage', sourceImage: 'http://h/a', booty: { action: 'deploy', image: 'http://h/a', diskHints: { rotational: true } } },
    { action: 'deploy', image: 'http://h/a', diskHints: { rotational: true }, format: 'auto', grow: false, ...common }],
];

// [name, input, field the message must name, words it must contain]
const invalid: [string, unknown, string, string][] = [
  ['unknown bootOrder', { action: 'deploy', image: 'http://h/a', bootOrder: 'trial-later' }, 'bootOrder', '"network-first", "disk-first", "trial"'],
  ['confirmWithin without a trial boot', { action: 'deploy', image: 'http://h/a', confirmWithin: 60 }, 'confirmWithin', 'needs "bootOrder": "trial"'],
  ['onTrialFailure with disk-first', { action: 'deploy', image: 'http://h/a', bootOrder: 'disk-first', onTrialFailure: 'shell' }, 'onTrialFailure', 'needs "bootOrder": "trial"'],
  ['confirmWithin too short', { action: 'deploy', image: 'http://h/a', bootOrder: 'trial', confirmWithin: 5 }, 'confirmWithin', 'from 10 to 86400'],
  ['onTrialFailure unknown', { action: 'deploy', image: 'http://h/a', bootOrder: 'trial', onTrialFailure: 'reboot' }, 'onTrialFailure', '"redeploy", "capture", "shell"'],
  ['capture on trial failure without its upload', { action: 'deploy', image: 'http://h/a', bootOrder: 'trial', onTrialFailure: 'capture' }, 'trialCaptureUpload', 'required when "onTrialFailure" is "capture"'],
  ['a capture upload for a trial that redeploys', { action: 'deploy', image: 'http://h/a', bootOrder: 'trial', trialCaptureUpload: 'http://h/images/x.img.gz' }, 'trialCaptureUpload', 'only used when'],
  ['trial boot on a rootfs deploy', { action: 'deploy-rootfs', rootfs: 'http://h/a.tar', bootOrder: 'trial' }, 'bootOrder', '"network-first", "disk-first"'],
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
  ['format unknown', { action: 'deploy', image: 'http://h/a', format: 'lz4' }, 'format', 'one of'],
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
  // the levels capture() takes: gzip 1-9, zstd 1-19 (refused before the agent reads a byte)
  ['gzip level 0', { action: 'capture', upload: 'http://h/a', level: 0 }, 'level', 'gzip 1-9'],
  ['zstd level 20', { action: 'capture', upload: 'http://h/a', format: 'zstd', level: 20 }, 'level', 'zstd 1-19'],
  ['protocol unknown', { action: 'capture', upload: 'http://h/a', protocol: 'ftp' }, 'protocol', 'one of'],
  ['shell with a disk', { action: 'shell', disk: '/dev/sda' }, 'disk', 'not a known field'],
  ['combined form with broken booty part', { action: 'writeImage', booty: { action: 'deploy', image: 'ftp://x' } }, 'booty.image', 'http'],
  ['combined form with booty not an object', { action: 'writeImage', booty: 'deploy' }, 'booty', 'object'],
  ['overlong URL', { action: 'deploy', image: 'http://h/' + 'a'.repeat(5000) }, 'image', 'too long'],
  ['unknown disk hint', { action: 'deploy', image: 'http://h/a', diskHints: { serail: 'X' } }, 'diskHints.serail', 'not a known field (known fields: name, minSize, maxSize, serial, model, vendor, wwn, rotational, hctl, byPath, transport)'],
  ['Ironic spelling of a hint', { action: 'wipe', diskHints: { by_path: 'pci-0000:00:1f.2-ata-1' } }, 'diskHints.by_path', 'not a known field'],
  ['empty disk hints', { action: 'wipe', diskHints: {} }, 'diskHints', 'at least one disk hint'],
  ['disk hints not an object', { action: 'wipe', diskHints: 'sda' }, 'diskHints', 'at least one disk hint'],
  ['disk and disk hints together', { action: 'deploy', image: 'http://h/a', disk: '/dev/sda', diskHints: { serial: 'X' } }, 'diskHints', 'cannot be combined with "disk"'],
  ['size without a number', { action: 'wipe', diskHints: { minSize: 'big' } }, 'diskHints.minSize', 'a size'],
  ['size with an unknown unit', { action: 'wipe', diskHints: { minSize: '100Q' } }, 'diskHints.minSize', 'a size'],
  ['negative size', { action: 'capture', upload: 'http://h/u', diskHints: { maxSize: -1 } }, 'diskHints.maxSize', 'a size'],
  ['fractional byte count', { action: 'wipe', diskHints: { maxSize: 1.5 } }, 'diskHints.maxSize', 'a size'],
  ['size beyond what a number holds', { action: 'wipe', diskHints: { maxSize: '9000P' } }, 'diskHints.maxSize', 'a size'],
  ['minSize above maxSize', { action: 'wipe', diskHints: { minSize: '2T', maxSize: '1T' } }, 'diskHints.minSize', 'must not be above "diskHints.maxSize"'],
  ['rotational as a string', { action: 'wipe', diskHints: { rotational: 'yes' } }, 'diskHints.rotational', 'true (spinning disks) or false'],
  ['empty serial', { action: 'wipe', diskHints: { serial: '' } }, 'diskHints.serial', 'serial number'],
  ['blank model (would match every disk)', { action: 'wipe', diskHints: { model: '   ' } }, 'diskHints.model', 'model name'],
  ['serial with a newline', { action: 'wipe', diskHints: { serial: 'a\nb' } }, 'diskHints.serial', 'no control characters'],
  ['hctl not four numbers', { action: 'wipe', diskHints: { hctl: '0:0:0' } }, 'diskHints.hctl', 'host:channel:target:lun'],
  ['name with a path', { action: 'wipe', diskHints: { name: '/dev/disk/by-id/x' } }, 'diskHints.name', 'kernel disk name'],
  ['byPath with spaces', { action: 'wipe', diskHints: { byPath: 'pci 0' } }, 'diskHints.byPath', 'by-path name'],
  ['hints on a shell action', { action: 'shell', diskHints: { serial: 'X' } }, 'diskHints', 'not a known field'],
  ['hints inside the combined form', { action: 'writeImage', booty: { action: 'deploy', image: 'http://h/a', diskHints: { wwn: 5 } } }, 'booty.diskHints.wwn', 'World Wide Name'],
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

describe('disk hints in listings and on the wire', () => {
  it('summarizes the hints where a disk would be', () => {
    assert.equal(summarizeAction(parseAction({ action: 'deploy', image: 'http://h/a', diskHints: { serial: 'S4X', minSize: '100G' } })),
      'deploy http://h/a -> (disk with minSize=100.0 GiB (107374182400 bytes), serial="S4X")');
    assert.equal(summarizeAction(parseAction({ action: 'wipe', diskHints: { rotational: false } })), 'wipe (disk with rotational=false) (quick)');
    assert.equal(summarizeAction(parseAction({ action: 'capture', upload: 'http://h/u' })), 'capture (first disk) -> http://h/u (gzip)');
  });
  it('an unmodified BOOTy agent gets no destinationDevice (it picks its own); booty gets the hints', () => {
    const o = toBootyObject(parseAction({ action: 'deploy', image: 'http://h/a', diskHints: { wwn: '0x5000c500a1b2c3d4' } }));
    assert.equal('destinationDevice' in o, false);
    assert.deepEqual((o.booty as { diskHints: unknown }).diskHints, { wwn: '0x5000c500a1b2c3d4' });
  });
});

describe('parseSize', () => {
  it('reads bytes and units, binary for G/GiB, decimal for GB', () => {
    const cases: [unknown, number | undefined][] = [
      [0, 0], [4096, 4096], ['4096', 4096], ['4096B', 4096], ['1K', 1024], ['1KiB', 1024], ['1KB', 1000], ['100G', 100 * 2 ** 30],
      ['100 GiB', 100 * 2 ** 30], ['100GB', 1e11], ['1.5T', 1.5 * 2 ** 40], ['2tb', 2e12], ['1e3', undefined], ['-1', undefined], ['', undefined],
      ['G', undefined], ['1.5', undefined], [1.5, undefined], [-1, undefined], [null, undefined], ['10 Gb/s', undefined], ['1E', undefined], ['8P', undefined], ['7P', 7 * 2 ** 50],
    ];
    for (const [input, bytes] of cases) assert.equal(parseSize(input), bytes, JSON.stringify(input));
  });
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
    assert.equal(toBootyObject(parseAction({ action: 'deploy', image: 'http://h/a.img', format: 'raw' })).compressed, false);
    assert.equal(toBootyObject(parseAction({ action: 'deploy', image: 'http://h/a', format: 'gzip' })).compressed, true);
  });
  // an old agent must not write a compressed image raw, nor see a field that fails booty's own
  // validation of the combined form (sourceImage must be http(s))
  for (const a of [
    { action: 'deploy', image: 'oci://registry.example:5000/os/debian:12' },
    { action: 'deploy', image: 'oci+http://10.0.0.1:5000/os/debian@sha256:' + 'a'.repeat(64) },
    { action: 'deploy', image: 'http://h/a.img.zst' },
    { action: 'deploy', image: 'http://h/a.raw.xz' },
    { action: 'deploy', image: 'http://h/a', format: 'bzip2' },
    { action: 'deploy', image: 'http://h/a', format: 'qcow2' },
    { action: 'deploy', image: 'http://h/debian.qcow2' },
    { action: 'capture', upload: 'http://h/images/root.tar.zst', format: 'tar.zst' },
    { action: 'capture', upload: 'http://h/images/d.img.zst', format: 'zstd' },
  ]) {
    it(`gives BOOTy no action it would get wrong, and round-trips: ${JSON.stringify(a)}`, () => {
      const action = parseAction(a);
      const o = toBootyObject(action);
      assert.equal(o.action, a.action);
      assert.equal(o.sourceImage, undefined);
      assert.equal(o.desintationAddress, undefined);
      assert.deepStrictEqual(parseAction(toBootyJson(action)), action);
    });
  }
});
