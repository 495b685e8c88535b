// The resumable upload protocol of booty server (/api/uploads), on a real server process:
// parts with their own sha256, acknowledged and listed; a bad part refused and not kept; commits
// that check presence, sizes and the whole sha256; sessions surviving a server restart; idle
// sessions expiring; the client falling back to PUT + commit on a server without the route; and
// X-Image-Size of a multi-frame zstd image summed over every frame (deploy then succeeds).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import zlib from 'node:zlib';
import { request } from 'undici';
import { startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { uploadToBootyServer } from '../../src/image/upload/upload-resumable.ts';
import { deploy } from '../../src/image/deploy.ts';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const KiB = 1024;

async function call(url: string, init: Parameters<typeof request>[1] = {}) {
  const res = await request(url, init);
  const text = await res.body.text();
  let json: Record<string, unknown> = {};
  try { json = JSON.parse(text) as Record<string, unknown>; } catch { /* not JSON */ }
  return { status: res.statusCode, text, json, headers: res.headers };
}

const post = (url: string, body: unknown) => call(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const putPart = (url: string, data: Buffer, hash = sha(data)) => call(url, { method: 'PUT', headers: { 'x-booty-sha256': hash }, body: data });

let srv: BootyServerProcess;
let dataDir: string;
let imagesDir: string;

before(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-uploads-'));
  srv = await startBootyServer({ dataDir });
  imagesDir = path.join(dataDir, 'images');
});

after(async () => {
  await srv?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('resumable uploads', () => {
  it('parts are acknowledged and listed; a part with the wrong sha256 is refused (422) and not kept', async () => {
    const start = await post(`${srv.url}/api/uploads`, { name: 'parts.img', partSize: 64 * KiB });
    assert.equal(start.status, 201, start.text);
    const id = start.json.id as string;
    assert.equal(start.json.partSize, 64 * KiB);
    const data = randomBytes(64 * KiB * 2 + 1000);
    const p = [data.subarray(0, 64 * KiB), data.subarray(64 * KiB, 128 * KiB), data.subarray(128 * KiB)];
    // out of order, and part 1 first with a bad hash
    assert.equal((await putPart(`${srv.url}/api/uploads/${id}/parts/2`, p[2])).status, 200);
    const bad = await putPart(`${srv.url}/api/uploads/${id}/parts/1`, p[1], sha('something else'));
    assert.equal(bad.status, 422);
    assert.match(bad.json.error as string, /part 1 .*sha256 mismatch/);
    assert.equal((await putPart(`${srv.url}/api/uploads/${id}/parts/0`, p[0])).status, 200);
    const listed = await call(`${srv.url}/api/uploads/${id}`);
    assert.deepEqual((listed.json.parts as { n: number }[]).map((x) => x.n), [0, 2], 'the refused part is not listed');
    const early = await post(`${srv.url}/api/uploads/${id}/commit`, { size: data.length, sha256: sha(data), parts: 3 });
    assert.equal(early.status, 409);
    assert.match(early.json.error as string, /lacks part\(s\) 1/);
    assert.ok(!fs.existsSync(path.join(imagesDir, 'parts.img')));
    // a part too large for the part size
    const big = await putPart(`${srv.url}/api/uploads/${id}/parts/1`, randomBytes(64 * KiB + 1));
    assert.equal(big.status, 413);
    assert.equal((await putPart(`${srv.url}/api/uploads/${id}/parts/1`, p[1])).status, 200);
    // the same part again (a lost answer): accepted, same content
    assert.equal((await putPart(`${srv.url}/api/uploads/${id}/parts/1`, p[1])).status, 200);
    const done = await post(`${srv.url}/api/uploads/${id}/commit`, { size: data.length, sha256: sha(data), parts: 3, uncompressedSize: data.length });
    assert.equal(done.status, 200, done.text);
    assert.equal(done.json.sha256, sha(data));
    assert.ok(fs.readFileSync(path.join(imagesDir, 'parts.img')).equals(data));
    assert.ok(!fs.existsSync(path.join(imagesDir, '.uploads', id)), 'the session is gone after the commit');
    assert.equal((await call(`${srv.url}/api/uploads/${id}`)).status, 404);
    const head = await call(`${srv.url}/images/parts.img`, { method: 'HEAD' });
    assert.equal(head.headers['x-image-sha256'], sha(data));
  });

  it('a commit with the wrong whole sha256 or size stores nothing and ends the session', async () => {
    for (const wrong of ['sha', 'size'] as const) {
      const start = await post(`${srv.url}/api/uploads`, { name: `wrong-${wrong}.img` });
      const id = start.json.id as string;
      const data = randomBytes(100_000);
      assert.equal((await putPart(`${srv.url}/api/uploads/${id}/parts/0`, data)).status, 200);
      const r = await post(`${srv.url}/api/uploads/${id}/commit`, { size: wrong === 'size' ? data.length + 1 : data.length, sha256: wrong === 'sha' ? sha('x') : sha(data), parts: 1 });
      assert.equal(r.status, 409);
      assert.match(r.json.error as string, wrong === 'sha' ? /sha256 mismatch/ : /size mismatch/);
      assert.ok(!fs.existsSync(path.join(imagesDir, `wrong-${wrong}.img`)));
      assert.ok(!fs.existsSync(path.join(imagesDir, '.uploads', id)));
    }
  });

  it('bad requests: names, ids, part numbers, missing hashes', async () => {
    for (const name of ['../x', 'a\u0000b', '.hidden', 'x'.repeat(181), 'a/b']) {
      const r = await post(`${srv.url}/api/uploads`, { name });
      assert.equal(r.status, 400, `${JSON.stringify(name)}: ${r.text}`);
    }
    assert.equal((await post(`${srv.url}/api/uploads`, {})).status, 400);
    assert.equal((await post(`${srv.url}/api/uploads`, { name: 'parts.img' })).status, 409, 'exists, no overwrite');
    assert.equal((await call(`${srv.url}/api/uploads/..%2F..%2Fbooty.db`)).status, 404);
    assert.equal((await call(`${srv.url}/api/uploads/0123456789abcdef01234567`)).status, 404);
    const id = (await post(`${srv.url}/api/uploads`, { name: 'bad-req.img' })).json.id as string;
    assert.equal((await call(`${srv.url}/api/uploads/${id}/parts/0`, { method: 'PUT', body: 'x' })).status, 400, 'no X-Booty-Sha256');
    assert.equal((await putPart(`${srv.url}/api/uploads/${id}/parts/-1`, Buffer.from('x'))).status, 400);
    assert.equal((await putPart(`${srv.url}/api/uploads/${id}/parts/99999999`, Buffer.from('x'))).status, 400);
    assert.equal((await call(`${srv.url}/api/uploads/${id}`, { method: 'DELETE' })).status, 200);
    assert.ok(!fs.existsSync(path.join(imagesDir, '.uploads', id)));
  });

  it('parts survive a server restart; the commit afterwards re-reads them', async () => {
    const start = await post(`${srv.url}/api/uploads`, { name: 'restart.img', partSize: 64 * KiB });
    const id = start.json.id as string;
    const data = randomBytes(64 * KiB * 3);
    for (let n = 0; n < 2; n++) assert.equal((await putPart(`${srv.url}/api/uploads/${id}/parts/${n}`, data.subarray(n * 64 * KiB, (n + 1) * 64 * KiB))).status, 200);
    await srv.close({ keepData: true });
    srv = await startBootyServer({ dataDir });
    const listed = await call(`${srv.url}/api/uploads/${id}`);
    assert.deepEqual((listed.json.parts as { n: number }[]).map((x) => x.n), [0, 1]);
    assert.equal((await putPart(`${srv.url}/api/uploads/${id}/parts/2`, data.subarray(128 * KiB))).status, 200);
    const done = await post(`${srv.url}/api/uploads/${id}/commit`, { size: data.length, sha256: sha(data), parts: 3 });
    assert.equal(done.status, 200, done.text);
    assert.ok(fs.readFileSync(path.join(imagesDir, 'restart.img')).equals(data));
  });

  it('idle sessions expire (--upload-ttl)', async () => {
    const short = await startBootyServer({ args: ['--upload-ttl', '1'] });
    try {
      const id = (await post(`${short.url}/api/uploads`, { name: 'idle.img' })).json.id as string;
      assert.equal((await putPart(`${short.url}/api/uploads/${id}/parts/0`, randomBytes(1000))).status, 200);
      const dir = path.join(short.dataDir, 'images', '.uploads', id);
      assert.ok(fs.existsSync(dir));
      await sleep(2500);
      assert.equal((await call(`${short.url}/api/uploads/${id}`)).status, 404);
      assert.ok(!fs.existsSync(dir), 'the expired session is deleted');
    } finally { await short.close(); }
  });

  it('the client falls back to PUT + commit on a server without /api/uploads', async () => {
    // an older server: only PUT ?upload=<id> and POST ?commit=<id>
    const received = new Map<string, Buffer>();
    const old = http.createServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://x');
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        if (req.method === 'PUT' && u.searchParams.has('upload')) {
          received.set(u.searchParams.get('upload')!, body);
          res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ size: body.length, sha256: sha(body) }));
        } else if (req.method === 'POST' && u.searchParams.has('commit')) {
          const c = JSON.parse(body.toString()) as { sha256: string };
          const got = received.get(u.searchParams.get('commit')!);
          res.writeHead(got !== undefined && sha(got) === c.sha256 ? 200 : 409, { 'content-type': 'application/json' }).end('{}');
        } else res.writeHead(404).end('{"error":"no route"}');
      });
    });
    await new Promise<void>((ok) => old.listen(0, '127.0.0.1', ok));
    try {
      const data = randomBytes(300_000);
      let fellBack = 0;
      const r = await uploadToBootyServer({
        url: `http://127.0.0.1:${(old.address() as AddressInfo).port}/images/old.img`, body: Readable.from([data]),
        sent: () => ({ size: data.length, sha256: sha(data) }), onFallback: (s) => { fellBack = s; },
      });
      assert.equal(r.protocol, 'put');
      assert.equal(fellBack, 404);
      assert.ok([...received.values()][0].equals(data));
    } finally { await new Promise<void>((ok) => old.close(() => ok())); }
  });
});

