// booty server under load on loopback: 50 concurrent image downloads and 10 concurrent uploads
// (5 resumable in parts, 5 plain streamed PUTs) at the same time, against the real server
// process. Every download is hashed as it streams and must match; every upload must be stored
// bit-exact. The server's memory is sampled from /proc/<pid>/status (VmRSS) all along, and its
// VmHWM read at the end: it must stay bounded (streams with backpressure, nothing buffered per
// transfer beyond a chunk or a write batch). Prints throughput and peak RSS; no timing asserts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import { startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { uploadToBootyServer } from '../../src/image/upload/upload-resumable.ts';

const MiB = 1 << 20;
const DOWNLOADS = 50;
const UPLOADS = 10;
const IMAGE_SIZE = 12 * MiB;
const UPLOAD_SIZE = 16 * MiB;
const RSS_LIMIT = 400 * MiB;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function kib(status: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return m === null ? 0 : Number(m[1]) * 1024;
}

let srv: BootyServerProcess;
const images: { name: string; data: Buffer; sha256: string }[] = [];

before(async () => {
  srv = await startBootyServer();
  for (let i = 0; i < 4; i++) {
    const data = randomBytes(IMAGE_SIZE + i * 4099);
    const name = `load-${i}.img`;
    fs.writeFileSync(path.join(srv.dataDir, 'images', name), data);
    images.push({ name, data, sha256: sha(data) });
  }
});

after(async () => { await srv?.close(); });

test(`${DOWNLOADS} concurrent downloads and ${UPLOADS} concurrent uploads: bit-exact, server RSS bounded`, { timeout: 300_000 }, async () => {
  const pid = srv.child.pid!;
  const statusOf = () => fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const baseline = kib(statusOf(), 'VmRSS');
  let peak = baseline;
  const sampler = setInterval(() => { try { peak = Math.max(peak, kib(statusOf(), 'VmRSS')); } catch { /* gone */ } }, 25);
  // enough connections for everything at once
  const dispatcher = new Agent({ connections: DOWNLOADS + UPLOADS, headersTimeout: 120_000, bodyTimeout: 120_000 });
  const started = performance.now();
  let downBytes = 0;
  let upBytes = 0;

  const downloads = Array.from({ length: DOWNLOADS }, async (_, i) => {
    const img = images[i % images.length];
    const res = await request(`${srv.url}/images/${img.name}`, { dispatcher });
    assert.equal(res.statusCode, 200);
    const h = createHash('sha256');
    let n = 0;
    for await (const c of res.body) { h.update(c as Buffer); n += (c as Buffer).length; }
    downBytes += n;
    assert.equal(n, img.data.length, `download ${i}: length`);
    assert.equal(h.digest('hex'), img.sha256, `download ${i}: sha256`);
  });

  const uploaded: { name: string; data: Buffer }[] = [];
  const uploads = Array.from({ length: UPLOADS }, async (_, i) => {
    const data = randomBytes(UPLOAD_SIZE + i);
    const name = `up-${i}.img`;
    uploaded.push({ name, data });
    const pieces = (function* () { for (let at = 0; at < data.length; at += MiB) yield data.subarray(at, at + MiB); })();
    if (i % 2 === 0) {
      const r = await uploadToBootyServer({ url: `${srv.url}/images/${name}`, body: Readable.from(pieces), partSize: 4 * MiB, retryForMs: 60_000, sent: () => ({ size: data.length, sha256: sha(data) }) });
      assert.equal(r.protocol, 'parts');
    } else {
      const res = await request(`${srv.url}/images/${name}`, { method: 'PUT', body: Readable.from(pieces), headers: { 'x-booty-sha256': sha(data) }, dispatcher });
      const text = await res.body.text();
      assert.equal(res.statusCode, 201, text);
    }
    upBytes += data.length;
  });

  try {
    await Promise.all([...downloads, ...uploads]);
  } finally {
    clearInterval(sampler);
    await dispatcher.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const status = statusOf();
  const hwm = kib(status, 'VmHWM');
  peak = Math.max(peak, kib(status, 'VmRSS'));
  for (const u of uploaded) assert.ok(fs.readFileSync(path.join(srv.dataDir, 'images', u.name)).equals(u.data), `${u.name} stored bit-exact`);

  const mb = (n: number) => (n / MiB).toFixed(0);
  process.stdout.write(`server-load: ${DOWNLOADS} downloads (${mb(downBytes)} MiB) + ${UPLOADS} uploads (${mb(upBytes)} MiB, 5 in parts, 5 plain PUT) at once, all bit-exact, in ${seconds.toFixed(1)} s: ` +
    `${(downBytes / MiB / seconds).toFixed(0)} MiB/s down, ${(upBytes / MiB / seconds).toFixed(0)} MiB/s up; server RSS ${mb(baseline)} MiB idle, peak ${mb(peak)} MiB sampled, VmHWM ${mb(hwm)} MiB\n`);
  assert.ok(hwm < RSS_LIMIT, `server peak RSS ${mb(hwm)} MiB is not bounded (limit ${mb(RSS_LIMIT)} MiB)`);
});
