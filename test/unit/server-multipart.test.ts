import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { zstdCompressSync, gzipSync } from 'node:zlib';
import { MultipartError, MultipartReader, boundaryOf, parseHeaderParams } from '../../src/server/multipart.ts';
import { detectFormat } from '../../src/server/image-store.ts';
import { zstdFrameContentSize as zstdContentSize } from '../../src/image/format/detect.ts';
import { parseZstdFrameStart } from '../../src/image/format/frame-format.ts';

/** Encode with the platform's own FormData encoder (what fetch/undici send). */
async function encode(fd: FormData): Promise<{ body: Buffer; boundary: string }> {
  const res = new Response(fd);
  const boundary = boundaryOf(res.headers.get('content-type') ?? '');
  assert.ok(boundary !== undefined);
  return { body: Buffer.from(await res.arrayBuffer()), boundary };
}

async function* chunked(buf: Buffer, sizes: () => number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length;) { const n = Math.max(1, sizes()); yield buf.subarray(i, i + n); i += n; }
}

async function readAll(body: Buffer, boundary: string, sizes: () => number) {
  const reader = new MultipartReader(chunked(body, sizes), boundary);
  const parts: { name?: string; filename?: string; data: Buffer; type?: string }[] = [];
  for (let p = await reader.nextPart(); p !== null; p = await reader.nextPart()) {
    const chunks: Buffer[] = [];
    for await (const c of p.body) chunks.push(Buffer.from(c));
    parts.push({ name: p.name, filename: p.filename, data: Buffer.concat(chunks), type: p.headers['content-type'] });
  }
  return parts;
}

describe('MultipartReader', () => {
  it('reads fields and files split at every kind of chunk boundary', async () => {
    const file = randomBytes(200_000);
    // plant delimiter look-alikes inside the file
    const fd = new FormData();
    fd.append('note', 'hello\r\n--not-a-boundary\r\n');
    const { boundary: b0 } = await encode(new FormData());
    file.write(`\r\n--${b0.slice(0, 10)}`, 5000, 'latin1');
    file.write('\r\n--', 9000, 'latin1');
    fd.append('BootyImage', new Blob([file]), 'AA:BB:CC:DD:EE:FF.img');
    fd.append('after', 'x');
    const { body, boundary } = await encode(fd);
    let seed = 1;
    const random = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % 70000; };
    for (const sizes of [() => 7, () => boundary.length + 3, random, () => body.length]) {
      const parts = await readAll(body, boundary, sizes);
      assert.equal(parts.length, 3);
      assert.equal(parts[0].name, 'note');
      assert.equal(parts[0].data.toString(), 'hello\r\n--not-a-boundary\r\n');
      assert.equal(parts[1].name, 'BootyImage');
      assert.equal(parts[1].filename, 'AA:BB:CC:DD:EE:FF.img');
      assert.ok(parts[1].data.equals(file), 'file bytes differ');
      assert.equal(parts[2].data.toString(), 'x');
    }
  });

  it('one byte at a time', async () => {
    const fd = new FormData();
    const file = randomBytes(3000);
    file.write('\r\n--', 100, 'latin1');
    fd.append('BootyImage', new Blob([file]), 'a.img');
    const { body, boundary } = await encode(fd);
    const parts = await readAll(body, boundary, () => 1);
    assert.equal(parts.length, 1);
    assert.ok(parts[0].data.equals(file));
  });

  it('skips an unread part when the next one is asked for', async () => {
    const fd = new FormData();
    fd.append('skip', new Blob([randomBytes(50_000)]), 'a.bin');
    fd.append('BootyImage', new Blob([Buffer.from('payload')]), 'b.img');
    const { body, boundary } = await encode(fd);
    const reader = new MultipartReader(chunked(body, () => 1000), boundary);
    assert.equal((await reader.nextPart())?.name, 'skip');
    const p = await reader.nextPart();
    assert.equal(p?.filename, 'b.img');
    const got: Buffer[] = [];
    for await (const c of p!.body) got.push(c);
    assert.equal(Buffer.concat(got).toString(), 'payload');
    assert.equal(await reader.nextPart(), null);
  });

  it('a truncated body is an error, never a short file', async () => {
    const fd = new FormData();
    fd.append('BootyImage', new Blob([randomBytes(10_000)]), 'x.img');
    const { body, boundary } = await encode(fd);
    for (const cut of [10, 150, 5000, body.length - boundary.length - 4, body.length - 3]) {
      await assert.rejects(readAll(body.subarray(0, cut), boundary, () => 512), MultipartError, `cut at ${cut}`);
    }
  });

  it('hand-written body as Go writes it (CRLF, preamble, transport padding)', async () => {
    const b = 'b2f1e5c0a9d8';
    const text = `preamble\r\n--${b}  \r\nContent-Disposition: form-data; name="BootyImage"; filename="52:54:00:12:34:56.zmg"\r\nContent-Type: application/octet-stream\r\n\r\nDATA\r\n--${b}--\r\nepilogue`;
    const parts = await readAll(Buffer.from(text), b, () => 3);
    assert.equal(parts.length, 1);
    assert.equal(parts[0].filename, '52:54:00:12:34:56.zmg');
    assert.equal(parts[0].type, 'application/octet-stream');
    assert.equal(parts[0].data.toString(), 'DATA');
  });

  it('refuses garbage', async () => {
    await assert.rejects(readAll(Buffer.from('no boundary here at all'), 'xyz', () => 4), /no boundary/);
    await assert.rejects(readAll(Buffer.from('--xyz\r\nbroken header line\r\n\r\nx\r\n--xyz--'), 'xyz', () => 4), /malformed part header/);
    await assert.rejects(readAll(Buffer.from(`--xyz\r\nA: ${'a'.repeat(20000)}`), 'xyz', () => 4096), /longer than/);
  });

  it('boundary and header parameters', () => {
    assert.equal(boundaryOf('multipart/form-data; boundary=abc'), 'abc');
    assert.equal(boundaryOf('Multipart/Form-Data; charset=utf-8; boundary="a b:c"'), 'a b:c');
    assert.equal(boundaryOf('application/json'), undefined);
    assert.equal(boundaryOf('multipart/form-data'), undefined);
    assert.equal(boundaryOf(`multipart/form-data; boundary=${'x'.repeat(71)}`), undefined);
    assert.deepStrictEqual(parseHeaderParams('form-data; name="a\\"b"; filename=c.img'), { name: 'a"b', filename: 'c.img' });
  });
});

