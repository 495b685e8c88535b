// The worker threads in a bundle (scripts/bundle.mjs, src/image/parallel/worker-start.ts): every
// `*-worker-entry.ts` under src/ is embedded as text, every worker an owner starts is among them,
// the texts are CommonJS a worker can evaluate, and a worker started from the bundle's text runs
// (the decode worker with ISA-L, which loads koffi by path from evaluated code).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import vm from 'node:vm';
import zlib from 'node:zlib';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '../..');
const bundler = await import(pathToFileURL(path.join(root, 'scripts', 'bundle.mjs')).href) as {
  embedWorkers: unknown;
  workerEntries(): Promise<string[]>;
};

/** src/image/parallel/worker-bundled.ts as the bundle has it. */
async function bundledWorkers(): Promise<Record<string, string>> {
  const r = await build({
    absWorkingDir: root, entryPoints: [path.join(root, 'src', 'image', 'parallel', 'worker-bundled.ts')], write: false, bundle: true,
    format: 'esm', platform: 'node', plugins: [bundler.embedWorkers as never], logLevel: 'silent',
  });
  const mod = await import(`data:text/javascript;base64,${Buffer.from(r.outputFiles[0].text).toString('base64')}`) as { bundledWorkers: Record<string, string> };
  return mod.bundledWorkers;
}

test('the bundle embeds every worker entry, and every worker started in src/ is one of them', async () => {
  const workers = await bundledWorkers();
  const entries = (await bundler.workerEntries()).map((f) => path.basename(f)).sort();
  assert.deepEqual(Object.keys(workers).sort(), entries);
  assert.ok(entries.includes('decode-worker-entry.ts') && entries.includes('codec-worker-entry.ts') && entries.includes('segment-worker-entry.ts'));
  const started = new Set<string>();
  for (const f of readdirSync(path.join(root, 'src'), { recursive: true, encoding: 'utf8' })) {
    if (!f.endsWith('.ts')) continue;
    // started directly (startWorker(new URL(...))) or through a task pool (entry: new URL(...))
    for (const m of readFileSync(path.join(root, 'src', f), 'utf8').matchAll(/(?:startWorker\(|entry: )new URL\('\.\/([a-z0-9-]+\.ts)'/g)) started.add(m[1]!);
  }
  assert.deepEqual([...started].sort(), entries);
  for (const [name, code] of Object.entries(workers)) {
    assert.doesNotThrow(() => new vm.Script(code, { filename: name }), `${name} compiles as a script`);
    assert.doesNotMatch(code, /import\.meta|^import |^export /m, `${name} is CommonJS without import.meta`);
    assert.doesNotMatch(code, /String\.raw`/, `${name} holds no worker source templates`);
  }
});

test('a decode worker started from the bundle\'s text inflates with ISA-L (koffi loaded by path)', async () => {
  // the owner module bundled as dist/ would hold it (koffi is found from beside it)
  mkdirSync(path.join(root, 'dist'), { recursive: true }); // a fresh clone has none yet
  const dir = mkdtempSync(path.join(root, 'dist', '.test-workers-'));
  try {
    const out = path.join(dir, 'decode.mjs');
    await build({
      absWorkingDir: root, entryPoints: [path.join(root, 'src', 'image', 'parallel', 'decode-worker.ts')], outfile: out, bundle: true,
      format: 'esm', platform: 'node', target: 'node26', external: ['koffi'], plugins: [bundler.embedWorkers as never], logLevel: 'silent',
    });
    const { DecodeWorker } = await import(pathToFileURL(out).href) as typeof import('../../src/image/parallel/decode-worker.ts');
    const data = Buffer.concat([Buffer.alloc(300_000, 1), Buffer.from('the end')]);
    const d = new DecodeWorker({ format: 'gzip', blockSize: 64 << 10, blocks: 2, gunzip: 'ISA-L igzip' });
    assert.equal((await d.engineChoice)?.engine, 'ISA-L igzip', 'libisal2 is installed by scripts/host-deps.sh');
    const got: Buffer[] = [];
    d.on('data', (b: Buffer) => got.push(b));
    const done = new Promise<void>((resolve, reject) => { d.on('end', resolve); d.on('error', reject); });
    d.end(zlib.gzipSync(data));
    await done;
    assert.deepEqual(Buffer.concat(got), data);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
