// booty server under hostile or unlucky input, on real server processes: uploads over
// --max-upload (declared, chunked, multipart, in parts) refused with 413 and the body no longer
// read; two uploads of one name at once (plain PUT and resumable), where one wins whole and the
// other gets a 409; the data disk filling up mid-upload (a real 8 MiB tmpfs as the data
// directory, root only): 507, no file under the final name, temp files removed, and the server
// still working. Nothing half-written may ever look complete.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { uploadToBootyServer } from '../../src/image/upload/upload-resumable.ts';
import { UploadRejected } from '../../src/image/upload/upload.ts';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const MiB = 1 << 20;
const isRoot = process.getuid?.() === 0;

async function call(url: string, init: Parameters<typeof request>[1] = {}) {
  const res = await request(url, init);
  const text = await res.body.text();
  let json: Record<string, unknown> = {};
  try { json = JSON.parse(text) as Record<string, unknown>; } catch { /* not JSON */ }
  return { status: res.statusCode, text, json };
}

/** Files under the images directory except the server's own bookkeeping directories. */
function imageFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => f !== '.meta' && f !== '.uploads').sort();
}

async function eventually(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 100; i++) { if (check()) return; await sleep(100); }
  assert.fail(`never happened: ${what}`);
}

/**
 * Write a chunked PUT as fast as the server takes it, up to `total` bytes, and report the answer
 * and how much the server let in before it stopped reading (the socket closed on us).
 */
async function floodChunked(url: string, pathAndQuery: string, total: number, headers = ''): Promise<{ status: number; text: string; written: number; closedByServer: boolean }> {
  const { port } = new URL(url);
  const sock = connect(Number(port), '127.0.0.1');
  await new Promise<void>((ok) => sock.once('connect', () => ok()));
  let answer = '';
  sock.setEncoding('latin1').on('data', (s: string) => { answer += s; });
  sock.on('error', () => { /* the server closing on us is the point */ });
  const closed = new Promise<void>((ok) => sock.once('close', () => ok()));
  sock.write(`PUT ${pathAndQuery} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n${headers}\r\n`);
  const piece = randomBytes(256 * 1024);
  const chunk = Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]);
  let written = 0;
  let done = false;
  void closed.then(() => { done = true; });
  while (!done && written < total) {
    written += piece.length;
    // a write the socket cannot take within 3 s: the server stopped reading
    if (!sock.write(chunk) && await Promise.race([new Promise((ok) => sock.once('drain', () => ok(false))), closed.then(() => true), sleep(3000).then(() => true)])) break;
  }
  const closedByServer = await Promise.race([closed.then(() => true), sleep(10_000).then(() => false)]);
  sock.destroy();
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
  return { status, text: answer.slice(answer.indexOf('\r\n\r\n') + 4), written, closedByServer };
}

describe('--max-upload', () => {
  let srv: BootyServerProcess;
  const LIMIT = 1_000_000;
  before(async () => { srv = await startBootyServer({ args: ['--max-upload', String(LIMIT)] }); });
  after(async () => { await srv?.close(); });

  it('a chunked upload over the limit gets a clean 413 and the server stops reading it', async () => {
    const r = await floodChunked(srv.url, '/images/flood.img', 256 * MiB);
    assert.equal(r.status, 413, `answer: ${r.text}`);
    assert.match(r.text, /larger than the server's limit of 1000000 bytes/);
    // the limit, plus at most 1 MiB drained for a clean answer, plus what sits in socket buffers
    assert.ok(r.written < 24 * MiB, `the server kept reading: ${r.written} bytes taken of 256 MiB`);
    assert.ok(r.closedByServer, 'the server closes the connection after its answer');
    await eventually('no temp file left', () => imageFiles(path.join(srv.dataDir, 'images')).length === 0);
  });

  it('declared (Content-Length) and multipart uploads over the limit: 413, nothing left', async () => {
    const declared = await call(`${srv.url}/images/declared.img`, { method: 'PUT', body: randomBytes(LIMIT + 1) });
    assert.equal(declared.status, 413);
    const fd = new FormData();
    fd.append('BootyImage', new Blob([randomBytes(LIMIT + 10)]), 'aa:bb:cc:dd:ee:ff.img');
    const multipart = await fetch(`${srv.url}/image`, { method: 'POST', body: fd }).catch(() => undefined);
    assert.ok(multipart === undefined || multipart.status === 413, `multipart: ${multipart?.status}`);
    await eventually('no temp file left', () => imageFiles(path.join(srv.dataDir, 'images')).length === 0);
  });

  it('resumable: a declared size or a part beyond the limit is refused with 413', async () => {
    const big = await call(`${srv.url}/api/uploads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'big.img', size: LIMIT + 1 }) });
    assert.equal(big.status, 413);
    const id = (await call(`${srv.url}/api/uploads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'parts.img', partSize: 512 * 1024 }) })).json.id as string;
    const p0 = randomBytes(512 * 1024);
    assert.equal((await call(`${srv.url}/api/uploads/${id}/parts/0`, { method: 'PUT', headers: { 'x-booty-sha256': sha(p0) }, body: p0 })).status, 200);
    const p1 = randomBytes(512 * 1024);
    const over = await call(`${srv.url}/api/uploads/${id}/parts/1`, { method: 'PUT', headers: { 'x-booty-sha256': sha(p1) }, body: p1 });
    assert.equal(over.status, 413);
    assert.match(over.json.error as string, /limit of 1000000 bytes/);
    const beyond = await call(`${srv.url}/api/uploads/${id}/parts/5`, { method: 'PUT', headers: { 'x-booty-sha256': sha('x') }, body: 'x' });
    assert.equal(beyond.status, 413);
    // the client side says so clearly
    const data = randomBytes(LIMIT + 300_000);
    await assert.rejects(uploadToBootyServer({ url: `${srv.url}/images/client.img`, body: Readable.from([data]), partSize: 256 * 1024, retryForMs: 10_000, sent: () => ({ size: data.length, sha256: sha(data) }) }),
      (e: unknown) => e instanceof UploadRejected && e.status === 413 && /limit of 1000000 bytes/.test(e.message));
    assert.deepEqual(imageFiles(path.join(srv.dataDir, 'images')), []);
  });
});

