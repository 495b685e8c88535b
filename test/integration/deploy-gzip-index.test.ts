// booty server's gzip access-point indexes, end to end over HTTP: the server indexes a pigz image
// in the background and announces it on downloads; deploy then inflates the image in segments on
// worker threads, and the disk holds exactly the image. A gzip(1) image gets no index (and says
// why), a replaced image is never served its old index, a damaged index fails the deploy with a
// message that says what to do, and an agent told not to use the index decodes as one stream.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { request } from 'undici';
import { deploy } from '../../src/image/deploy.ts';
import { HEADER_BYTES, decodeHeader } from '../../src/image/format/gzip-index.ts';
import { isBootyError } from '../../src/util/errors.ts';
import { createLogger } from '../../src/util/log.ts';
import { chooseGzipPath } from '../../src/image/decode-plan.ts';
import { gzipIndexStates, startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';

const MiB = 1 << 20;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function osLikeImage(seed: string): Buffer {
  const text = Buffer.from(`${seed}: /etc/fstab UUID=1234 / ext4 defaults 0 1\n`.repeat(100000));
  return Buffer.concat([text.subarray(0, 2 * MiB), randomBytes(3 * MiB), Buffer.alloc(8 * MiB), text.subarray(0, 3 * MiB), randomBytes(54321)]);
}

/** Polls the catalog until the index state of `name` passes `settled` (a replaced image goes
 *  through 'queued'/'building' before 'ready' again). */
async function indexState(url: string, name: string, settled: (s: string | undefined) => boolean): Promise<string | undefined> {
  for (let i = 0; i < 300; i++) {
    const s = (await gzipIndexStates(url)).get(name);
    if (settled(s)) return s;
    await sleep(100);
  }
  assert.fail(`the index of ${name} never settled (last: ${(await gzipIndexStates(url)).get(name)})`);
}

describe('gzip access-point index: server and deploy', () => {
  let srv: BootyServerProcess;
  let work: string;
  const image = osLikeImage('one');
  const pigzImage = execFileSync('pigz', ['-6', '-c'], { input: image, maxBuffer: 1 << 30 });
  const gzipImage = gzipSync(image);
  // mostly free space, as a fresh OS image: 8 of its 10 segments are all zeros
  const sparseImage = Buffer.concat([image.subarray(0, 2 * MiB), Buffer.alloc(36 * MiB), randomBytes(2 * MiB)]);
  const pigzSparse = execFileSync('pigz', ['-6', '-c'], { input: sparseImage, maxBuffer: 1 << 30 });

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'booty-gzidx-'));
    srv = await startBootyServer();
    await writeFile(join(srv.dataDir, 'images', 'pigz.img.gz'), pigzImage);
    await writeFile(join(srv.dataDir, 'images', 'gzip.img.gz'), gzipImage);
    await writeFile(join(srv.dataDir, 'images', 'sparse.img.gz'), pigzSparse);
    // images copied in by hand are picked up by a reload (as SIGHUP does)
    await request(`${srv.url}/api/reload`, { method: 'POST' }).then((r) => r.body.dump());
  });
  after(async () => {
    await srv.close();
    await rm(work, { recursive: true, force: true });
  });

  const freshDisk = async (name: string, size = image.length + MiB) => {
    const p = join(work, name);
    await writeFile(p, '');
    await truncate(p, size);
    return p;
  };

  it('indexes the pigz image and announces the index; refuses the gzip(1) one with a reason', async () => {
    assert.equal(await indexState(srv.url, 'pigz.img.gz', (s) => s === 'ready'), 'ready');
    const refused = await indexState(srv.url, 'gzip.img.gz', (s) => s?.startsWith('refused') === true);
    assert.match(refused ?? '', /^refused: .*(gzip\(1\)|pigz)/);
    const head = await request(`${srv.url}/images/pigz.img.gz`, { method: 'HEAD' });
    await head.body.dump();
    assert.equal(head.headers['x-booty-gzip-index'], '/image-index/pigz.img.gz');
    assert.equal(head.headers['x-image-size'], String(image.length), 'the index tells the uncompressed size');
    const idx = await request(`${srv.url}/image-index/pigz.img.gz`);
    const body = Buffer.from(await idx.body.arrayBuffer());
    const h = decodeHeader(body.subarray(0, HEADER_BYTES));
    assert.equal(h.sha256, sha(pigzImage));
    assert.equal(h.etag, head.headers.etag, 'the index records the ETag of the image it belongs to');
    const plain = await request(`${srv.url}/images/gzip.img.gz`, { method: 'HEAD' });
    await plain.body.dump();
    assert.equal(plain.headers['x-booty-gzip-index'], undefined);
    const none = await request(`${srv.url}/image-index/gzip.img.gz`);
    assert.equal(none.statusCode, 404);
    assert.match(await none.body.text(), /refused/);
  });

  it('deploy inflates the indexed image in segments; the disk holds exactly the image', async () => {
    const disk = await freshDisk('disk-a');
    const r = await deploy({ image: `${srv.url}/images/pigz.img.gz`, disk, workers: 2 });
    assert.equal(r.decodedOn, 'segments');
    assert.equal(r.segments, Math.ceil(image.length / (4 * MiB)));
    assert.equal(r.bytesWritten, image.length);
    assert.equal(r.sha256, sha(pigzImage));
    assert.equal(sha((await readFile(disk)).subarray(0, image.length)), sha(image));
  });

  it('without the index (gzipIndex false) and for the gzip(1) image: one stream, same bytes', async () => {
    const disk = await freshDisk('disk-b');
    const r = await deploy({ image: `${srv.url}/images/pigz.img.gz`, disk, workers: 2, gzipIndex: false });
    assert.notEqual(r.decodedOn, 'segments');
    assert.equal(sha((await readFile(disk)).subarray(0, image.length)), sha(image));
    const r2 = await deploy({ image: `${srv.url}/images/gzip.img.gz`, disk, workers: 2 });
    assert.notEqual(r2.decodedOn, 'segments');
    assert.equal(sha((await readFile(disk)).subarray(0, image.length)), sha(image));
  });

  it("by default the path is chosen by cost (decode-plan.ts) from the index's all-zero segments, and the log says why", async () => {
    assert.equal(await indexState(srv.url, 'sparse.img.gz', (s) => s === 'ready'), 'ready');
    const cases = [
      // osLikeImage: 5 segments, the third (8-12 MiB) all zeros
      { name: 'pigz.img.gz', raw: image, summary: { segments: 5, zeroSegments: 1, totalBytes: image.length, zeroBytes: 4 * MiB } },
      { name: 'sparse.img.gz', raw: sparseImage, summary: { segments: 10, zeroSegments: 8, totalBytes: sparseImage.length, zeroBytes: 32 * MiB } },
    ];
    for (const c of cases) {
      const expected = chooseGzipPath({ cores: availableParallelism(), index: c.summary });
      const lines: string[] = [];
      const log = createLogger({ level: 'debug', sinks: [(level, m) => lines.push(`${level}: ${m}`)] });
      const disk = await freshDisk(`disk-plan-${c.name}`, c.raw.length + MiB);
      const r = await deploy({ image: `${srv.url}/images/${c.name}`, disk, log });
      assert.equal(r.decodedOn === 'segments' ? 'segments' : 'stream', expected.path, `${c.name}: ${lines.join('\n')}`);
      const said = lines.find((l) => l.includes('deploy: gzip ') && l.includes(expected.reason));
      assert.ok(said !== undefined, `${c.name}: the log gives the reason "${expected.reason}":\n${lines.join('\n')}`);
      assert.equal(sha((await readFile(disk)).subarray(0, c.raw.length)), sha(c.raw));
    }
  });

  it('a damaged index fails the deploy: what broke, the disk state, what to do', async () => {
    const idxPath = join(srv.dataDir, 'images', '.meta', 'pigz.img.gz.gzidx');
    const good = await readFile(idxPath);
    const bad = Buffer.from(good);
    // flip bits all through the window prefixes and records (not the header: that is matched first)
    for (let i = HEADER_BYTES + 4096; i < bad.length; i += 997) bad[i] ^= 0x21;
    await writeFile(idxPath, bad);
    // (the server reads the index file afresh per request; its ETag check still passes)
    const disk = await freshDisk('disk-c');
    try {
      await assert.rejects(deploy({ image: `${srv.url}/images/pigz.img.gz`, disk, workers: 2 }), (e: unknown) => {
        assert.ok(isBootyError(e), String(e));
        assert.equal(e.stage, 'decompress');
        assert.ok(['IMAGE_CORRUPT', 'GZIP_INDEX_FAILED'].includes(e.code), e.code);
        assert.match(e.message, /gzip segment \d+|gzip index/);
        assert.match(e.hint ?? '', /--no-gzip-index/);
        assert.notEqual(e.diskState, 'complete');
        return true;
      });
    } finally {
      await writeFile(idxPath, good);
    }
  });

  it('a replaced image is never served its old index; the new one is indexed', async () => {
    const image2 = osLikeImage('two');
    const pigz2 = execFileSync('pigz', ['-6', '-c'], { input: image2, maxBuffer: 1 << 30 });
    const put = await request(`${srv.url}/images/pigz.img.gz?overwrite=1`, { method: 'PUT', body: pigz2 });
    assert.equal(put.statusCode, 201, await put.body.text());
    assert.equal(await indexState(srv.url, 'pigz.img.gz', (s) => s === 'ready'), 'ready');
    const head = await request(`${srv.url}/images/pigz.img.gz`, { method: 'HEAD' });
    await head.body.dump();
    const idx = Buffer.from(await (await request(`${srv.url}/image-index/pigz.img.gz`)).body.arrayBuffer());
    assert.equal(decodeHeader(idx.subarray(0, HEADER_BYTES)).etag, head.headers.etag);
    assert.equal(decodeHeader(idx.subarray(0, HEADER_BYTES)).sha256, sha(pigz2));
    const disk = await freshDisk('disk-d');
    const r = await deploy({ image: `${srv.url}/images/pigz.img.gz`, disk, workers: 3 });
    assert.equal(r.decodedOn, 'segments');
    assert.equal(sha((await readFile(disk)).subarray(0, image2.length)), sha(image2));
  });
});
