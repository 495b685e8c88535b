// The native streaming decoders (liblzma, libbz2) behind a Node Transform: bit-exact against the
// real tools, backpressure that neither piles output up nor stalls (a stall once ended a deploy
// with nothing left to wait for), input after the end counted as trailing, and the load-time check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDecompressor, trailingBytes } from '../../src/image/format/decompress.ts';
import { LIBLZMA } from '../../src/sys/liblzma.ts';
import { LIBBZ2 } from '../../src/sys/libbz2.ts';
import { checkKnownStream, type NativeStreamDecoder } from '../../src/sys/stream-decoder.ts';
import { takeLoan } from '../../src/image/sink/block-loan.ts';

// 24 MiB: 6 MiB of noise, text, and zeros that compress a thousandfold (one small input chunk
// expands a lot)
const image = Buffer.alloc(24 << 20);
let x = 0x9e3779b9;
for (let i = 0; i < 6 << 20; i += 4) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; image.writeUInt32LE(x >>> 0, i); }
image.write('booty native decoder test\n'.repeat(200_000), 8 << 20, 'latin1');

// the tool reads a file and writes one (no large pipes into a child process)
const tool = (cmd: string, args: string[]): Buffer => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'booty-native-'));
  try {
    writeFileSync(path.join(dir, 'image'), image);
    execFileSync('bash', ['-c', `${cmd} ${args.join(' ')} image > out`], { cwd: dir, stdio: 'ignore' });
    return readFileSync(path.join(dir, 'out'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

async function decodeSlowly(format: 'xz' | 'bzip2', data: Buffer): Promise<{ out: Buffer; peakBuffered: number; trailing: number }> {
  const d = createDecompressor(format)!;
  const parts: Buffer[] = [];
  let peakBuffered = 0;
  const sink = new Writable({
    highWaterMark: 1 << 20,
    write(c: Buffer, _e, cb) { parts.push(Buffer.from(c)); peakBuffered = Math.max(peakBuffered, d.readableLength); setImmediate(cb); },
  });
  // fed in small pieces through a stream in between, as the network and the hash tap deliver
  // them: the pattern that once left reader and writer waiting for each other
  const piece = 60;
  const pieces = Array.from({ length: Math.ceil(data.length / piece) }, (_, i) => data.subarray(i * piece, (i + 1) * piece));
  // A stall is no output for a while, not a slow run: on a loaded machine the whole decode may
  // take minutes, while a deadlock makes no progress at all.
  let timer: NodeJS.Timeout | undefined;
  const out = () => parts.reduce((a, p) => a + p.length, 0);
  const stalled = new Promise<never>((_, reject) => {
    let seen = -1;
    timer = setInterval(() => {
      const now = out();
      if (now === seen) reject(new Error(`stalled after ${now} bytes: no output for 20 s`));
      seen = now;
    }, 20_000);
  });
  try {
    await Promise.race([pipeline(Readable.from(pieces), new PassThrough(), d, sink), stalled]);
  } finally {
    clearInterval(timer);
  }
  return { out: Buffer.concat(parts), peakBuffered, trailing: trailingBytes(d, data.length) };
}

// The compressed inputs are made before any decoder runs: after liblzma's threaded decoder the
// test process's address space is large enough that forking a tool failed with ENOMEM here.
const compressed = { xz: tool('xz', ['-T2', '--block-size=4MiB', '-c']), bzip2: tool('bzip2', ['-c']) };

for (const [format, cmd] of [['xz', 'xz'], ['bzip2', 'bzip2']] as const) {
  test(`${format}: bit-exact with ${cmd}, bounded buffering under a slow reader, no stall`, async () => {
    const data = compressed[format];
    const r = await decodeSlowly(format, data);
    assert.ok(r.out.equals(image), 'bit-exact');
    assert.ok(r.peakBuffered <= 16 << 20, `a bounded amount waits for the reader (saw ${r.peakBuffered})`);
    assert.equal(r.trailing, 0);
  });
}

// The decoder lends its output buffers (block-loan.ts): the writer copies each and gives it back,
// and the decoder reuses it instead of leaving a fresh 1 MiB buffer per step to the next garbage
// collection. A consumer that keeps the chunks and never gives them back must get its bytes intact.
for (const format of ['xz', 'bzip2'] as const) {
  test(`${format}: output buffers given back are reused; chunks kept by a consumer that does not borrow are never overwritten`, async () => {
    const buffers = new Set<ArrayBufferLike>();
    const copied: Buffer[] = [];
    const borrower = new Writable({
      write(c: Buffer, _e, cb) {
        const loan = takeLoan(c);
        assert.ok(loan !== undefined, 'every output chunk is lent');
        buffers.add(c.buffer);
        copied.push(Buffer.from(c));
        setImmediate(() => { loan.giveBack(); cb(); });
      },
    });
    await pipeline(Readable.from([compressed[format]]), createDecompressor(format)!, borrower);
    assert.ok(Buffer.concat(copied).equals(image), 'bit-exact through a borrowing writer');
    assert.ok(buffers.size <= 6, `${buffers.size} output buffers for ${image.length >> 20} MiB of output`);

    const kept: Buffer[] = [];
    const keeper = new Writable({ write(c: Buffer, _e, cb) { kept.push(c); setImmediate(cb); } });
    await pipeline(Readable.from([compressed[format]]), createDecompressor(format)!, keeper);
    assert.ok(Buffer.concat(kept).equals(image), 'bit-exact when the chunks are kept as they came');
  });
}

test('bzip2: bytes after the last stream are left unconsumed (deploy reports them as trailing)', async () => {
  const data = Buffer.concat([compressed.bzip2, Buffer.from('trailing junk')]);
  const r = await decodeSlowly('bzip2', data);
  assert.ok(r.out.equals(image));
  assert.equal(r.trailing, 'trailing junk'.length);
});

test('both libraries pass their load-time check here', () => {
  assert.equal(LIBLZMA.whyNot(), '');
  assert.equal(LIBBZ2.whyNot(), '');
});

test('the load-time check refuses a decoder that gets the known stream wrong, or misses damage', () => {
  const fake = (output: string, failOnDamage: boolean): (() => NativeStreamDecoder) => () => ({
    step(inp, inOff, inLen, out, outOff) {
      const damaged = inp[inOff + 3] !== 0x58;
      out.write(output, outOff, 'latin1');
      return { inLeft: 0, outLeft: out.length - outOff - output.length, ended: true, error: damaged && failOnDamage ? { message: 'bad', kind: 'corrupt' } : null };
    },
    end() {},
  });
  const known = Buffer.from('FFFXFFFF');
  assert.equal(checkKnownStream(fake('text', true), '.t', known, 'text', 3), '');
  assert.match(checkKnownStream(fake('txet', true), '.t', known, 'text', 3), /a known \.t stream decoded to "txet"/);
  assert.match(checkKnownStream(fake('text', false), '.t', known, 'text', 3), /a damaged \.t stream decoded without an error/);
});
