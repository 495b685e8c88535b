// Peer to peer across replicas (issue 21): two real `booty server --p2p` processes on one
// PostgreSQL (a throwaway cluster, test/helpers/postgres.ts), each with its own data directory.
// An image uploaded through A only: B serves its metainfo from the info dictionary A recorded in
// the shared catalog (same infohash and piece hashes as A's; announce and web seed on B's URL;
// the ETag of A's copy, which a resume's If-Range against A must match), B's tracker accepts the
// swarm (and still refuses any other), and a real `booty rack` seed and a real `booty deploy --p2p`
// agent, both given B's URL only, deploy it bit-exact from the rack's peers, the seed reading the
// bytes through B's redirect to A.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import bencode from 'bencode';
import { startBootyServer, agentCredentialOf } from '../helpers/booty-server-process.ts';
import type { BootyServerProcess } from '../helpers/booty-server-process.ts';
import { runBooty } from '../helpers/booty-cli.ts';
import { sha256OfFile, waitForOutput } from '../helpers/child-output.ts';
import { openImage } from '../../src/image/source/fetch.ts';
import { parseTorrentFile } from '../../src/p2p/metainfo.ts';
import type { Metainfo } from '../../src/p2p/metainfo.ts';
import { postgresPresent, startPostgres } from '../helpers/postgres.ts';
import type { TestPostgres } from '../helpers/postgres.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';

const booty = resolve(import.meta.dirname, '..', '..', 'bin', 'booty');
const NAME = 'swarm.img.zst';
const MAC = '52-54-00-21-21-01';
const skip = skipUnlessPresent(postgresPresent(), 'PostgreSQL is not installed (scripts/host-deps.sh: postgresql)');

/** GET with a deadline, again while the answer is `retryOn` (503: the holder is still computing). */
async function until(what: string, get: () => Promise<Response>, done: (r: Response) => boolean, ms = 60_000): Promise<Response> {
  const end = performance.now() + ms;
  let last = '';
  for (;;) {
    const r = await get();
    if (done(r)) return r;
    last = `${r.status} ${await r.text()}`;
    if (performance.now() > end) throw new Error(`${what}: not within ${ms / 1000} s (last: ${last})`);
    await new Promise((ok) => setTimeout(ok, 250));
  }
}

