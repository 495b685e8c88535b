// Fuzz parseAction with generated malformed actions: valid seeds (booty and BOOTy forms) get 1-3
// mutations that each break one known field (wrong type, missing, hostile URL, not a /dev path,
// unknown field, bad enum, bad number, bad nested entry). Every one must be refused with a
// BootyError of stage 'config' whose message names one of the broken fields; nothing may crash.
// Seeded: BOOTY_FUZZ_SEED=<n> replays a run.

import { it } from 'node:test';
import assert from 'node:assert/strict';
import { parseAction } from '../../src/config/parse.ts';
import { BootyError } from '../../src/util/errors.ts';
import { seededRandom } from '../helpers/seeded-random.ts';

const SEED = Number(process.env.BOOTY_FUZZ_SEED ?? 20261122);
const CASES = 1500;

const prng = seededRandom;

type Obj = Record<string, unknown>;
type Kind = 'url' | 'dev' | 'bool' | 'enum' | 'int' | 'cidr' | 'ip' | 'sha' | 'grow' | 'post' | 'string';

interface Seed { value: Obj; fields: Record<string, Kind>; required: string[] }

const seeds: Seed[] = [
  {
    value: { action: 'deploy', image: 'http://10.0.0.1/a.img.gz', disk: '/dev/sda', sha256: 'a'.repeat(64), format: 'gzip', imageSize: 1 << 30, grow: { partition: 1 }, post: { hostname: 'n1', network: { address: '10.0.0.9/24', gateway: '10.0.0.1', nameservers: ['10.0.0.2'] } }, after: 'reboot', onError: 'shell', wipeOnError: false, dryRun: false },
    fields: { image: 'url', disk: 'dev', sha256: 'sha', format: 'enum', imageSize: 'int', grow: 'grow', post: 'post', after: 'enum', onError: 'enum', wipeOnError: 'bool', dryRun: 'bool' },
    required: ['image', 'action'],
  },
  {
    value: { action: 'capture', upload: 'https://h/images/x.zst', disk: '/dev/nvme0n1', format: 'zstd', level: 3, protocol: 'put' },
    fields: { upload: 'url', disk: 'dev', format: 'enum', level: 'int', protocol: 'enum' },
    required: ['upload', 'action'],
  },
  { value: { action: 'wipe', disk: '/dev/vdb', after: 'poweroff' }, fields: { disk: 'dev', after: 'enum' }, required: ['action'] },
  { value: { action: 'shell', dryRun: true }, fields: { dryRun: 'bool' }, required: ['action'] },
  {
    value: { action: 'writeImage', compressed: true, sourceImage: 'http://10.0.0.1:3000/images/u.img.gz', destinationDevice: '/dev/sda', growPartition: 1, lvmRootName: '/dev/ubuntu-vg/root', address: '172.16.1.126/24', gateway: '172.16.1.1', nameserver: '8.8.8.8', dropToShell: false, wipeDevice: false, dryRun: false, growDisk: false },
    fields: { compressed: 'bool', sourceImage: 'url', destinationDevice: 'dev', growPartition: 'int', lvmRootName: 'dev', address: 'cidr', gateway: 'ip', nameserver: 'ip', dropToShell: 'bool', wipeDevice: 'bool', dryRun: 'bool', growDisk: 'bool' },
    required: ['sourceImage'],
  },
  {
    value: { action: 'readImage', compressed: true, sourceDevice: '/dev/sda', desintationAddress: 'http://10.0.0.1:3000/image' },
    fields: { compressed: 'bool', sourceDevice: 'dev', desintationAddress: 'url' },
    required: ['desintationAddress'],
  },
];

const hostileUrls = [
  'images/a.img', '/images/a.img', '//h/a', 'file:///etc/shadow', 'ftp://h/a', 'gopher://h/', 'javascript:alert(1)',
  'data:text/plain,hi', 'http://', 'http:///a', 'https:', 'http://h/a b', ' http://h/a', 'http://h/a\n', 'http://h/\u0000',
  'http:\\\\h\\a', 'HTTP//h/a', 'h:80/a', '', 'http://h/' + 'x'.repeat(5000), 'ws://h/a', 'tftp://h/a', 'unix:/run/x.sock',
];
const badDevices = [
  'sda', '/dev', '/dev/', 'dev/sda', '/dev/../etc/passwd', '/dev/./sda', '/dev//sda', '/etc/passwd', '/dev/sd a', '/dev/sda\u0000',
  '/dev/' + 'a'.repeat(300), '', '/DEV/sda', '/dev/sda\n', '../../dev/sda', '/dev/$(reboot)', '/dev/sda;rm',
];
const wrongTypeValues: unknown[] = [42, -1, 3.5, 'text', '', true, false, null, [], ['x'], {}, { a: 1 }];

