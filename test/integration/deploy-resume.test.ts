// Resume, not restart: deploy() against a scripted HTTP server that misbehaves on cue (drops,
// resets or stalls a response after N bytes, answers 503, replaces the image between requests,
// ignores Range, sends a wrong Content-Range). Checks the Range/If-Range requests booty sends,
// that nothing is hashed twice, that a changed image is named and only restarted when allowed,
// and that giving up names the bytes done and the disk's state (also through the CLI's exit
// status). Targets are regular files: no root needed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { seededRandom } from '../helpers/seeded-random.ts';
import { deploy, type DeployOptions } from '../../src/image/deploy.ts';
import { BootyError } from '../../src/util/errors.ts';
import { createLogger } from '../../src/util/log.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const MiB = 1 << 20;

type Cue =
  | { kind: 'ok' }
  | { kind: 'cut' | 'reset' | 'stall'; after: number }
  | { kind: 'status'; status: number }
  | { kind: 'ignore-range' }
  | { kind: 'wrong-range' };

interface Seen { range?: string; ifRange?: string; status: number }

/** Serves one image at /image with ETag, Range and If-Range like a real server, except that
 *  request number i follows cues[i] (default: behave). `version` swaps the image (new ETag). */
class ScriptedServer {
  data: Buffer;
  etag: string;
  cues: Cue[] = [];
  seen: Seen[] = [];
  url = '';
  private readonly server: http.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(data: Buffer) {
    this.data = data;
    this.etag = etagOf(data);
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (s) => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)); });
  }

  async listen(port = 0): Promise<void> {
    await new Promise<void>((ok) => this.server.listen(port, '127.0.0.1', ok));
    this.url = `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}/image`;
  }

  replace(data: Buffer): void { this.data = data; this.etag = etagOf(data); }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const cue = this.cues[this.seen.length] ?? { kind: 'ok' };
    const seen: Seen = { range: req.headers.range, ifRange: req.headers['if-range'] as string | undefined, status: 200 };
    this.seen.push(seen);
    if (cue.kind === 'status') {
      seen.status = cue.status;
      res.writeHead(cue.status, { 'content-type': 'text/plain' }).end('try later\n');
      return;
    }
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const rangeApplies = m !== null && cue.kind !== 'ignore-range' && (seen.ifRange === undefined || seen.ifRange === this.etag);
    let start = rangeApplies ? Number(m[1]) : 0;
    const headers: Record<string, string | number> = { etag: this.etag, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    if (rangeApplies) {
      if (cue.kind === 'wrong-range') start = Math.max(0, start - 1000);
      headers['content-range'] = `bytes ${start}-${this.data.length - 1}/${this.data.length}`;
      seen.status = 206;
    }
    const body = this.data.subarray(start);
    headers['content-length'] = body.length;
    res.writeHead(seen.status, headers);
    if (cue.kind === 'cut' || cue.kind === 'reset' || cue.kind === 'stall') {
      res.write(body.subarray(0, cue.after), () => {
        if (cue.kind === 'cut') res.socket?.end();
        else if (cue.kind === 'reset') res.socket?.resetAndDestroy();
        // stall: hold the connection open, sending nothing more
      });
      return;
    }
    res.end(body);
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((ok) => this.server.close(() => ok()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

function etagOf(b: Buffer): string { return `"${createHash('sha256').update(b).digest('hex').slice(0, 16)}"`; }
function sha(b: Buffer): string { return createHash('sha256').update(b).digest('hex'); }

function randomImage(seed: number, size: number): Buffer {
  const rand = seededRandom(seed);
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = i % 3 === 0 ? 0 : Math.floor(rand() * 256);
  return b;
}

let dir: string;
let imageA: Buffer;
let imageB: Buffer;
let gzA: Buffer;
let gzB: Buffer;
const servers: ScriptedServer[] = [];

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-deploy-resume-'));
  imageA = randomImage(1, 3 * MiB);
  imageB = randomImage(2, 3 * MiB);
  gzA = zlib.gzipSync(imageA, { level: 1 });
  gzB = zlib.gzipSync(imageB, { level: 1 });
});

after(async () => {
  for (const s of servers) await s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function serve(data: Buffer, cues: Cue[]): Promise<ScriptedServer> {
  const s = new ScriptedServer(data);
  s.cues = cues;
  await s.listen();
  servers.push(s);
  return s;
}

/** A target file that already holds 4 MiB of garbage (a disk with something on it). */
function dirtyTarget(name: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, randomImage(99, 4 * MiB).fill(0x5a, 0, 4096));
  return f;
}

function run(s: ScriptedServer, disk: string, extra: Partial<DeployOptions> = {}) {
  const lines: string[] = [];
  const log = createLogger({ sinks: [(level, m) => lines.push(`${level}: ${m}`)] });
  const p = deploy({ image: s.url, disk, log, stallTimeoutMs: 300, retryForMs: 10_000, backoffInitialMs: 20, backoffMaxMs: 100, ...extra });
  return { p, lines };
}

/** The disk is as reported: untouched (the failure came before the first write: the decoder runs
 *  ahead of the writer, a whole block at a time) or partially written with its first MiB zero. */
function assertDiskAsReported(disk: string, state: string | undefined): void {
  assert.ok(state === 'untouched' || state === 'partially-written', `disk state ${state}`);
  if (state === 'untouched') assert.ok(head(disk, 4096).every((x) => x === 0x5a), 'untouched: the old head is still there');
  else assert.ok(head(disk).every((x) => x === 0), 'first MiB zero: the disk does not boot');
}

function head(file: string, n = MiB): Buffer {
  const fd = fs.openSync(file, 'r');
  try { const b = Buffer.alloc(n); fs.readSync(fd, b, 0, n, 0); return b; } finally { fs.closeSync(fd); }
}

for (const kind of ['cut', 'reset', 'stall'] as const) {
  test(`a ${kind} mid-image is resumed with Range from the byte reached and If-Range: ETag; nothing is received twice`, async () => {
    const s = await serve(gzA, [{ kind, after: 1_000_000 }]);
    const disk = dirtyTarget(`${kind}.img`);
    const { p, lines } = run(s, disk, { sha256: sha(gzA) });
    const r = await p;
    assert.equal(r.resumes, 1, lines.join('\n'));
    assert.equal(r.restarts, 0);
    assert.equal(r.wireBytes, gzA.length, 'every served byte hashed exactly once');
    assert.equal(s.seen.length, 2);
    assert.equal(s.seen[0].range, undefined);
    const m = /^bytes=(\d+)-$/.exec(s.seen[1].range ?? '');
    assert.ok(m, `second request has a Range: ${s.seen[1].range}`);
    // the resume starts where the first response's bytes stopped arriving: at most what was sent
    assert.ok(Number(m[1]) > 0 && Number(m[1]) <= 1_000_000, `resumed at ${m[1]}`);
    assert.equal(s.seen[1].ifRange, s.etag);
    assert.equal(s.seen[1].status, 206);
    assert.ok(head(disk, imageA.length).equals(imageA), 'bit-exact');
    assert.ok(lines.some((l) => /warn: deploy: connection lost after \d+ of \d+ bytes received/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /deploy: resumed at byte \d+ of \d+ \(resume 1\)/.test(l)), lines.join('\n'));
  });
}

test('several faults in a row, and reconnects answered 503, still end bit-exact with one download', async () => {
  const s = await serve(gzA, [{ kind: 'cut', after: 300_000 }, { kind: 'status', status: 503 }, { kind: 'reset', after: 500_000 }, { kind: 'stall', after: 10 }, { kind: 'ok' }]);
  const disk = dirtyTarget('many.img');
  const progress: number[] = [];
  const { p, lines } = run(s, disk, { sha256: sha(gzA), progressIntervalMs: 5, onProgress: (q) => { if (q.resumes !== undefined) progress.push(q.resumes); } });
  const r = await p;
  assert.equal(r.resumes, 3, lines.join('\n'));
  assert.equal(r.wireBytes, gzA.length);
  assert.ok(head(disk, imageA.length).equals(imageA));
  assert.ok(lines.some((l) => /reconnect failed \(server answered 503/.test(l)), lines.join('\n'));
  assert.equal(Math.max(...progress), 3, 'progress events carry the resume count');
  // each Range starts where the previous response left off, ever further
  const starts = s.seen.slice(1).map((q) => Number(/^bytes=(\d+)-$/.exec(q.range ?? '')?.[1]));
  assert.ok(starts.every((v, i) => i === 0 || v >= starts[i - 1]), `ranges ${starts}`);
});

test('the image changed on the server (new ETag, 200 to If-Range): named, and no restart unless allowed', async () => {
  const s = await serve(gzA, [{ kind: 'cut', after: 1_500_000 }]);
  const disk = dirtyTarget('changed.img');
  const { p } = run(s, disk);
  s.cues.push({ kind: 'ok' });
  // the image is replaced as soon as the first response broke off
  const swap = setInterval(() => { if (s.seen.length >= 1) { s.replace(gzB); clearInterval(swap); } }, 1);
  const err = await p.then(() => undefined, (e: unknown) => e);
  clearInterval(swap);
  assert.ok(err instanceof BootyError, String(err));
  assert.equal(err.code, 'IMAGE_CHANGED');
  assert.equal(err.stage, 'fetch');
  assert.equal(err.exitCode, 4);
  assert.match(err.message, /the image changed on the server during the download \(ETag "[0-9a-f]+" -> "[0-9a-f]+"\) after \d+ bytes received; not starting over from byte 0 because restartOnChange is not set/);
  assertDiskAsReported(disk, err.diskState);
  assert.equal(s.seen[1].status, 200, 'the server answered 200 to the stale If-Range');
});

test('with restartOnChange the deploy starts over from byte 0 and ends with the new image', async () => {
  const s = await serve(gzA, [{ kind: 'cut', after: 1_500_000 }]);
  const disk = dirtyTarget('restart.img');
  const swap = setInterval(() => { if (s.seen.length >= 1) { s.replace(gzB); clearInterval(swap); } }, 1);
  const { p, lines } = run(s, disk, { restartOnChange: true });
  const r = await p;
  clearInterval(swap);
  assert.equal(r.restarts, 1, lines.join('\n'));
  assert.equal(r.sha256, sha(gzB));
  assert.equal(r.wireBytes, gzB.length);
  assert.ok(head(disk, imageB.length).equals(imageB));
  assert.ok(lines.some((l) => /starting over from byte 0 \(restart 1 of at most 3, allowed by restartOnChange\)/.test(l)), lines.join('\n'));
  assert.equal(s.seen.at(-1)?.range, undefined, 'the restart asks for the whole new image');
});

test('a 206 that starts at the wrong byte is refused as a change, never spliced in', async () => {
  const s = await serve(gzA, [{ kind: 'cut', after: 1_000_000 }, { kind: 'wrong-range' }]);
  const { p } = run(s, dirtyTarget('wrongrange.img'));
  await assert.rejects(p, (e: BootyError) => e.code === 'IMAGE_CHANGED' && /asked for byte \d+, the server sent from byte \d+/.test(e.message));
});

test('a server that ignores Range but serves the same ETag: the bytes already received are skipped, not written again', async () => {
  const s = await serve(gzA, [{ kind: 'cut', after: 1_000_000 }, { kind: 'ignore-range' }]);
  const disk = dirtyTarget('norange.img');
  const { p, lines } = run(s, disk, { sha256: sha(gzA) });
  const r = await p;
  assert.equal(r.resumes, 1);
  assert.equal(r.wireBytes, gzA.length, 'hashed once');
  assert.ok(head(disk, imageA.length).equals(imageA));
  assert.ok(lines.some((l) => /the server ignored Range, skipping \d+ bytes already received/.test(l)), lines.join('\n'));
});

test('an image server that is down at first is retried until it comes up', async () => {
  const probe = http.createServer();
  await new Promise<void>((ok) => probe.listen(0, '127.0.0.1', ok));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((ok) => probe.close(() => ok()));
  const s = new ScriptedServer(gzA);
  servers.push(s);
  const disk = dirtyTarget('late.img');
  const lines: string[] = [];
  const p = deploy({ image: `http://127.0.0.1:${port}/image`, disk, stallTimeoutMs: 300, retryForMs: 20_000, backoffInitialMs: 50, backoffMaxMs: 100,
    log: createLogger({ sinks: [(level, m) => lines.push(`${level}: ${m}`)] }) });
  // come up once booty has been refused at least once
  while (!lines.some((l) => /trying again/.test(l))) await new Promise((ok) => setTimeout(ok, 10));
  await s.listen(port);
  const r = await p;
  assert.equal(r.resumes, 0);
  assert.ok(head(disk, imageA.length).equals(imageA));
});

test('no progress for --retry-for: the CLI fails in fetch (4) naming bytes done and the disk state', async () => {
  const s = await serve(gzA, [{ kind: 'cut', after: 1_500_000 }, { kind: 'status', status: 503 }, { kind: 'status', status: 503 },
    ...Array.from({ length: 200 }, () => ({ kind: 'status', status: 502 }) as Cue)]);
  const disk = dirtyTarget('giveup.img');
  const r = await new Promise<{ status: number | null; out: string; err: string }>((ok) => {
    const c = spawn(path.join(root, 'bin/booty'), ['deploy', '-q', '--image', s.url, '--disk', disk, '--stall-timeout', '0.3', '--retry-for', '2s']);
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => { out += String(d); });
    c.stderr.on('data', (d: Buffer) => { err += String(d); });
    c.on('close', (status) => ok({ status, out, err }));
  });
  assert.equal(r.status, 4, r.err);
  assert.doesNotMatch(r.out, /OK/);
  assert.match(r.err, /booty: fetch: the download broke off and could not be resumed: no progress for 2 s after \d+ of \d+ bytes received \(\d+ tries; last error: server answered 50[23]/);
  const m = /(\d+) image bytes were written; at byte \d+; (disk left partially written and NOT bootable|the disk was not written)/.exec(r.err);
  assert.ok(m, r.err);
  assertDiskAsReported(disk, m[2] === 'the disk was not written' ? 'untouched' : 'partially-written');
});

test('bad --stall-timeout / --retry-for values are config errors (2)', async () => {
  const r = await new Promise<{ status: number | null; err: string }>((ok) => {
    const c = spawn(path.join(root, 'bin/booty'), ['deploy', '--image', 'http://127.0.0.1:1/x', '--disk', '/dev/null', '--retry-for', 'soon']);
    let err = '';
    c.stderr.on('data', (d: Buffer) => { err += String(d); });
    c.on('close', (status) => ok({ status, err }));
  });
  assert.equal(r.status, 2);
  assert.match(r.err, /--retry-for must be a duration like 30s, 10m or 45 \(seconds\), not "soon"/);
});