describe('zstd images with several frames', () => {
  it('X-Image-Size is the sum over all frames; the deploy of a concatenated zstd succeeds', async () => {
    const a = randomBytes(700_000);
    const b = Buffer.alloc(1_300_001, 7);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-zstd-mf-'));
    try {
      let z: Buffer;
      try {
        fs.writeFileSync(path.join(dir, 'a'), a);
        fs.writeFileSync(path.join(dir, 'b'), b);
        execFileSync('zstd', ['-q', path.join(dir, 'a'), path.join(dir, 'b')]);
        z = Buffer.concat([fs.readFileSync(path.join(dir, 'a.zst')), fs.readFileSync(path.join(dir, 'b.zst'))]);
      } catch {
        z = Buffer.concat([zlib.zstdCompressSync(a, { params: { [zlib.constants.ZSTD_c_checksumFlag]: 1 } }), zlib.zstdCompressSync(b)]);
      }
      fs.writeFileSync(path.join(imagesDir, 'multi.img.zst'), z);
      const head = await call(`${srv.url}/images/multi.img.zst`, { method: 'HEAD' });
      assert.equal(head.headers['x-image-format'], 'zstd');
      assert.equal(head.headers['x-image-size'], String(a.length + b.length));
      const target = path.join(dir, 'target.img');
      fs.writeFileSync(target, '');
      const r = await deploy({ image: `${srv.url}/images/multi.img.zst`, disk: target, workers: 0 });
      assert.equal(r.bytesWritten, a.length + b.length);
      assert.ok(fs.readFileSync(target).subarray(0, a.length + b.length).equals(Buffer.concat([a, b])));
    } finally { fs.rmSync(dir, { recursive: true, force: true }); }
  });
});