function pick<T>(r: () => number, xs: readonly T[]): T { return xs[Math.floor(r() * xs.length)]; }

function wrongTypeFor(r: () => number, kind: Kind): unknown {
  const ok = (v: unknown) => {
    switch (kind) {
      case 'bool': return typeof v === 'boolean';
      case 'int': return Number.isInteger(v) && (v as number) >= 1;
      case 'grow': return typeof v === 'boolean';
      case 'post': return false; // {} and {a: 1}: {} is a valid post, excluded below
      default: return typeof v === 'string';
    }
  };
  for (;;) {
    const v = pick(r, wrongTypeValues);
    if (ok(v)) continue;
    if (kind === 'post' && typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0) continue;
    if (kind === 'grow' && typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0) continue; // {} -> "partition" required: still a named field, but keep it simple
    return structuredClone(v);
  }
}

/** Apply one mutation; returns the names a correct message may use for it. */
function mutate(r: () => number, o: Obj, s: Seed): string[] {
  const fields = Object.keys(s.fields);
  const f = pick(r, fields);
  const kind = s.fields[f];
  const choice = Math.floor(r() * 9);
  switch (choice) {
    case 0: o[f] = wrongTypeFor(r, kind); return [f];
    case 1: { const req = pick(r, s.required); delete o[req]; return [req]; }
    case 2: {
      const urlField = fields.find((x) => s.fields[x] === 'url');
      if (urlField === undefined) { o[f] = wrongTypeFor(r, kind); return [f]; }
      o[urlField] = pick(r, hostileUrls); return [urlField];
    }
    case 3: {
      const devField = fields.filter((x) => s.fields[x] === 'dev');
      if (devField.length === 0) { o[f] = wrongTypeFor(r, kind); return [f]; }
      const d = pick(r, devField);
      o[d] = pick(r, badDevices); return [d];
    }
    case 4: {
      const name = pick(r, ['imgae', 'sourceImages', 'Disk', 'destination_device', 'x', '__proto__x', 'growpartition', 'booty2', `f${Math.floor(r() * 1e6)}`]);
      o[name] = pick(r, wrongTypeValues); return [name];
    }
    case 5: {
      const enums = fields.filter((x) => s.fields[x] === 'enum');
      if (enums.length === 0) { o[f] = wrongTypeFor(r, kind); return [f]; }
      const e = pick(r, enums);
      o[e] = pick(r, ['', 'REBOOT', 'lz4', 'halt', 'lzo', 'Put', 'auto ', 'none']); return [e];
    }
    case 6: {
      const ints = fields.filter((x) => s.fields[x] === 'int');
      if (ints.length === 0) { o[f] = wrongTypeFor(r, kind); return [f]; }
      const n = pick(r, ints);
      o[n] = pick(r, [-1, 1.5, 1e300, -0.5, Number.MAX_SAFE_INTEGER * 4, 129, 23, '3']);
      if (n === 'growPartition' && o[n] === 23) o[n] = 129; // 23 is a valid partition number
      if (n === 'imageSize' && (o[n] === 129 || o[n] === 23)) o[n] = -1;
      if (n === 'level' && o[n] === 129) o[n] = 23;
      return [n];
    }
    case 7: {
      // nested damage where the seed has nested fields, else an unknown action
      if ('post' in o && r() < 0.5) {
        if (typeof o.post !== 'object' || o.post === null || Array.isArray(o.post)) o.post = {};
        const post = o.post as Obj;
        if (typeof post.network !== 'object' || post.network === null || Array.isArray(post.network)) delete post.network;
        const net = (post.network ??= {}) as Obj;
        const what = Math.floor(r() * 4);
        if (what === 0) { net.nameservers = ['10.0.0.2', pick(r, ['dns', '10.0.0.300', '', 'fe80::zz'])]; return ['post.network.nameservers[1]']; }
        if (what === 1) { net.address = pick(r, ['10.0.0.1', '10.0.0.1/33', 'x/24', '::1/129']); return ['post.network.address']; }
        if (what === 2) { post.files = { [pick(r, ['etc/x', '/etc/../shadow', '/a//b', ''])]: 'x' }; return ['post.files']; }
        net.mtu = 9000; return ['post.network.mtu'];
      }
      if ('grow' in o && r() < 0.5) { o.grow = { partition: pick(r, [0, -1, 'first', 1.5, 200]) }; return ['grow.partition']; }
      o.action = pick(r, ['flashBios', 'Deploy', 'write_image', '', 'WRITEIMAGE', 'reboot', 'install']);
      return ['action'];
    }
    default: {
      if (o.action === 'capture' || o.action === 'readImage' || o.action === 'deploy' || o.action === 'writeImage') {
        // a capture level out of range for the format, or a sha256 of the wrong length
        if (o.action === 'capture') { o.format = 'gzip'; o.level = 10 + Math.floor(r() * 10); return ['level']; }
        if (o.action === 'deploy') { o.sha256 = 'a'.repeat(Math.floor(r() * 63)); return ['sha256']; }
      }
      o[f] = wrongTypeFor(r, kind); return [f];
    }
  }
}

