// What the agent's boot reads and loads from the CommonJS bundle (scripts/bundle.mjs): the file is
// ASCII (/init reads it as latin1); node:http2 loads only when an https origin picks HTTP/2 and
// undici's node:assert is booty's small stub (lazyUndiciParts), so the agent's modules load
// without either, and an h2 origin (node:http2's own server, TLS with a certificate made by
// openssl, HTTP/1.1 refused) still answers through the bundled client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import { createRequire, isBuiltin } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { build } from 'esbuild';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';

const root = path.resolve(import.meta.dirname, '../..');
const bundler = await import(pathToFileURL(path.join(root, 'scripts', 'bundle.mjs')).href) as { lazyUndiciParts: unknown; bundle(out: string): Promise<string>; shareBuiltinInterop(text: string): string };
const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

/** Which of node:http2 and node:assert a child process had loaded, as moduleLoadList names them. */
const WATCH = `const watched = () => process.moduleLoadList.filter((m) => m === 'NativeModule http2' || m === 'NativeModule assert');`;

function tempDir(tag: string): string {
  fs.mkdirSync(path.join(root, 'dist'), { recursive: true });
  return fs.mkdtempSync(path.join(root, 'dist', `.test-${tag}-`));
}

test('the bundle is ASCII, the agent loads from it without node:http2 and node:assert, and its workers run', { timeout: 180_000 }, async () => {
  const dir = tempDir('undici-agent');
  try {
    const out = await bundler.bundle(path.join(dir, 'booty.cjs'));
    const bytes = fs.readFileSync(out);
    // every import of a built-in module shares one interop copy (shareBuiltinInterop)
    const text = bytes.toString('latin1');
    assert.deepEqual(text.match(/__toESM\(require\("[^"]+"\), 1\)/g)?.filter((c) => isBuiltin(/"([^"]+)"/.exec(c)![1])) ?? [], []);
    assert.ok((text.match(/__bootyBuiltin\(require\("node:fs"\)\)/g) ?? []).length > 10, 'node:fs imported through the shared copy');
    const high = bytes.findIndex((b) => b > 0x7f);
    assert.equal(high, -1, `a byte above 0x7f at ${high}: ${bytes.subarray(Math.max(0, high - 40), high + 10).toString('utf8')}`);
    const probe = path.join(dir, 'probe.cjs');
    fs.writeFileSync(probe, `${WATCH}\nprocess.on('exit', () => process.stderr.write('LOADED ' + JSON.stringify(watched()) + '\\n'));\n`);
    // --load-agent-only: the agent's modules and its HTTP warm-up request, as the code cache's run does
    const r = spawnSync(process.execPath, ['-r', probe, out, '--load-agent-only'], { encoding: 'utf8', timeout: 120_000, cwd: dir, env: { ...process.env, NODE_PATH: path.join(root, 'node_modules') } });
    assert.equal(r.status, 0, r.stderr);
    const m = /LOADED (.*)/.exec(r.stderr);
    assert.ok(m !== null, r.stderr);
    assert.deepEqual(JSON.parse(m[1]), [], 'neither node:http2 nor node:assert loaded');

    // the worker texts embedded in the bundle run: a gzip image deployed by this bundle, inflated
    // on its decode worker (a worker's code once called a helper only the bundle's text defined)
    const image = Buffer.alloc(3 << 20);
    for (let i = 0; i < image.length; i += 4096) image.write(`block ${i / 4096} of the bundle's test image\n`, i);
    const gz = zlib.gzipSync(image);
    const origin = http.createServer((_req, res) => { res.writeHead(200, { 'content-length': gz.length }); res.end(gz); });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    const target = path.join(dir, 'disk.img');
    fs.writeFileSync(target, '');
    fs.truncateSync(target, 4 << 20);
    try {
      const url = `http://127.0.0.1:${(origin.address() as { port: number }).port}/image.gz`;
      const d = await promisify(execFile)(process.execPath, [out, 'deploy', '--image', url, '--disk', target], { encoding: 'utf8', timeout: 120_000, cwd: dir, env: { ...process.env, NODE_PATH: path.join(root, 'node_modules') } });
      assert.match(d.stderr, /inflating one gzip stream on a worker thread/);
      assert.deepEqual(fs.readFileSync(target).subarray(0, image.length), image);
    } finally {
      origin.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('built-in modules get one interop copy each; bundled CommonJS packages keep their own per import', () => {
  const text = [
    'var import_node_fs = __toESM(require("node:fs"), 1);',
    'var import_os = __toESM(require("os"), 1);',
    'var import_undici = __toESM(require_undici(), 1);',
    'var import_koffi = __toESM(require("koffi"), 1);',
  ].join('\n');
  assert.equal(bundler.shareBuiltinInterop(text), [
    'var import_node_fs = __bootyBuiltin(require("node:fs"));',
    'var import_os = __bootyBuiltin(require("os"));',
    'var import_undici = __toESM(require_undici(), 1);',
    'var import_koffi = __toESM(require("koffi"), 1);',
  ].join('\n'));
});

test('an https origin that speaks only HTTP/2 answers through the bundled undici, which loads node:http2 then', { timeout: 120_000, skip: skipUnlessPresent(hasOpenssl, 'openssl is not installed') }, async () => {
  const dir = tempDir('undici-h2');
  const key = path.join(dir, 'origin.key');
  const cert = path.join(dir, 'origin.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
    '-subj', '/CN=origin', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const server = http2.createSecureServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert), allowHTTP1: false });
  server.on('stream', (stream: http2.ServerHttp2Stream, headers) => {
    stream.respond({ ':status': 200, 'content-type': 'text/plain' });
    stream.end(`h2 answer to ${String(headers[':path'])}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  try {
    const entry = path.join(dir, 'entry.ts');
    fs.writeFileSync(entry, `import { Agent, request } from ${JSON.stringify(path.join(root, 'src', 'net', 'undici.ts'))};
${WATCH}
(async () => {
  const before = watched();
  const agent = new Agent({ connect: { ca: ${JSON.stringify(fs.readFileSync(cert, 'utf8'))} } });
  const res = await request(process.argv[2], { dispatcher: agent });
  const body = await res.body.text();
  await agent.close();
  process.stdout.write(JSON.stringify({ before, after: watched(), status: res.statusCode, body }));
})().catch((e) => { process.stderr.write(String(e && e.stack || e)); process.exitCode = 1; });
`);
    const out = path.join(dir, 'entry.cjs');
    await build({ absWorkingDir: root, entryPoints: [entry], outfile: out, bundle: true, format: 'cjs', platform: 'node', target: 'node26', plugins: [bundler.lazyUndiciParts as never], logLevel: 'silent' });
    // asynchronously: the origin is in this process
    const r = await promisify(execFile)(process.execPath, [out, `https://127.0.0.1:${port}/image.raw`], { encoding: 'utf8', timeout: 60_000 });
    const got = JSON.parse(r.stdout) as { before: string[]; after: string[]; status: number; body: string };
    assert.deepEqual(got.before, [], 'nothing of h2 or assert loaded with undici');
    assert.equal(got.status, 200);
    assert.equal(got.body, 'h2 answer to /image.raw');
    // (node:http2 requires node:assert itself)
    assert.ok(got.after.includes('NativeModule http2'), `node:http2 loaded for the h2 connection: ${got.after.join(', ')}`);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("undici's assert stub throws node:assert's kind of error on a broken invariant", () => {
  const stub = createRequire(import.meta.url)(path.join(root, 'scripts', 'stubs', 'bundle-undici', 'assert.cjs')) as ((v: unknown, m?: unknown) => void) & { ok: unknown };
  assert.doesNotThrow(() => stub(1));
  assert.throws(() => stub(0), { name: 'AssertionError', code: 'ERR_ASSERTION', message: 'The expression evaluated to a falsy value' });
  assert.throws(() => stub(false, 'kQueue broken'), { code: 'ERR_ASSERTION', message: 'kQueue broken' });
  assert.equal(stub.ok, stub);
});
