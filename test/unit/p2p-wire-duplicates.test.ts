// What src/p2p/swarm.ts works around in bittorrent-protocol (a part booty does not own): two
// identical requests open on one wire lose both answers. The serving wire pairs an answer with its
// request by (index, offset, length) and removes requests with an unordered array removal, so
// once another request was answered first, the answer to the first copy finds the second copy,
// sees it is not its own and drops it, and the second copy's answer finds nothing of its own
// either. The requester's request timeout is reset by every other answer, so nothing ever fails
// those requests. If a release of bittorrent-protocol changes this, this test says so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Wire from 'bittorrent-protocol';

type Respond = (e: Error | null, b?: Uint8Array) => void;

test('bittorrent-protocol: two identical requests open on one wire are never answered; the one between them is', async () => {
  const asker = new Wire();
  const server = new Wire();
  asker.pipe(server as unknown as NodeJS.WritableStream);
  server.pipe(asker as unknown as NodeJS.WritableStream);
  const infoHash = 'ab'.repeat(20);
  const pending: Respond[] = [];
  server.on('request', (_i: number, _off: number, _len: number, respond: Respond) => { pending.push(respond); });
  server.on('handshake', () => { server.handshake(infoHash, 'cd'.repeat(20), { fast: true }); server.unchoke(); });
  const answers: string[] = [];
  const ask = (name: string, i: number) => asker.request(i, 0, 4, (e, b) => { answers.push(`${name}: ${e?.message ?? Buffer.from(b!).toString('hex')}`); });
  await new Promise<void>((ok) => {
    asker.on('unchoke', () => { ask('other', 1); ask('first copy', 0); ask('between', 2); ask('second copy', 0); ok(); });
    asker.handshake(infoHash, 'ef'.repeat(20), { fast: true });
  });
  while (pending.length < 4) await new Promise((ok) => setTimeout(ok, 10));
  // the serving side answers in its own order (booty's reads are asynchronous): the other one first
  pending[0](null, Uint8Array.of(1, 1, 1, 1));
  pending[1](null, Uint8Array.of(0, 0, 0, 0));
  pending[2](null, Uint8Array.of(2, 2, 2, 2));
  pending[3](null, Uint8Array.of(0, 0, 0, 0));
  await new Promise((ok) => setTimeout(ok, 200));
  assert.deepEqual(answers.sort(), ['between: 02020202', 'other: 01010101']);
  assert.equal(asker.requests.length, 2, 'both copies are still open on the asking side');
  assert.equal(server.peerRequests.length, 0, 'and gone from the serving side');
  asker.destroy();
  server.destroy();
});