describe('two uploads of one name at once', () => {
  let srv: BootyServerProcess;
  before(async () => { srv = await startBootyServer(); });
  after(async () => { await srv?.close(); });

  it('plain PUT: one is stored whole, the other gets 409; repeated 10 times', async () => {
    for (let round = 0; round < 10; round++) {
      const name = `race-${round}.img`;
      const bodies = [randomBytes(3 * MiB), randomBytes(3 * MiB + 1)];
      const rs = await Promise.all(bodies.map((b) => call(`${srv.url}/images/${name}`, { method: 'PUT', body: Readable.from([b.subarray(0, MiB), b.subarray(MiB)]) })));
      const statuses = rs.map((r) => r.status).sort();
      assert.deepEqual(statuses, [201, 409], `round ${round}: ${rs.map((r) => `${r.status} ${r.text}`).join(' | ')}`);
      const loser = rs.find((r) => r.status === 409)!;
      assert.match(loser.json.error as string, new RegExp(`image "${name}" already exists`));
      const stored = fs.readFileSync(path.join(srv.dataDir, 'images', name));
      assert.ok(stored.equals(bodies[rs.findIndex((r) => r.status === 201)]), 'the stored file is the winner, whole');
    }
    assert.deepEqual(imageFiles(path.join(srv.dataDir, 'images')).filter((f) => f.startsWith('.')), [], 'no temp file left');
  });

  it('resumable: both sessions upload, the first commit wins, the second gets 409, nothing mixed', async () => {
    const data = [randomBytes(2 * MiB), randomBytes(2 * MiB)];
    const results = await Promise.allSettled(data.map((d) => uploadToBootyServer({
      url: `${srv.url}/images/race-parts.img`, body: Readable.from([d]), partSize: 256 * 1024, retryForMs: 10_000, sent: () => ({ size: d.length, sha256: sha(d) }),
    })));
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(ok.length, 1);
    assert.equal(refused.length, 1);
    assert.ok(refused[0].reason instanceof UploadRejected && refused[0].reason.status === 409, String(refused[0].reason));
    assert.match((refused[0].reason as Error).message, /already exists/);
    const stored = fs.readFileSync(path.join(srv.dataDir, 'images', 'race-parts.img'));
    assert.ok(stored.equals(data[results.findIndex((r) => r.status === 'fulfilled')]));
    assert.deepEqual(fs.readdirSync(path.join(srv.dataDir, 'images', '.uploads')), [], 'both sessions are gone');
  });
});

describe('the data disk fills up mid-upload (8 MiB tmpfs)', { skip: !isRoot && 'needs root (mount tmpfs)' }, () => {
  let mnt: string;
  let srv: BootyServerProcess;
  before(async () => {
    mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'booty-test-full', mnt]);
    srv = await startBootyServer({ dataDir: path.join(mnt, 'data') });
  });
  after(async () => {
    await srv?.close();
    if (mnt) {
      try { execFileSync('umount', [mnt]); } catch { /* not mounted */ }
      fs.rmSync(mnt, { recursive: true, force: true });
    }
  });

  const images = () => path.join(mnt, 'data', 'images');

  it('plain PUT: 507, no final file, temp removed', async () => {
    const r = await call(`${srv.url}/images/full.img`, { method: 'PUT', body: Readable.from([randomBytes(6 * MiB), randomBytes(6 * MiB)]) }).catch((e: Error) => ({ status: 0, text: e.message, json: {} }));
    assert.equal(r.status, 507, r.text);
    assert.match(r.text, /data disk is full; nothing was stored/);
    await eventually('temp removed', () => imageFiles(images()).length === 0);
  });

  it('multipart: 507, nothing left', async () => {
    const fd = new FormData();
    fd.append('BootyImage', new Blob([randomBytes(12 * MiB)]), 'aa:bb:cc:dd:ee:ff.img');
    const r = await fetch(`${srv.url}/image`, { method: 'POST', body: fd }).catch(() => undefined);
    assert.ok(r === undefined || r.status === 507, `status ${r?.status}`);
    await eventually('temp removed', () => imageFiles(images()).length === 0);
  });

  it('resumable: 507 for the part that does not fit, the whole session deleted, the client fails clearly', async () => {
    const data = randomBytes(12 * MiB);
    await assert.rejects(uploadToBootyServer({ url: `${srv.url}/images/full-parts.img`, body: Readable.from([data]), partSize: MiB, retryForMs: 10_000, sent: () => ({ size: data.length, sha256: sha(data) }) }),
      (e: unknown) => e instanceof UploadRejected && e.status === 507 && /data disk is full/.test(e.message));
    assert.deepEqual(imageFiles(images()), []);
    assert.deepEqual(fs.readdirSync(path.join(images(), '.uploads')), [], 'the session and its parts are gone');
  });

  it('afterwards the space is back: a small upload is stored', async () => {
    const small = randomBytes(MiB);
    const r = await call(`${srv.url}/images/small.img`, { method: 'PUT', body: small });
    assert.equal(r.status, 201, r.text);
    assert.ok(fs.readFileSync(path.join(images(), 'small.img')).equals(small));
  });
});
