// Peer to peer inside a rack, on this host (no root): a real `booty server --p2p` (metainfo,
// rack tracker, origin), a rack seed, and deploy() with "p2p" onto a file.
//   - a peer that sends corrupt pieces is banned (by address) and the deploy still ends
//     bit-exact, its pieces fetched from the seed;
//   - a swarm that stalls (the only peer holds the first pieces only) falls back to the origin
//     with HTTP Range from the first byte not yet received, and the deploy ends bit-exact;
//   - two agents stalled together: the one whose wait ends first reads the origin, the other
//     takes those pieces from it and reads nothing from the origin;
//   - requests a peer never answers (lost) while it answers others hold neither the piece nor
//     the peer's places for long, and a connection with a request open too long is dropped.
// The bad peer listens on 127.0.0.2 so that banning its address does not ban the seed's 127.0.0.1.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import zlib from 'node:zlib';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { deploy } from '../../src/image/deploy.ts';
import { createLogger } from '../../src/util/log.ts';
import { loadP2p } from '../../src/p2p/load.ts';
import { parseTorrentFile, pieceSize, type Metainfo } from '../../src/p2p/metainfo.ts';
import { Swarm } from '../../src/p2p/swarm.ts';

const IMAGE = 'p2p.img.gz';
let dir: string;
let server: BootyServerProcess;
let raw: Buffer;
let gz: Buffer;
let meta: Metainfo;

/** A "disk" of 12 MiB: runs of random bytes between runs of zeros, gzip-compressed (about 6 MiB). */
function makeImage(): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < 12; i++) parts.push(i % 2 === 0 ? randomBytes(1 << 20) : Buffer.alloc(1 << 20, i));
  return Buffer.concat(parts);
}

async function metainfoOf(url: string): Promise<Metainfo> {
  for (let i = 0; i < 100; i++) {
    const r = await fetch(url);
    if (r.status === 200) return parseTorrentFile(Buffer.from(await r.arrayBuffer()));
    assert.equal(r.status, 503, `metainfo: ${r.status} ${await r.text()}`);
    await new Promise((ok) => setTimeout(ok, 200));
  }
  throw new Error('the metainfo was never ready');
}

function capture(): { log: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger({ sinks: [(_l, m) => { lines.push(m); }] }), lines };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'booty-p2p-unit-'));
  raw = makeImage();
  gz = zlib.gzipSync(raw, { level: 1 });
  const data = join(dir, 'data');
  await mkdir(join(data, 'images'), { recursive: true });
  await writeFile(join(data, 'images', IMAGE), gz);
  server = await startBootyServer({ dataDir: data, args: ['--p2p', '--insecure-open'] });
  meta = await metainfoOf(`${server.url}/image-torrent/${IMAGE}?rack=unit`);
  assert.ok(meta.pieceCount >= 4, `${meta.pieceCount} pieces`);
});

