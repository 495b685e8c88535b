// The bundle validates actions with code ajv generated at build time (src/build/schema-standalone.ts,
// put in place of src/config/schema-compile.ts by scripts/bundle.mjs); the sources compile the
// same schemas with ajv at run time. Both must accept and refuse exactly the same inputs with the
// same errors (parse.ts turns the first error into the operator's sentence): every input below,
// valid seeds and their mutations, goes through every schema both ways.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { schemas, validators } from '../../src/config/schema.ts';
import { parseAction } from '../../src/config/parse.ts';

const root = path.resolve(import.meta.dirname, '../..');
const bundler = await import(pathToFileURL(path.join(root, 'scripts', 'bundle.mjs')).href) as { standaloneSchemas: unknown };

type Validate = ((x: unknown) => boolean) & { errors?: unknown[] | null };

/** src/config/schema-compile.ts as the bundle has it, bundled the way scripts/bundle.mjs does. */
async function bundledCompile(): Promise<{ compileSchema(name: string): Validate; text: string }> {
  const r = await build({
    absWorkingDir: root, entryPoints: [path.join(root, 'src', 'config', 'schema-compile.ts')], write: false, bundle: true,
    format: 'esm', platform: 'node', plugins: [bundler.standaloneSchemas as never], logLevel: 'silent',
  });
  const text = r.outputFiles[0]!.text;
  const mod = await import(`data:text/javascript;base64,${Buffer.from(text).toString('base64')}`) as { compileSchema(name: string): Validate };
  return { compileSchema: mod.compileSchema, text };
}

const sha = 'ab'.repeat(32);
const deploy = { action: 'deploy', image: 'http://10.0.0.1/a.img.gz', disk: '/dev/sda', sha256: sha, format: 'gzip', imageSize: 1 << 30, grow: { partition: 1 }, post: { hostname: 'n1', network: { address: '10.0.0.9/24', gateway: '10.0.0.1', nameservers: ['10.0.0.2'] } }, after: 'reboot', onError: 'shell', wipeOnError: false, dryRun: false };
const seeds: Record<string, unknown>[] = [
  deploy,
  { action: 'deploy', image: 'oci://registry.example/os/debian:12', diskHints: { minSize: '100GB', rotational: false, transport: 'nvme' } },
  { action: 'deploy-rootfs', rootfs: 'https://h/rootfs.tar.zst', disk: '/dev/vda', bootloader: 'grub-efi', fstab: 'generate', stallTimeout: 30 },
  { action: 'capture', upload: 'https://h/images/x.zst', disk: '/dev/nvme0n1', format: 'zstd', level: 3, protocol: 'put' },
  { action: 'wipe', disk: '/dev/vdb', after: 'poweroff' },
  { action: 'shell', dryRun: true },
  { action: 'none' },
  { action: 'inspect' },
  { action: 'writeImage', compressed: true, sourceImage: 'http://10.0.0.1:3000/images/u.img.gz', destinationDevice: '/dev/sda', growPartition: 1, lvmRootName: '/dev/ubuntu-vg/root', address: '172.16.1.126/24', gateway: '172.16.1.1', nameserver: '8.8.8.8', dropToShell: false, wipeDevice: false, dryRun: false, growDisk: false },
  { action: 'readImage', compressed: true, sourceDevice: '/dev/sda', desintationAddress: 'http://10.0.0.1:3000/image' },
  { action: 'writeImage', sourceImage: 'http://10.0.0.1/u.img.gz', booty: deploy },
  { type: 'phase', time: '2026-12-06T10:00:00Z', phase: 'writing', detail: 'x' },
  { type: 'progress', time: '2026-12-06T10:00:00Z', phase: 'writing', bytes: 1, rate: 2, total: 3 },
  { type: 'log', time: '2026-12-06T10:00:00Z', level: 'info', message: 'hello' },
  { type: 'result', time: '2026-12-06T10:00:00Z', ok: true, action: 'deploy', bytes: 5, sha256: sha },
];
const replacements: unknown[] = [
  42, -1, 3.5, 0, 2 ** 60, 'text', '', true, false, null, [], ['x'], {}, { a: 1 },
  'file:///etc/shadow', 'http://h/a b', 'http://' + 'x'.repeat(5000), 'oci://', '/dev/../etc/passwd', '/dev/sd a', '/dev/vda',
  '10.0.0.1/33', '::1', 'fe80::1/64', 'not a host!', '1TB', '-5G', 'x'.repeat(20000), 'ünïcödé',
];

/** Each seed, and each seed with one field (top level or one level down) removed, replaced or added. */
function* inputs(): Generator<unknown> {
  yield* [null, 1, 'deploy', [], {}];
  for (const seed of seeds) {
    yield seed;
    yield { ...seed, unknownField: 1 };
    for (const [k, v] of Object.entries(seed)) {
      const { [k]: _gone, ...rest } = seed;
      yield rest;
      for (const r of replacements) yield { ...seed, [k]: r };
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
        for (const [k2] of Object.entries(v)) {
          for (const r of replacements.slice(0, 12)) yield { ...seed, [k]: { ...v, [k2]: r } };
        }
        yield { ...seed, [k]: { ...v, unknownNested: true } };
      }
    }
  }
}

test('the generated validators and ajv at run time agree on every input, errors included', async (t) => {
  const { compileSchema } = await bundledCompile();
  let compared = 0;
  let accepted = 0;
  for (const name of Object.keys(schemas) as (keyof typeof schemas)[]) {
    const runtime = validators[name] as unknown as Validate;
    const generated = compileSchema(name);
    assert.notEqual(generated, runtime);
    for (const input of inputs()) {
      const a = runtime(input);
      const b = generated(input);
      assert.equal(b, a, `${name}: ${JSON.stringify(input).slice(0, 200)}`);
      assert.deepEqual(generated.errors, runtime.errors, `${name}: ${JSON.stringify(input).slice(0, 200)}`);
      compared++;
      if (a) accepted++;
    }
  }
  // the corpus reaches both sides of the schemas (a corpus that every schema refuses would prove little)
  assert.ok(compared > 10_000, `${compared} comparisons`);
  assert.ok(accepted > 300, `${accepted} accepted`);
  t.diagnostic(`${compared} comparisons, ${accepted} accepted`);
});

test('the bundled validators carry no ajv compiler, and an unknown schema name is an error', async () => {
  const { compileSchema, text } = await bundledCompile();
  assert.doesNotMatch(text, /ajv\/dist\/(compile|core|ajv)/);
  assert.throws(() => compileSchema('no-such-schema'), /no validator was generated for the schema no-such-schema/);
});

test('every seed of the corpus is one parseAction accepts or an agent event (the corpus starts valid)', () => {
  for (const s of seeds) {
    if ('type' in s) assert.equal((validators.agentEvent as unknown as Validate)(s), true, JSON.stringify(s));
    else assert.doesNotThrow(() => parseAction(JSON.stringify(s)), JSON.stringify(s));
  }
});