it(`parseAction refuses ${CASES} generated malformed actions, naming a broken field (seed ${SEED})`, () => {
  const r = prng(SEED);
  const byForm = new Map<string, number>();
  for (let i = 0; i < CASES; i++) {
    const s = pick(r, seeds);
    const o = structuredClone(s.value);
    const names = new Set<string>();
    const n = 1 + Math.floor(r() * 3);
    for (let k = 0; k < n; k++) for (const x of mutate(r, o, s)) names.add(x);
    // half of the cases arrive as JSON text, as from a file or the network
    const input = r() < 0.5 ? JSON.stringify(o) : o;
    let err: unknown;
    try { parseAction(input); } catch (e) { err = e; }
    const where = `case ${i} (seed ${SEED}): ${JSON.stringify(o).slice(0, 300)}`;
    assert.ok(err !== undefined, `accepted a malformed action: ${where}`);
    assert.ok(err instanceof BootyError, `crashed instead of refusing: ${String(err)} ${where}`);
    assert.equal(err.stage, 'config');
    const named = [...names].some((f) => err.message.includes(`"${f}`) || err.message.includes(`"${f.split('.')[0]}`) || err.message.includes(`${f}[`));
    assert.ok(named, `message names none of ${[...names].join(', ')}: ${err.message}\n${where}`);
    assert.match(err.message, /field "[^"]+/);
    byForm.set(String(s.value.action), (byForm.get(String(s.value.action)) ?? 0) + 1);
  }
  assert.equal([...byForm.values()].reduce((a, b) => a + b, 0), CASES);
});

it('parseAction refuses random garbage text and non-objects without crashing', () => {
  const r = prng(SEED ^ 0x5a5a);
  const base = JSON.stringify(seeds[0].value);
  for (let i = 0; i < 500; i++) {
    let input: unknown;
    const k = Math.floor(r() * 4);
    if (k === 0) input = base.slice(0, Math.floor(r() * (base.length - 1))); // truncated JSON
    else if (k === 1) input = Array.from({ length: Math.floor(r() * 64) }, () => String.fromCharCode(Math.floor(r() * 0x3000))).join('');
    else if (k === 2) input = pick(r, [null, 0, -1, 'deploy', [], [base], true, '""', '[]', 'null', '1e999']);
    else { const cut = Math.floor(r() * base.length); input = base.slice(0, cut) + String.fromCharCode(Math.floor(r() * 128)) + base.slice(cut + 1); }
    let err: unknown;
    let action: unknown;
    try { action = parseAction(input); } catch (e) { err = e; }
    if (err === undefined) {
      // a one-character change can leave valid JSON that is still a valid action; it must be a whole Action then
      assert.equal(k, 3, `accepted ${JSON.stringify(input)}`);
      assert.ok(typeof action === 'object' && action !== null && 'action' in action);
      continue;
    }
    assert.ok(err instanceof BootyError && err.stage === 'config', `crashed: ${String(err)} on ${JSON.stringify(input)}`);
  }
});