after(async () => {
  await server?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('p2p on booty server', () => {
  it('serves the metainfo with the rack\'s announce URL and the image as web seed; the tracker tracks its own images only', async () => {
    const r = await fetch(`${server.url}/image-torrent/${IMAGE}?rack=r7`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/x-bittorrent');
    assert.equal(r.headers.get('x-image-sha256'), createHash('sha256').update(gz).digest('hex'));
    const m = parseTorrentFile(Buffer.from(await r.arrayBuffer()));
    assert.equal(m.announce, `${server.url}/p2p/r7/announce`);
    assert.deepEqual(m.urlList, [`${server.url}/images/${IMAGE}`]);
    assert.equal(m.infoHash, meta.infoHash, 'the rack changes the announce URL, never the swarm');
    assert.equal(m.length, gz.length);
    assert.equal((await fetch(`${server.url}/image-torrent/${IMAGE}?rack=a%2Fb`)).status, 400);
    assert.equal((await fetch(`${server.url}/image-torrent/nothing.img`)).status, 404);
    const q = (hash: Buffer) => `info_hash=${[...hash].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')}&peer_id=-BT0001-abcdefghijkl&port=6881&left=0&compact=1`;
    const known = Buffer.from(await (await fetch(`${server.url}/p2p/r7/announce?${q(Buffer.from(meta.infoHash, 'hex'))}`)).arrayBuffer()).toString('latin1');
    assert.doesNotMatch(known, /failure reason/);
    const unknown = Buffer.from(await (await fetch(`${server.url}/p2p/r7/announce?${q(randomBytes(20))}`)).arrayBuffer()).toString('latin1');
    assert.match(unknown, /failure reason.*serves the images of its booty server only/);
  });

  it('--p2p-every-deploy turns it on in every deploy action served of an image the server holds (an action\'s own "p2p" wins); off, the routes say how to turn it on and a p2p deploy fetches over HTTP', async () => {
    const every = await startBootyServer({ args: ['--p2p-every-deploy', '--insecure-open'] });
    const off = await startBootyServer({ args: ['--insecure-open'] });
    try {
      const put = (base: string, mac: string, action: unknown) => fetch(`${base}/api/machines/${mac}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action }) });
      const actionOf = async (base: string, mac: string) => ((await (await fetch(`${base}/api/machines/${mac}/action`)).json()) as { booty: { p2p?: unknown } }).booty;
      assert.ok((await fetch(`${every.url}/images/a.img`, { method: 'PUT', body: gz })).ok);
      assert.ok((await put(every.url, '52-54-00-21-00-01', { action: 'deploy', image: `${every.url}/images/a.img` })).ok);
      assert.ok((await put(every.url, '52-54-00-21-00-03', { action: 'deploy', image: 'http://cdn.example/os/a.img' })).ok);
      assert.ok((await put(every.url, '52-54-00-21-00-04', { action: 'deploy', image: `${every.url}/images/missing.img` })).ok);
      assert.ok((await put(every.url, '52-54-00-21-00-02', { action: 'deploy', image: `${every.url}/images/a.img`, p2p: { rack: 'r2' } })).ok);
      assert.ok((await put(off.url, '52-54-00-21-00-01', { action: 'deploy', image: `${off.url}/images/a.img` })).ok);
      assert.deepEqual((await actionOf(every.url, '52-54-00-21-00-01')).p2p, {});
      assert.deepEqual((await actionOf(every.url, '52-54-00-21-00-02')).p2p, { rack: 'r2' });
      assert.equal((await actionOf(every.url, '52-54-00-21-00-03')).p2p, undefined, 'an image elsewhere has no metainfo here');
      assert.equal((await actionOf(every.url, '52-54-00-21-00-04')).p2p, undefined, 'nor an image this server does not hold');
      assert.equal((await actionOf(off.url, '52-54-00-21-00-01')).p2p, undefined);
      const r = await fetch(`${off.url}/image-torrent/a.img`);
      assert.equal(r.status, 404);
      assert.match(await r.text(), /peer to peer is off on this server \(start booty server with --p2p/);
      // an agent told "p2p" by such a server fetches the image from its URL, saying why
      assert.ok((await fetch(`${off.url}/images/a.img`, { method: 'PUT', body: gz })).ok);
      const disk = join(dir, 'disk-p2p-off');
      await writeFile(disk, '');
      const { log, lines } = capture();
      const d = await deploy({ image: `${off.url}/images/a.img`, disk, log, p2p: { metainfoUrl: `${off.url}/image-torrent/a.img` } });
      assert.equal(d.sha256, createHash('sha256').update(gz).digest('hex'));
      assert.ok((await readFile(disk)).equals(raw));
      assert.ok(lines.some((l) => /p2p: no metainfo for this image \(.*404.*peer to peer is off on this server.*\); fetching it from http:\/\/127\.0\.0\.1:\d+\/images\/a\.img without peers/.test(l)), lines.join('\n'));
    } finally {
      await every.close();
      await off.close();
    }
  });
});

describe('p2p swarm', () => {
  it('bans a peer that sends corrupt pieces; the deploy still ends bit-exact from the seed', { timeout: 120_000 }, async () => {
    const p2p = await loadP2p();
    const seed = await p2p.startRackSeed({ metainfoUrl: `${server.url}/image-torrent/${IMAGE}`, rack: 'unit', dir: join(dir, 'seed'), origin: `${server.url}/images/${IMAGE}` });
    let bad: Swarm | undefined;
    try {
      await seed.complete;
      // claims every piece, sends random bytes
      bad = new Swarm({
        meta, announce: '', host: '127.0.0.2',
        pieces: { has: () => true, read: (_i, _off, len) => randomBytes(len) },
        onPiece: () => assert.fail('the bad peer asks nothing'),
      });
      await bad.start();
      const disk = join(dir, 'disk-bad-peer');
      await writeFile(disk, '');
      const { log, lines } = capture();
      const r = await deploy({
        image: `${server.url}/images/${IMAGE}`, disk, log,
        p2p: { metainfoUrl: `${server.url}/image-torrent/${IMAGE}`, rack: 'unit', peers: [`127.0.0.2:${bad.port}`], stallTimeoutMs: 60_000 },
      });
      assert.equal(r.sha256, createHash('sha256').update(gz).digest('hex'));
      assert.ok((await readFile(disk)).equals(raw), 'the disk is the image, bit for bit');
      assert.ok(bad.uploaded > 0, 'the bad peer was asked for pieces');
      const banned = lines.find((l) => /p2p: banned peer 127\.0\.0\.2:\d+: piece \d+ does not match the metainfo's SHA-1/.test(l));
      assert.ok(banned !== undefined, `no ban in the log:\n${lines.join('\n')}`);
      const summary = lines.find((l) => l.startsWith('p2p: ') && l.includes('from peers'));
      assert.match(summary ?? '', / 0 from the origin/, 'nothing came from the origin');
      assert.match(summary ?? '', /banned 127\.0\.0\.2/);
    } finally {
      bad?.close();
      await seed.close();
    }
  });

  it('falls back to the origin with HTTP Range from the first byte not received when the swarm stalls', { timeout: 120_000 }, async () => {
    const held = 2;
    // the only peer: it holds the first two pieces of the real image
    const peer = new Swarm({
      meta, announce: '', host: '127.0.0.1',
      pieces: { has: (i) => i < held, read: (i, off, len) => gz.subarray(i * meta.pieceLength + off, i * meta.pieceLength + off + len) },
      onPiece: () => {},
    });
    await peer.start();
    try {
      const disk = join(dir, 'disk-stall');
      await writeFile(disk, '');
      const { log, lines } = capture();
      const r = await deploy({
        image: `${server.url}/images/${IMAGE}`, disk, log,
        // a rack of its own on the tracker: nobody else there
        p2p: { metainfoUrl: `${server.url}/image-torrent/${IMAGE}`, rack: 'stall', peers: [`127.0.0.1:${peer.port}`], stallTimeoutMs: 2000 },
      });
      assert.equal(r.sha256, createHash('sha256').update(gz).digest('hex'));
      assert.ok((await readFile(disk)).equals(raw), 'the disk is the image, bit for bit');
      const at = held * meta.pieceLength;
      assert.ok(lines.some((l) => l.includes(`fetching the rest from the origin with HTTP Range from byte ${at} of ${gz.length}`)), lines.join('\n'));
      const summary = lines.find((l) => l.startsWith('p2p: ') && l.includes('from peers')) ?? '';
      assert.match(summary, new RegExp(`^p2p: ${at} bytes from peers, ${gz.length - at} from the origin \\(fell back at byte ${at}\\)`));
      assert.equal(peer.uploaded, at, 'the peer served its two pieces');
      // the origin saw one Range request from there (booty server's request log)
      const ranged = server.logRecords().filter((rec) => rec.msg === `GET /images/${IMAGE}` && rec.status === 206);
      assert.ok(ranged.length >= 1, JSON.stringify(server.logRecords().slice(-5)));
      assert.ok(pieceSize(meta, meta.pieceCount - 1) > 0);
    } finally {
      peer.close();
    }
  });

  it('agents stalled together fall back one after the other: the second takes from the first what it brings from the origin, the last pieces too (the first serves on after its stream ended: lingerMs, or without it until its process ends)', { timeout: 120_000 }, async () => {
    const held = 2;
    // a rack whose seed died: the only peer left holds the first two pieces
    const peer = new Swarm({
      meta, announce: '', host: '127.0.0.1',
      pieces: { has: (i) => i < held, read: (i, off, len) => gz.subarray(i * meta.pieceLength + off, i * meta.pieceLength + off + len) },
      onPiece: () => {},
    });
    await peer.start();
    let closeOrigin = () => {};
    try {
      // the origin the fallback reads: 512 KiB every 250 ms (the first agent's fetch takes seconds,
      // as through a rack's uplink; the second follows it); it ignores If-Range, as the slow one below
      const origin = http.createServer((req, res) => {
        const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
        const start = m === null ? 0 : Number(m[1]);
        res.writeHead(m === null ? 200 : 206, {
          'Content-Length': gz.length - start, 'Accept-Ranges': 'bytes', ETag: '"slow-2"',
          ...(m === null ? {} : { 'Content-Range': `bytes ${start}-${gz.length - 1}/${gz.length}` }),
        });
        let at = start;
        const tick = setInterval(() => {
          const end = Math.min(gz.length, at + (512 << 10));
          res.write(gz.subarray(at, end));
          at = end;
          if (at >= gz.length) { clearInterval(tick); res.end(); }
        }, 250);
        res.on('close', () => clearInterval(tick));
      });
      await new Promise<void>((ok) => origin.listen(0, '127.0.0.1', ok));
      closeOrigin = () => { origin.closeAllConnections(); origin.close(); };
      // the first serves on after its stream ended (an agent serves until it reboots; the CLI until
      // its process exits, or --p2p-linger): the second's last pieces are what it fetched last
      const agent = async (name: string, rack: string, fallbackJitterMs: number, lingerMs?: number) => {
        const disk = join(dir, `disk-stagger-${name}`);
        await writeFile(disk, '');
        const { log, lines } = capture();
        // both announce in rack "stagger" on the server's tracker: they find each other there
        const r = await deploy({
          image: `http://127.0.0.1:${(origin.address() as AddressInfo).port}/images/${IMAGE}`, disk, log,
          p2p: { metainfoUrl: `${server.url}/image-torrent/${IMAGE}`, rack, peers: [`127.0.0.1:${peer.port}`], stallTimeoutMs: 2000, fallbackJitterMs, lingerMs },
        });
        assert.equal(r.sha256, createHash('sha256').update(gz).digest('hex'));
        assert.ok((await readFile(disk)).equals(raw), `${name}: the disk is the image, bit for bit`);
        return lines.find((l) => l.startsWith('p2p: ') && l.includes('from peers')) ?? '';
      };
      // before the first one's swarm was kept after its stream's end, the second waited for the
      // last pieces until its stall timeout and read them from the origin
      for (const linger of [5000, undefined]) {
        const rack = `stagger-${linger ?? 'none'}`;
        const [first, second] = await Promise.all([agent(`first-${rack}`, rack, 0, linger), agent(`second-${rack}`, rack, 30_000)]);
        const at = held * meta.pieceLength;
        assert.match(first, new RegExp(`^p2p: ${at} bytes from peers, ${gz.length - at} from the origin \\(fell back at byte ${at}\\)`));
        assert.match(second, new RegExp(`^p2p: ${gz.length} bytes from peers, 0 from the origin,`), `${rack}: the second agent took the rest from the first, not from the origin`);
      }
    } finally {
      closeOrigin();
      peer.close();
    }
  });

  it('a peer that never answers for the piece the pipeline waits on: another peer is asked soon, no fallback', { timeout: 120_000 }, async () => {
    // the silent peer claims every piece and answers no request; the agent's only peer at first,
    // so the first pieces are asked of it. A good peer comes a second later (it dials the agent).
    const silent = new Swarm({ meta, announce: '', host: '127.0.0.1', pieces: { has: () => true, read: () => new Promise<Buffer>(() => {}) }, onPiece: () => {} });
    await silent.start();
    const probe = http.createServer().listen(0, '127.0.0.1');
    await new Promise((ok) => probe.once('listening', ok));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((ok) => probe.close(ok));
    let good: Swarm | undefined;
    const joining = setTimeout(() => {
      good = new Swarm({ meta, announce: '', host: '127.0.0.1', peers: [`127.0.0.1:${port}`],
        pieces: { has: () => true, read: (i, off, len) => gz.subarray(i * meta.pieceLength + off, i * meta.pieceLength + off + len) }, onPiece: () => {} });
      void good.start();
    }, 1000);
    try {
      const disk = join(dir, 'disk-silent-peer');
      await writeFile(disk, '');
      const { log, lines } = capture();
      // the stall timeout (6 s + none) is below the general piece timeout (15 s): only the head's
      // shorter one lets the agent go on from the good peer
      const r = await deploy({
        image: `${server.url}/images/${IMAGE}`, disk, log,
        p2p: { metainfoUrl: `${server.url}/image-torrent/${IMAGE}`, rack: 'silent', port, peers: [`127.0.0.1:${silent.port}`], stallTimeoutMs: 6000, fallbackJitterMs: 0 },
      });
      assert.equal(r.sha256, createHash('sha256').update(gz).digest('hex'));
      assert.ok((await readFile(disk)).equals(raw), 'the disk is the image, bit for bit');
      const summary = lines.find((l) => l.startsWith('p2p: ') && l.includes('from peers')) ?? '';
      assert.match(summary, new RegExp(`^p2p: ${gz.length} bytes from peers, 0 from the origin,`), lines.join('\n'));
      assert.ok(good !== undefined && good.uploaded === gz.length, `the good peer served the whole image (${good?.uploaded})`);
    } finally {
      clearTimeout(joining);
      silent.close();
      good?.close();
    }
  });

  it('peers that never answer the first pieces asked of them (lost requests) while answering the rest: the pieces and the peers go on elsewhere, no fallback', { timeout: 120_000 }, async () => {
    // bittorrent-protocol loses a request for good when two identical ones are open on one wire
    // (it pairs answers with requests by index/offset/length) and its request timeout is reset by
    // every other answer; these peers model such a connection: each holds every piece and leaves
    // the requests of the first two pieces it is asked for unanswered, answering every other. The
    // agent asks its four places (two per peer) for pieces 0-3, all lost: before the fix nothing
    // freed them (the head's second peer needs a free place) and it fell back to the origin.
    const lossy = () => {
      const lost = new Set<number>();
      return new Swarm({ meta, announce: '', host: '127.0.0.1', onPiece: () => {}, pieces: {
        has: () => true,
        read: (i, off, len) => {
          if (lost.size < 2) lost.add(i);
          return lost.has(i) ? new Promise<Buffer>(() => {}) : gz.subarray(i * meta.pieceLength + off, i * meta.pieceLength + off + len);
        },
      } });
    };
    const a = lossy();
    const b = lossy();
    await a.start();
    await b.start();
    try {
      const disk = join(dir, 'disk-lossy-peers');
      await writeFile(disk, '');
      const { log, lines } = capture();
      const r = await deploy({
        image: `${server.url}/images/${IMAGE}`, disk, log,
        p2p: { metainfoUrl: `${server.url}/image-torrent/${IMAGE}`, rack: 'lossy', peers: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`], stallTimeoutMs: 9000, fallbackJitterMs: 0 },
      });
      assert.equal(r.sha256, createHash('sha256').update(gz).digest('hex'));
      assert.ok((await readFile(disk)).equals(raw), 'the disk is the image, bit for bit');
      const summary = lines.find((l) => l.startsWith('p2p: ') && l.includes('from peers')) ?? '';
      assert.match(summary, new RegExp(`^p2p: ${gz.length} bytes from peers, 0 from the origin,`), lines.join('\n'));
      assert.equal(a.uploaded + b.uploaded, gz.length, 'each piece was served once: the lost ones by the other peer');
    } finally {
      a.close();
      b.close();
    }
  });

  it('a connection with a request unanswered for deadTimeoutMs is dropped, though it answers others', { timeout: 60_000 }, async () => {
    const lost = new Set<number>();
    const peer = new Swarm({ meta, announce: '', host: '127.0.0.1', onPiece: () => {}, pieces: {
      has: () => true,
      read: (i, off, len) => {
        if (lost.size < 1) lost.add(i);
        return lost.has(i) ? new Promise<Buffer>(() => {}) : gz.subarray(i * meta.pieceLength + off, i * meta.pieceLength + off + len);
      },
    } });
    await peer.start();
    const got = new Set<number>();
    const { log, lines } = capture();
    const agent = new Swarm({ meta, announce: '', host: '127.0.0.1', log, peers: [`127.0.0.1:${peer.port}`], stuckTimeoutMs: 500, deadTimeoutMs: 3000,
      pieces: { has: (i) => got.has(i), read: () => undefined }, onPiece: (i) => { got.add(i); } });
    await agent.start();
    try {
      agent.want(Array.from({ length: meta.pieceCount }, (_, i) => i));
      const until = performance.now() + 30_000;
      while (!lines.some((l) => l.startsWith('p2p: dropped peer')) && performance.now() < until) await new Promise((ok) => setTimeout(ok, 100));
      const dropped = lines.find((l) => l.startsWith('p2p: dropped peer')) ?? '';
      assert.match(dropped, new RegExp(`^p2p: dropped peer 127\\.0\\.0\\.1:${peer.port}: a request unanswered for [34] s \\(.*in flight 0 \\([\\d.]+ s, stuck\\)`), lines.join('\n'));
      assert.equal(got.size, meta.pieceCount - 1, 'every piece but the lost one came from it meanwhile');
      assert.ok(!got.has(0));
      await new Promise((ok) => setTimeout(ok, 200));
      assert.equal(agent.peerCount, 0);
    } finally {
      agent.close();
      peer.close();
    }
  });

  it('a stall is logged with what every connection did: a silent peer\'s requests show as open on both ends, a refusing peer\'s as rejected', { timeout: 120_000 }, async () => {
    // both claim every piece; one never answers, the other rejects every request (BEP 6)
    const silent = new Swarm({ meta, announce: '', host: '127.0.0.1', pieces: { has: () => true, read: () => new Promise<Buffer>(() => {}) }, onPiece: () => {} });
    const refusing = new Swarm({ meta, announce: '', host: '127.0.0.1', pieces: { has: () => true, read: () => undefined }, onPiece: () => {} });
    await silent.start();
    await refusing.start();
    try {
      const disk = join(dir, 'disk-stall-described');
      await writeFile(disk, '');
      // what the serving ends say at the agent's fallback (afterwards the agent has gone)
      let serving: string[] = [];
      const lines: string[] = [];
      const log = createLogger({ sinks: [(_l, m) => { lines.push(m); if (m.startsWith('p2p: at the fallback')) serving = [silent.describe(0), refusing.describe(0)]; }] });
      const r = await deploy({
        image: `${server.url}/images/${IMAGE}`, disk, log,
        p2p: { metainfoUrl: `${server.url}/image-torrent/${IMAGE}`, rack: 'described', peers: [`127.0.0.1:${silent.port}`, `127.0.0.1:${refusing.port}`], stallTimeoutMs: 4000, fallbackJitterMs: 0 },
      });
      assert.equal(r.sha256, createHash('sha256').update(gz).digest('hex'));
      const half = lines.find((l) => l.startsWith('p2p: no piece for ')) ?? '';
      const atFallback = lines.find((l) => l.startsWith('p2p: at the fallback: ')) ?? '';
      assert.match(half, /^p2p: no piece for \d+ s while waiting for piece 0; 2 connections to 2 peers; piece 0: advertised by [12] of 2, in flight with [12]/, lines.join('\n'));
      // by the fallback the head was asked of the refusing peer too (after 2 s), which refused it
      assert.match(atFallback, /^p2p: at the fallback: 2 connections to 2 peers; piece 0: advertised by 1 of 2, in flight with 1/, lines.join('\n'));
      for (const line of [half, atFallback]) {
        const part = (port: number) => line.split(' | ').find((x) => x.includes(`127.0.0.1:${port} dialled`)) ?? '';
        // the silent peer: asked, nothing back, every request still open on our side and on its
        const quiet = /unchoked us, holds (\d+)\/\d+ with 0; in flight 0 \([\d.]+ s\) 1 \([\d.]+ s\); blocks asked (\d+), got 0, rejected 0, failed 0, open (\d+), last never; asked of us 0 \(served 0, refused 0, open 0\)/.exec(part(silent.port));
        assert.ok(quiet !== null, `silent peer: ${part(silent.port)}`);
        assert.equal(Number(quiet[1]), meta.pieceCount);
        assert.equal(quiet[2], quiet[3], 'every block asked is still open');
        assert.equal(Number(quiet[2]), Math.ceil(pieceSize(meta, 0) / 65536) + Math.ceil(pieceSize(meta, 1) / 65536));
        // the refusing peer: nothing came from it
        assert.match(part(refusing.port), /unchoked us, .*; blocks asked \d+, got 0, .*, last never/);
      }
      {
        // by the fallback: every block asked was rejected, and what it refused is marked not held
        // (all, or all but piece 1 if that was in flight with the silent one first: not asked of a
        // second peer before the piece timeout)
        const refused = atFallback.split(' | ').find((x) => x.includes(`127.0.0.1:${refusing.port} dialled`)) ?? '';
        const no = /unchoked us, holds [01]\/\d+ without 0; in flight none; blocks asked (\d+), got 0, rejected (\d+), failed 0, open 0, last never/.exec(refused);
        assert.ok(no !== null && Number(no[1]) > 0 && no[1] === no[2], `refusing peer: ${refused}`);
      }
      // the serving ends see the same: the silent one holds the requests, the refusing one refused them
      assert.match(serving[0] ?? '', /^1 connection to 1 peer; piece 0: .*accepted .*asked of us (\d+) \(served 0, refused 0, open \1\)/);
      assert.match(serving[1] ?? '', /^1 connection to 1 peer; piece 0: .*accepted .*asked of us (\d+) \(served 0, refused \1, open 0\)/);
    } finally {
      silent.close();
      refusing.close();
    }
  });

  it('an origin slow to answer the fallback gets one request, and no piece slips in meanwhile', { timeout: 120_000 }, async () => {
    const held = 3;
    const peer = new Swarm({
      meta, announce: '', host: '127.0.0.1',
      pieces: { has: (i) => i < held, read: (i, off, len) => gz.subarray(i * meta.pieceLength + off, i * meta.pieceLength + off + len) },
      onPiece: () => {},
    });
    await peer.start();
    // the origin of the fallback: answers a Range request after 3.5 s (the stall check runs every second)
    const asked: string[] = [];
    const origin = http.createServer((req, res) => {
      asked.push(`${req.method} ${req.headers.range ?? '(no range)'}`);
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const start = m === null ? 0 : Number(m[1]);
      setTimeout(() => {
        res.writeHead(m === null ? 200 : 206, {
          'Content-Length': gz.length - start, 'Accept-Ranges': 'bytes', ETag: '"slow-1"',
          ...(m === null ? {} : { 'Content-Range': `bytes ${start}-${gz.length - 1}/${gz.length}` }),
        });
        res.end(gz.subarray(start));
      }, 3500);
    });
    await new Promise<void>((ok) => origin.listen(0, '127.0.0.1', ok));
    try {
      const disk = join(dir, 'disk-slow-origin');
      await writeFile(disk, '');
      const { log, lines } = capture();
      const r = await deploy({
        image: `http://127.0.0.1:${(origin.address() as AddressInfo).port}/images/${IMAGE}`, disk, log,
        p2p: { metainfoUrl: `${server.url}/image-torrent/${IMAGE}`, rack: 'slow', peers: [`127.0.0.1:${peer.port}`], stallTimeoutMs: 1500 },
      });
      assert.equal(r.sha256, createHash('sha256').update(gz).digest('hex'));
      assert.ok((await readFile(disk)).equals(raw), 'the disk is the image, bit for bit');
      assert.deepEqual(asked, [`GET bytes=${held * meta.pieceLength}-`], 'one fallback request, from the byte reached');
      assert.equal(lines.filter((l) => l.includes('fetching the rest from the origin')).length, 1, lines.join('\n'));
    } finally {
      peer.close();
      origin.close();
    }
  });
});