describe('image format sniffing for X-Image-Size', () => {
  it('gzip, zstd, raw, or a format the agent refuses, by their first bytes', () => {
    assert.equal(detectFormat(gzipSync(Buffer.from('x'))), 'gzip');
    assert.equal(detectFormat(zstdCompressSync(Buffer.from('x'))), 'zstd');
    assert.equal(detectFormat(Buffer.from('hsqs....')), 'unsupported: squashfs');
    assert.equal(detectFormat(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 4])), 'xz');
    assert.equal(detectFormat(Buffer.from('LZIP\x01\x14')), 'unsupported: lzip');
    const mbr = Buffer.alloc(512);
    mbr.set([0xeb, 0x63, 0x90]); mbr[510] = 0x55; mbr[511] = 0xaa;
    assert.equal(detectFormat(mbr), 'raw');
    assert.equal(detectFormat(Buffer.alloc(0)), 'raw');
  });
  it('zstd frame content size, when the compressor wrote it', () => {
    for (const n of [0, 1, 255, 256, 300, 65791, 65792, 1 << 20, 5_000_000]) {
      // one-shot compression knows the size and writes it into the frame header
      const z = zstdCompressSync(Buffer.alloc(n, 7));
      assert.equal(zstdContentSize(z.subarray(0, 32)), n, `n=${n}`);
    }
    // hand-built headers: FHD 0xa0 = FCS flag 2 (4 bytes), single segment (no window byte)
    const h = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xa0, 0x78, 0x56, 0x34, 0x12]);
    assert.equal(zstdContentSize(h), 0x12345678);
    const h8 = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xc0, 0x00, 0, 0, 0, 0, 2, 0, 0, 0]); // window byte, 8-byte FCS
    assert.equal(zstdContentSize(h8), 2 * 2 ** 32);
    assert.equal(zstdContentSize(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00])), undefined);
    // beyond 2^53: the one parser says Infinity (no disk holds it), never a rounded number; the
    // first-frame hint is then no hint at all (the four parsers of old disagreed here)
    const huge = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xc0, 0x00, 1, 0, 0, 0, 0, 0, 0x20, 0]);
    const start = parseZstdFrameStart(huge);
    assert.equal(start.kind === 'frame' ? start.header.contentSize : 'not a frame', Infinity);
    assert.equal(zstdContentSize(huge), undefined);
  });
});