// Disk hints: random valid hint sets are accepted (sizes normalized to bytes) and the same sets
// with one hint broken are refused, naming that hint.
it('parseAction accepts generated disk hints and refuses each broken one by name', () => {
  const r = prng(SEED ^ 0x7a11);
  const good: Record<string, () => unknown> = {
    name: () => pick(r, ['sda', '/dev/sdb', 'nvme0n1', 'vda', 'mmcblk0', 'cciss!c0d0']),
    minSize: () => pick(r, [0, 4096, '1G', '100 GiB', '500GB', '1.5T', '8589934592']),
    maxSize: () => pick(r, ['7P', '7.9PiB', Number.MAX_SAFE_INTEGER]),
    serial: () => pick(r, ['S4EVNF0M', 'WD-WCC4N1234567', 'QM00001', 'a b c', 'ünïcode']),
    model: () => pick(r, ['Samsung', 'QEMU HARDDISK', 'x']),
    vendor: () => pick(r, ['ATA', 'NVMe', 'QEMU']),
    wwn: () => pick(r, ['0x5000c500a1b2c3d4', 'naa.5000c500a1b2c3d4', 'eui.0025388b71b1b3c2']),
    rotational: () => r() < 0.5,
    hctl: () => pick(r, ['0:0:0:0', '12:0:3:1']),
    byPath: () => pick(r, ['pci-0000:00:1f.2-ata-1.0', '/dev/disk/by-path/pci-0000:00:04.0-nvme-1', 'virtio-pci-0000:00:05.0']),
  };
  const bad: Record<string, unknown[]> = {
    name: ['', '/dev/', '/dev/disk/by-id/x', 'sd a', 'x'.repeat(65), 7, null],
    minSize: ['', 'big', '1Q', '-5', -5, 1.5, '1e9', true, [], '9999999999P', '1E'],
    maxSize: ['G', {}, false, 2 ** 60],
    serial: ['', 'a\nb', 'x'.repeat(257), 5, null, []],
    model: ['', '\u0000', 1],
    vendor: ['', '\t', {}],
    wwn: ['', 42, 'a\u007fb'],
    rotational: ['true', 0, 1, null, 'ssd'],
    hctl: ['0:0:0', 'a:b:c:d', '0:0:0:0:0', 0],
    byPath: ['', 'pci 0', '../../etc', 'x'.repeat(300), 1],
  };
  const names = Object.keys(good);
  for (let i = 0; i < 400; i++) {
    const hints: Record<string, unknown> = {};
    for (const k of names) if (r() < 0.35) hints[k] = good[k]();
    if (Object.keys(hints).length === 0) hints.serial = good.serial();
    const action = pick(r, [{ action: 'wipe' }, { action: 'capture', upload: 'http://h/u' }, { action: 'deploy', image: 'http://h/a' }]);
    const ok = parseAction({ ...action, diskHints: hints }) as unknown as { diskHints: Record<string, unknown> };
    for (const k of ['minSize', 'maxSize']) {
      if (hints[k] !== undefined) assert.equal(typeof ok.diskHints[k], 'number', `${k} ${JSON.stringify(hints[k])} not normalized`);
    }
    const broken = pick(r, [...names, 'unknown']);
    const bent = { ...hints };
    const field = broken === 'unknown' ? pick(r, ['serail', 'size', 'by_path', 'wwn_with_extension', 'Model']) : broken;
    bent[field] = broken === 'unknown' ? 'x' : structuredClone(pick(r, bad[broken]));
    const where = `case ${i} (seed ${SEED}): ${JSON.stringify(bent).slice(0, 200)}`;
    assert.throws(() => parseAction({ ...action, diskHints: bent }), (e: unknown) => {
      assert.ok(e instanceof BootyError && e.stage === 'config', `crashed: ${String(e)} ${where}`);
      assert.ok(e.message.includes(`"diskHints.${field}"`), `message does not name diskHints.${field}: ${e.message} ${where}`);
      return true;
    }, where);
  }
});