/** An HTTP announce (BEP 3) to a rack tracker, decoded. */
async function announce(base: string, infoHash: string, port: number): Promise<Record<string, unknown>> {
  const bin = (hex: string) => [...Buffer.from(hex, 'hex')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
  const peerId = bin(randomBytes(20).toString('hex'));
  const r = await fetch(`${base}/p2p/auto/announce?info_hash=${bin(infoHash)}&peer_id=${peerId}&port=${port}&uploaded=0&downloaded=0&left=1000&compact=1&event=started`);
  assert.equal(r.status, 200);
  return bencode.decode(Buffer.from(await r.arrayBuffer())) as Record<string, unknown>;
}
const failureOf = (a: Record<string, unknown>) => a['failure reason'] === undefined ? undefined : Buffer.from(a['failure reason'] as Uint8Array).toString();

describe('peer to peer across replicas on one PostgreSQL', { skip }, () => {
  let pg: TestPostgres;
  let a: BootyServerProcess;
  let b: BootyServerProcess;
  let token: string;
  let work: string;
  let raw: Buffer;
  let bytes: Buffer;
  let sha256: string;
  let fromA: { meta: Metainfo; headers: Headers };
  let etagServedByB: string;

  before(async () => {
    pg = await startPostgres();
    await pg.createDatabase('booty');
    work = await mkdtemp(join(tmpdir(), 'booty-replicas-p2p-'));
    // B takes the server secret from the database (no copy): agent credentials are valid on both
    a = await startBootyServer({ args: ['--database', pg.url('booty'), '--p2p', '--log-format', 'json'] });
    b = await startBootyServer({ args: ['--database', pg.url('booty'), '--p2p', '--log-format', 'json'] });
    const made = await runBooty(['tokens', 'add', 'ci', '--database', pg.url('booty')]);
    assert.equal(made.status, 0, made.err);
    token = made.out.trim();
    // a zstd image made by the real zstd: 5 pieces of 1 MiB and a part
    raw = Buffer.concat([randomBytes(3 << 20), Buffer.alloc((2 << 20) + 12345, 0x5a)]);
    await writeFile(join(work, 'swarm.raw'), raw);
    execFileSync('zstd', ['-q', '-1', join(work, 'swarm.raw'), '-o', join(work, NAME)]);
    bytes = await readFile(join(work, NAME));
    sha256 = createHash('sha256').update(bytes).digest('hex');
  });

  after(async () => {
    await a?.close();
    await b?.close();
    await pg?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  const torrent = (url: string, query = '') => fetch(`${url}/image-torrent/${NAME}${query}`, { headers: { authorization: `Bearer ${token}` } });

  it("an image uploaded through A only: B serves its metainfo from the catalog (A's infohash and pieces, B's announce and web seed, A's ETag)", async () => {
    assert.equal((await torrent(b.url)).status, 404, 'no such image yet, anywhere');
    const put = await fetch(`${a.url}/images/${NAME}`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'x-booty-sha256': sha256 }, body: bytes });
    assert.equal(put.status, 201, await put.text());
    const resA = await until("A's metainfo", () => torrent(a.url), (r) => r.status === 200);
    fromA = { meta: parseTorrentFile(Buffer.from(await resA.arrayBuffer())), headers: resA.headers };
    // B: 503 until A has recorded it (Retry-After), then the metainfo
    const resB = await until("B's metainfo of A's image", () => torrent(b.url), (r) => {
      if (r.status === 503) assert.equal(r.headers.get('retry-after'), '5');
      return r.status === 200;
    });
    const meta = parseTorrentFile(Buffer.from(await resB.arrayBuffer()));
    assert.equal(meta.infoHash, fromA.meta.infoHash);
    assert.deepEqual(meta.infoBytes, fromA.meta.infoBytes, 'the info dictionary byte for byte');
    assert.deepEqual(meta.pieceHashes, fromA.meta.pieceHashes);
    assert.equal(meta.pieceCount, Math.ceil(bytes.length / meta.pieceLength));
    assert.equal(meta.length, bytes.length);
    assert.equal(meta.name, NAME);
    // the piece hashes are those of the bytes (not merely equal to A's)
    for (let i = 0; i < meta.pieceCount; i++) {
      const piece = bytes.subarray(i * meta.pieceLength, (i + 1) * meta.pieceLength);
      assert.deepEqual(createHash('sha1').update(piece).digest(), meta.pieceHashes.subarray(i * 20, i * 20 + 20), `piece ${i}`);
    }
    assert.equal(meta.announce, `${b.url}/p2p/auto/announce`);
    assert.deepEqual(meta.urlList, [`${b.url}/images/${NAME}`]);
    assert.equal(fromA.meta.announce, `${a.url}/p2p/auto/announce`);
    // what agents and seeds read of the headers: A's copy's
    const etagOfA = (await fetch(`${a.url}/images/${NAME}`, { method: 'HEAD' })).headers.get('etag');
    assert.ok(etagOfA !== null);
    assert.equal(resB.headers.get('x-image-etag'), etagOfA);
    etagServedByB = etagOfA;
    assert.equal(resB.headers.get('x-booty-infohash'), meta.infoHash);
    assert.equal(resB.headers.get('x-image-sha256'), sha256);
    assert.equal(resB.headers.get('x-image-format'), 'zstd');
    assert.equal(resB.headers.get('x-image-size'), String(raw.length));
    for (const h of ['x-image-etag', 'x-booty-infohash', 'x-image-sha256', 'x-image-format', 'x-image-size']) assert.equal(resB.headers.get(h), fromA.headers.get(h), h);
    // a rack named: its tracker on B
    assert.equal(parseTorrentFile(Buffer.from(await (await torrent(b.url, '?rack=r12')).arrayBuffer())).announce, `${b.url}/p2p/r12/announce`);
    // still fleet access on B: no credential, no metainfo
    assert.equal((await fetch(`${b.url}/image-torrent/${NAME}`)).status, 401);
  });

  it("a resume through B's web seed with If-Range the ETag B served reaches A's copy and is honoured (206, not the whole image)", async () => {
    const resumed = await openImage(`${b.url}/images/${NAME}`, { start: 1_500_000, ifRange: etagServedByB });
    const got: Buffer[] = [];
    for await (const c of resumed.body) got.push(c as Buffer);
    assert.equal(resumed.status, 206);
    assert.equal(resumed.rangeStart, 1_500_000);
    assert.deepEqual(Buffer.concat(got), bytes.subarray(1_500_000));
  });

  it("B's tracker accepts announces for A's image (learnt from the catalog, not from serving it) and refuses any other swarm", async () => {
    // a third replica that has served no metainfo: it knows the swarm from the catalog alone
    const c = await startBootyServer({ args: ['--database', pg.url('booty'), '--p2p', '--log-format', 'json'] });
    try {
      const ok = await announce(c.url, fromA.meta.infoHash, 40001);
      assert.equal(failureOf(ok), undefined, JSON.stringify(ok));
      assert.equal(typeof ok.interval, 'number');
      // a second peer of the swarm learns of the first
      const second = await announce(c.url, fromA.meta.infoHash, 40002);
      assert.equal(failureOf(second), undefined);
      assert.equal(Buffer.from(second.peers as Uint8Array).length, 12, 'both peers (6 bytes each, compact)');
      for (const s of [a, b, c]) {
        const refused = await announce(s.url, randomBytes(20).toString('hex'), 40003);
        assert.match(failureOf(refused) ?? '', /serves the images of its booty server only/, s.url);
      }
      assert.equal(failureOf(await announce(b.url, fromA.meta.infoHash, 40004)), undefined);
    } finally { await c.close(); }
  });

  it('an image whose holder runs without --p2p: B answers 503 (Retry-After) naming the holder, never a metainfo it cannot have', async () => {
    const d = await startBootyServer({ args: ['--database', pg.url('booty'), '--log-format', 'json'] });
    try {
      const small = Buffer.alloc(3 << 20, 0x33);
      const put = await fetch(`${d.url}/images/plain.img`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'x-booty-sha256': createHash('sha256').update(small).digest('hex') }, body: small });
      assert.equal(put.status, 201, await put.text());
      const r = await fetch(`${b.url}/image-torrent/plain.img`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(r.status, 503);
      assert.equal(r.headers.get('retry-after'), '5');
      assert.match(await r.text(), new RegExp(`replica ${d.url.replace(/[.:/]/g, '\\$&')}, which holds the image and must run with --p2p`));
      // the image itself is still served through B (redirected to its holder)
      assert.deepEqual(Buffer.from(await (await fetch(`${b.url}/images/plain.img`)).arrayBuffer()), small);
    } finally { await d.close(); }
  });

  it('a rack seed and an agent given only B\'s URL deploy A\'s image from peers, bit-exact', { timeout: 5 * 60_000 }, async () => {
    const credential = await agentCredentialOf(b.url, MAC, token);
    const url = `${b.url}/images/${NAME}`;
    const seed = spawn(booty, ['rack', '--image', url, '--dir', join(work, 'seed'), '--token', token], { stdio: ['ignore', 'pipe', 'pipe'] });
    let seedErr = '';
    seed.stderr!.on('data', (d: Buffer) => { seedErr += String(d); });
    try {
      await waitForOutput(seed, /complete \(\d+ bytes, \d+ from the origin; sha256 [0-9a-f]{64}, verified\); seeding/, 'the seed', 120_000);
      const disk = join(work, 'agent.disk');
      await writeFile(disk, '');
      const agent = await runBooty(['deploy', '--image', url, '--disk', disk, '--p2p', '--token', credential, '--p2p-stall-timeout', '60s']);
      assert.equal(agent.status, 0, `${agent.err.slice(-3000)}\nseed:\n${seedErr.slice(-2000)}`);
      const m = /p2p: (\d+) bytes from peers, (\d+) from the origin/.exec(agent.err + agent.out);
      assert.ok(m !== null, agent.err.slice(-3000));
      assert.equal(Number(m[2]), 0, 'nothing from the origin: every piece from the seed');
      assert.equal(Number(m[1]), bytes.length);
      assert.equal(await sha256OfFile(disk), createHash('sha256').update(raw).digest('hex'), 'the disk is the image');
    } finally {
      seed.kill('SIGTERM');
    }
    // the seed's bytes came through B's redirect to A's copy
    assert.match(b.stderr(), new RegExp(`"held-by":"${a.url.replace(/[.:/]/g, '\\$&')}"`));
  });
});
