// A swarm released after its deploy (Swarm.release) serves on without keeping the process alive:
// the booty deploy CLI must end when its last write is done, not when the release runs out. Run in
// a child process, since what is checked is whether the event loop lets that process end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';

const root = resolve(import.meta.dirname, '..', '..');
const RELEASE_MS = 60_000;

// two swarms on loopback, connected (each holds every piece, so they only exchange bitfields and
// keep-alives), then both released for RELEASE_MS: the child prints "released" and must exit by itself
const child = (imagePath: string) => `
import { Swarm } from ${JSON.stringify(join(root, 'src/p2p/swarm.ts'))};
import { computeInfo, parseTorrentFile, torrentFile } from ${JSON.stringify(join(root, 'src/p2p/metainfo.ts'))};
const size = ${4 << 20};
const meta = parseTorrentFile(torrentFile(await computeInfo(${JSON.stringify(imagePath)}, 'img', size), undefined, []));
const mk = (peers) => new Swarm({ meta, announce: '', host: '127.0.0.1', peers, onPiece: () => {}, pieces: { has: () => true, read: () => undefined } });
const a = mk([]);
await a.start();
const b = mk(['127.0.0.1:' + a.port]);
await b.start();
const until = performance.now() + 20_000;
while ((a.peerCount === 0 || b.peerCount === 0) && performance.now() < until) await new Promise((ok) => setTimeout(ok, 20));
if (a.peerCount === 0 || b.peerCount === 0) { console.log('never connected'); process.exit(3); }
a.release(${RELEASE_MS});
b.release(${RELEASE_MS});
console.log('released');
`;

test('a released swarm with open connections lets its process end (no keep-alive timer holds it)', { timeout: 90_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'booty-p2p-release-'));
  try {
    const image = join(dir, 'img');
    await writeFile(image, randomBytes(4 << 20));
    const started = performance.now();
    const c = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', '--input-type=module', '-e', child(image)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    c.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const code = await new Promise<number | null>((ok) => c.on('exit', (n) => ok(n)));
    const seconds = (performance.now() - started) / 1000;
    assert.equal(code, 0, out);
    assert.match(out, /released/);
    // the release would close the swarms after 60 s: ending well before that means nothing held the loop
    assert.ok(seconds < RELEASE_MS / 1000 / 2, `the process ended ${seconds.toFixed(1)} s after its start, held by the released swarm (${RELEASE_MS / 1000} s)`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
