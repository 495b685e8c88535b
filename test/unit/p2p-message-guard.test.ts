// The guard in front of bittorrent-protocol's Wire (src/p2p/message-guard.ts): the peer wire
// framing passes through untouched however it is cut into chunks, and a message longer than the
// limit ends the connection instead of being buffered; a real Swarm drops such a peer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { MessageGuard } from '../../src/p2p/message-guard.ts';
import { Swarm } from '../../src/p2p/swarm.ts';
import type { Metainfo } from '../../src/p2p/metainfo.ts';

function frame(body: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(body.length);
  return Buffer.concat([h, body]);
}

const handshake = Buffer.concat([Buffer.from([19]), Buffer.from('BitTorrent protocol'), Buffer.alloc(8), randomBytes(20), randomBytes(20)]);

async function through(chunks: Buffer[], max?: number): Promise<{ out: Buffer; error?: Error }> {
  const g = new MessageGuard(max);
  const parts: Buffer[] = [];
  g.on('data', (c: Buffer) => parts.push(c));
  const done = new Promise<Error | undefined>((ok) => { g.once('error', ok); g.once('end', () => ok(undefined)); });
  for (const c of chunks) g.write(c);
  g.end();
  const error = await done;
  return { out: Buffer.concat(parts), error };
}

test('the framing passes through untouched, cut anywhere', async () => {
  const stream = Buffer.concat([handshake, frame(Buffer.from([2])), frame(Buffer.alloc(0)), frame(Buffer.concat([Buffer.from([7]), randomBytes(65536 + 8)])), frame(Buffer.from([4, 0, 0, 0, 1]))]);
  for (const cut of [1, 3, 4, 5, 67, 68, 69, 1000, stream.length]) {
    const chunks: Buffer[] = [];
    for (let i = 0; i < stream.length; i += cut) chunks.push(stream.subarray(i, i + cut));
    const r = await through(chunks);
    assert.equal(r.error, undefined, `cut ${cut}`);
    assert.ok(r.out.equals(stream), `cut ${cut}`);
  }
});

test('a message longer than the limit is an error, not a buffer', async () => {
  const huge = Buffer.alloc(4);
  huge.writeUInt32BE(0xfffffff0);
  const r = await through([handshake, frame(Buffer.from([2])), huge.subarray(0, 2), huge.subarray(2)]);
  assert.match(r.error?.message ?? '', /a peer announced a message of 4294967280 bytes \(at most 1048576\)/);
});

test('a Swarm drops a peer that announces a huge message', async () => {
  const meta: Metainfo = { infoHash: randomBytes(20).toString('hex'), name: 'x', length: 1 << 20, pieceLength: 1 << 20, pieceCount: 1, pieceHashes: randomBytes(20), infoBytes: Buffer.alloc(0), urlList: [] };
  const lines: string[] = [];
  const swarm = new Swarm({
    meta, announce: '', host: '127.0.0.1', pieces: { has: () => false, read: () => undefined }, onPiece: () => {},
    log: { debug: () => {}, info: () => {}, warn: (m: string) => { lines.push(m); }, error: () => {}, addSink: () => () => {} },
  });
  await swarm.start();
  try {
    const s = net.connect({ host: '127.0.0.1', port: swarm.port });
    await new Promise((ok) => s.once('connect', ok));
    s.on('error', () => {});
    const closed = new Promise((ok) => s.once('close', ok));
    const hs = Buffer.concat([Buffer.from([19]), Buffer.from('BitTorrent protocol'), Buffer.alloc(8), Buffer.from(meta.infoHash, 'hex'), randomBytes(20)]);
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(0x7fffffff);
    s.write(Buffer.concat([hs, huge, randomBytes(1000)]));
    await closed;
    assert.ok(lines.some((l) => /p2p: dropped peer 127\.0\.0\.1:\d+: a peer announced a message of 2147483647 bytes/.test(l)), lines.join('\n'));
  } finally {
    swarm.close();
  }
});
