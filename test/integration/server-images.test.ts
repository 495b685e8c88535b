// booty server's images: downloads with Range / If-Range / 416 / HEAD / ETag, and uploads that
// appear under their final name only complete and verified (plain PUT, two-step upload+commit,
// BOOTy's multipart POST), including uploads killed mid-way. Real server process on loopback.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { request } from 'undici';
import { startBootyServer } from '../helpers/booty-server-process.ts';
import type { BootyServerProcess } from '../helpers/booty-server-process.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function call(url: string, init: Parameters<typeof request>[1] = {}) {
  const res = await request(url, init);
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body, text: body.toString() };
}

/** Poll (the server cleans up asynchronously after a client vanishes) up to ~10 s. */
async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) { if (await check()) return; await sleep(100); }
  assert.fail(`never happened: ${what}`);
}

describe('booty server: images', () => {
  let srv: BootyServerProcess;
  let imagesDir: string;
  const raw = randomBytes(3 * 1024 * 1024 + 17);
  const names = async () => (await readdir(imagesDir)).filter((f) => f !== '.meta').sort();

  before(async () => {
    srv = await startBootyServer();
    imagesDir = join(srv.dataDir, 'images');
    await writeFile(join(imagesDir, 'raw.img'), raw); // an image the operator copied in
  });
  after(async () => { await srv.close(); });

  it('HEAD: length, ETag, Accept-Ranges, X-Image-Size of a raw image', async () => {
    const r = await call(`${srv.url}/images/raw.img`, { method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], String(raw.length));
    assert.equal(r.headers['accept-ranges'], 'bytes');
    assert.equal(r.headers['x-image-size'], String(raw.length));
    assert.match(String(r.headers.etag), /^"[0-9a-f-]+"$/);
    assert.equal(r.body.length, 0);
  });

  it('GET whole, Range, suffix Range, If-Range, 416, If-None-Match', async () => {
    const full = await call(`${srv.url}/images/raw.img`);
    assert.equal(full.status, 200);
    assert.ok(full.body.equals(raw));
    const etag = String(full.headers.etag);

    const part = await call(`${srv.url}/images/raw.img`, { headers: { range: 'bytes=1000000-1999999' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], `bytes 1000000-1999999/${raw.length}`);
    assert.ok(part.body.equals(raw.subarray(1000000, 2000000)));

    const tail = await call(`${srv.url}/images/raw.img`, { headers: { range: 'bytes=-10' } });
    assert.equal(tail.status, 206);
    assert.ok(tail.body.equals(raw.subarray(raw.length - 10)));

    const resume = await call(`${srv.url}/images/raw.img`, { headers: { range: 'bytes=3145000-', 'if-range': etag } });
    assert.equal(resume.status, 206);
    assert.ok(resume.body.equals(raw.subarray(3145000)));

    const stale = await call(`${srv.url}/images/raw.img`, { headers: { range: 'bytes=3145000-', 'if-range': '"0-0-0"' } });
    assert.equal(stale.status, 200, 'a changed image is sent whole, never spliced');
    assert.ok(stale.body.equals(raw));

    const beyond = await call(`${srv.url}/images/raw.img`, { headers: { range: `bytes=${raw.length}-` } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers['content-range'], `bytes */${raw.length}`);

    const cached = await call(`${srv.url}/images/raw.img`, { headers: { 'if-none-match': etag } });
    assert.equal(cached.status, 304);

    const missing = await call(`${srv.url}/images/nope.img`);
    assert.equal(missing.status, 404);
    assert.match(missing.text, /no image named/);
  });

  it('plain PUT with X-Booty-Sha256: stored, sidecar, served with X-Image-Sha256; not overwritten unless asked', async () => {
    const img = gzipSync(randomBytes(100_000));
    const r = await call(`${srv.url}/images/put.img.gz`, { method: 'PUT', body: img, headers: { 'x-booty-sha256': sha(img), 'x-image-size': '100000' } });
    assert.equal(r.status, 201, r.text);
    assert.deepStrictEqual({ ...JSON.parse(r.text), storedAt: undefined }, { name: 'put.img.gz', size: img.length, sha256: sha(img), format: 'gzip', uncompressedSize: 100000, storedAt: undefined });
    assert.ok((await readFile(join(imagesDir, 'put.img.gz'))).equals(img));
    const head = await call(`${srv.url}/images/put.img.gz`, { method: 'HEAD' });
    assert.equal(head.headers['x-image-sha256'], sha(img));
    assert.equal(head.headers['x-image-size'], '100000');
    assert.equal(head.headers['x-image-format'], 'gzip');

    const again = await call(`${srv.url}/images/put.img.gz`, { method: 'PUT', body: Buffer.from('other') });
    assert.equal(again.status, 409);
    assert.match(again.text, /already exists; add \?overwrite=1/);
    assert.ok((await readFile(join(imagesDir, 'put.img.gz'))).equals(img), 'the old image is untouched');

    const over = await call(`${srv.url}/images/put.img.gz?overwrite=1`, { method: 'PUT', body: Buffer.from('other') });
    assert.equal(over.status, 201);
    assert.equal((await readFile(join(imagesDir, 'put.img.gz'))).toString(), 'other');
    const head2 = await call(`${srv.url}/images/put.img.gz`, { method: 'HEAD' });
    assert.notEqual(head2.headers.etag, head.headers.etag, 'a replaced image gets a new ETag');
    assert.equal(head2.headers['x-image-size'], '5', 'the old sidecar no longer applies');
    assert.deepStrictEqual(await names(), ['put.img.gz', 'raw.img']);
  });

  it('plain PUT with a wrong sha256: 409 naming both hashes, nothing stored', async () => {
    const body = randomBytes(500_000);
    const wrong = 'f'.repeat(64);
    const r = await call(`${srv.url}/images/wrong.img`, { method: 'PUT', body, headers: { 'x-booty-sha256': wrong } });
    assert.equal(r.status, 409);
    assert.ok(r.text.includes(wrong) && r.text.includes(sha(body)), r.text);
    assert.deepStrictEqual(await names(), ['put.img.gz', 'raw.img']);
  });

  it('chunked PUT with the sha256 in an HTTP trailer: a right one stores, a wrong one does not', async () => {
    const { port } = new URL(srv.url);
    const body = randomBytes(700_000);
    const put = (name: string, trailerSha: string) => new Promise<{ status: number; text: string }>((ok, fail) => {
      const req = httpRequest({ host: '127.0.0.1', port, method: 'PUT', path: `/images/${name}`, headers: { trailer: 'X-Booty-Sha256' } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (x: string) => { text += x; }).on('end', () => ok({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', fail);
      req.write(body.subarray(0, 300_000));
      req.write(body.subarray(300_000));
      req.addTrailers({ 'X-Booty-Sha256': trailerSha });
      req.end();
    });
    const bad = await put('trailer-bad.img', 'e'.repeat(64));
    assert.equal(bad.status, 409);
    assert.ok(bad.text.includes('e'.repeat(64)) && bad.text.includes(sha(body)));
    const good = await put('trailer.img', sha(body));
    assert.equal(good.status, 201, good.text);
    assert.ok((await readFile(join(imagesDir, 'trailer.img'))).equals(body));
    assert.deepStrictEqual(await names(), ['put.img.gz', 'raw.img', 'trailer.img']);
    await rm(join(imagesDir, 'trailer.img'));
  });

  it('two-step upload: PUT ?upload=<id> then POST ?commit=<id>; a mismatched commit stores nothing', async () => {
    const body = randomBytes(1_200_000);
    const up = await call(`${srv.url}/images/two.img?upload=abc123`, { method: 'PUT', body });
    assert.equal(up.status, 202, up.text);
    assert.deepStrictEqual(JSON.parse(up.text), { name: 'two.img', upload: 'abc123', size: body.length, sha256: sha(body) });
    assert.ok((await names()).includes('.two.img.upload-abc123'));
    assert.equal((await call(`${srv.url}/images/two.img`)).status, 404, 'nothing under the final name before the commit');

    const bad = await call(`${srv.url}/images/two.img?commit=abc123`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ size: body.length, sha256: '0'.repeat(64) }) });
    assert.equal(bad.status, 409);
    assert.ok(bad.text.includes('0'.repeat(64)) && bad.text.includes(sha(body)), bad.text);
    assert.deepStrictEqual(await names(), ['put.img.gz', 'raw.img'], 'temp deleted, nothing final');
    assert.equal((await call(`${srv.url}/images/two.img?commit=abc123`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ size: body.length, sha256: sha(body) }) })).status, 404);

    assert.equal((await call(`${srv.url}/images/two.img?upload=def`, { method: 'PUT', body })).status, 202);
    const ok = await call(`${srv.url}/images/two.img?commit=def`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ size: body.length, sha256: sha(body) }) });
    assert.equal(ok.status, 200, ok.text);
    assert.ok((await readFile(join(imagesDir, 'two.img'))).equals(body));
    assert.deepStrictEqual(await names(), ['put.img.gz', 'raw.img', 'two.img']);
  });

  it('refuses traversal, NUL, hidden and over-long names with 400', async () => {
    // node:http sends the path as written (URL-parsing clients would fold "/images/.." away)
    const { port } = new URL(srv.url);
    const raw = (path: string) => new Promise<{ status: number; text: string }>((ok, fail) => {
      const req = httpRequest({ host: '127.0.0.1', port, method: 'PUT', path }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (s: string) => { text += s; }).on('end', () => ok({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', fail);
      req.end('x');
    });
    for (const n of ['..%2Fescape', '%2E%2E', '..', '.hidden', 'a%00b', 'x'.repeat(181), 'a%5Cb', '.meta', '.two.img.upload-abc']) {
      const r = await raw(`/images/${n}`);
      assert.equal(r.status, 400, `${n}: ${r.status} ${r.text}`);
      assert.match(r.text, /refused image name/);
    }
    const get = await call(`${srv.url}/images/..%2F..%2Fdefault.json`);
    assert.equal(get.status, 400);
    assert.deepStrictEqual(await names(), ['put.img.gz', 'raw.img', 'two.img']);
  });

  it('an upload killed mid-way leaves no final file and no temp file', async () => {
    const { port } = new URL(srv.url);
    for (const framing of ['content-length', 'chunked'] as const) {
      const name = `killed-${framing}.img`;
      const sock = connect(Number(port), '127.0.0.1');
      await new Promise<void>((ok) => sock.once('connect', () => ok()));
      const head = framing === 'chunked' ? 'Transfer-Encoding: chunked' : 'Content-Length: 10000000';
      sock.write(`PUT /images/${name} HTTP/1.1\r\nHost: 127.0.0.1\r\n${head}\r\n\r\n`);
      const piece = randomBytes(1 << 20);
      sock.write(framing === 'chunked' ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece);
      await eventually('the server starts writing the temp file', async () => (await names()).some((f) => f.startsWith(`.${name}.upload-`)));
      sock.destroy();
      await eventually('the temp file is removed', async () => !(await names()).some((f) => f.includes(name)));
      assert.equal((await call(`${srv.url}/images/${name}`)).status, 404);
    }
    assert.ok(srv.logRecords().some((r) => String(r.msg).startsWith('PUT /images/killed-content-length.img') && r.aborted === true), srv.stderr());
  });

  it("BOOTy's multipart POST /image (streamed, chunked, Go-style) is stored under the dashed MAC", async () => {
    const data = randomBytes(2_000_000);
    const boundary = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e';
    const { port } = new URL(srv.url);
    const status = await new Promise<{ status: number; text: string }>((ok, fail) => {
      const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/image', headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'user-agent': 'Go-http-client/1.1' } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (s: string) => { text += s; }).on('end', () => ok({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', fail);
      req.write(`--${boundary}\r\nContent-Disposition: form-data; name="BootyImage"; filename="52:54:00:AB:CD:EF.img"\r\nContent-Type: application/octet-stream\r\n\r\n`);
      for (let i = 0; i < data.length; i += 65536) req.write(data.subarray(i, i + 65536));
      req.end(`\r\n--${boundary}--\r\n`);
    });
    assert.equal(status.status, 200, status.text);
    assert.equal(JSON.parse(status.text).name, '52-54-00-ab-cd-ef.img');
    assert.ok((await readFile(join(imagesDir, '52-54-00-ab-cd-ef.img'))).equals(data));

    // the same again is refused (exists), with ?overwrite=1 accepted; via the platform's FormData encoder
    const fd = new FormData();
    fd.append('BootyImage', new Blob([Buffer.from('second')]), '52:54:00:ab:cd:ef.img');
    const refused = await fetch(`${srv.url}/image`, { method: 'POST', body: fd });
    assert.equal(refused.status, 409);
    const fd2 = new FormData();
    fd2.append('other', 'field first');
    fd2.append('BootyImage', new Blob([Buffer.from('second')]), '52:54:00:ab:cd:ef.img');
    const replaced = await fetch(`${srv.url}/image?overwrite=1`, { method: 'POST', body: fd2 });
    assert.equal(replaced.status, 200, await replaced.text());
    assert.equal((await readFile(join(imagesDir, '52-54-00-ab-cd-ef.img'))).toString(), 'second');
  });

  it('a multipart upload cut before its closing boundary stores nothing', async () => {
    const { port } = new URL(srv.url);
    const boundary = 'xyzzy';
    const sock = connect(Number(port), '127.0.0.1');
    await new Promise<void>((ok) => sock.once('connect', () => ok()));
    const part = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="BootyImage"; filename="aa:bb:cc:dd:ee:ff.zmg"\r\n\r\n`),
      randomBytes(300_000),
    ]);
    sock.write(`POST /image HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${part.length + 100000}\r\n\r\n`);
    sock.write(part);
    await eventually('the temp file appears', async () => (await names()).some((f) => f.startsWith('.aa-bb-cc-dd-ee-ff.zmg.upload-')));
    sock.destroy();
    await eventually('the temp file is removed', async () => !(await names()).some((f) => f.includes('aa-bb-cc-dd-ee-ff')));

    const noFile = new FormData();
    noFile.append('something', 'else');
    const r = await fetch(`${srv.url}/image`, { method: 'POST', body: noFile });
    assert.equal(r.status, 400);
    assert.match(await r.text(), /BootyImage/);
  });

  it('--max-upload: an oversized upload is refused and leaves nothing', async () => {
    const small = await startBootyServer({ args: ['--max-upload', '100000'] });
    try {
      const declared = await call(`${small.url}/images/big.img`, { method: 'PUT', body: randomBytes(200_000) });
      assert.equal(declared.status, 413);
      assert.match(declared.text, /larger than the server's limit of 100000 bytes/);
      // chunked: the server only finds out while receiving; the client may see a reset instead
      async function* gen() { for (let i = 0; i < 20; i++) yield randomBytes(20_000); }
      const chunked = await call(`${small.url}/images/big2.img`, { method: 'PUT', body: Readable.from(gen()) }).catch((e: Error) => ({ status: 0, text: e.message }));
      assert.ok(chunked.status === 413 || chunked.status === 0, `${chunked.status} ${chunked.text}`);
      const dir = join(small.dataDir, 'images');
      await eventually('no temp file left', async () => (await readdir(dir)).filter((f) => f !== '.meta').length === 0);
      assert.equal((await call(`${small.url}/images/under.img`, { method: 'PUT', body: randomBytes(99_999) })).status, 201);
    } finally { await small.close(); }
  });

  it('GET /api/images lists the catalog with sizes and checksums', async () => {
    const r = await call(`${srv.url}/api/images`);
    const list = JSON.parse(r.text).images as { name: string; size: number; sha256?: string }[];
    assert.deepStrictEqual(list.map((i) => i.name), ['52-54-00-ab-cd-ef.img', 'put.img.gz', 'raw.img', 'two.img']);
    assert.equal(list.find((i) => i.name === 'two.img')?.sha256?.length, 64);
    assert.equal(list.find((i) => i.name === 'raw.img')?.sha256, undefined, 'copied-in images have no sidecar');
  });
});
