// sha256 of a stream, computed on the calling thread or on a thread of libuv's pool, and movable
// between the two at any chunk. node:crypto only hashes synchronously, on the thread that calls
// update(): on a deploy that is the main thread, which also parses HTTP, feeds the decoder, plans
// zero runs and submits writes. Where the CPU's SHA instructions are slow (an emulator: QEMU TCG
// emulates them) the hash was the main thread's largest single cost and that thread the
// deploy's bottleneck (README, Latest figures). Here every update is a koffi call into the same
// OpenSSL node:crypto uses (node's own, found in the process by koffi.load(null)), on one
// SHA256_CTX: synchronous (no copy) while the caller has time for it, asynchronous on the pool
// (the chunk copied into a 1 MiB slab, slabs hashed one at a time, in order) once the caller
// sets `offload` (HashTap decides, hash-placement.ts). Going back drains the slabs first, so the
// bytes always reach the context in stream order.
//
// At first use a known input is hashed both ways and must agree (selfCheck); where koffi or the
// symbols are missing, the check fails, or BOOTY_HASH_THREAD=0, hashing stays on the calling
// thread with node:crypto (`hashThreadWhyNot()` says why, for the logs).
import { createHash, type Hash } from 'node:crypto';
import { koffi } from './libc.ts';
import { firstLine } from './native-codec-lib.ts';

interface Sha256Fns {
  init: (ctx: Buffer) => number;
  update: ((ctx: Buffer, data: Buffer, len: number) => number) & { async: (ctx: Buffer, data: Buffer, len: number, cb: (err: unknown, r: number) => void) => void };
  final: (md: Buffer, ctx: Buffer) => number;
}

/** sizeof(SHA256_CTX) is 112 in OpenSSL 3; room to spare */
const CTX_BYTES = 256;

let loaded: { fns: Sha256Fns | undefined; why: string } | undefined;

function load(): { fns: Sha256Fns | undefined; why: string } {
  if (process.env.BOOTY_HASH_THREAD === '0') return { fns: undefined, why: 'turned off by BOOTY_HASH_THREAD=0' };
  if (loaded !== undefined) return loaded;
  let fns: Sha256Fns;
  try {
    // null: the process itself, where node's statically linked OpenSSL exports its functions
    // (or, in a node built against a shared libcrypto, where that library's are found)
    const lib = koffi().load(null as unknown as string);
    fns = {
      init: lib.func('int SHA256_Init(_Out_ uint8_t *ctx)') as Sha256Fns['init'],
      update: lib.func('int SHA256_Update(uint8_t *ctx, const uint8_t *data, size_t len)') as unknown as Sha256Fns['update'],
      final: lib.func('int SHA256_Final(_Out_ uint8_t *md, uint8_t *ctx)') as Sha256Fns['final'],
    };
  } catch (e) {
    loaded = { fns: undefined, why: `OpenSSL's SHA256 functions not found in the process: ${firstLine(e)}` };
    return loaded;
  }
  const problem = selfCheck(fns);
  loaded = problem === '' ? { fns, why: '' } : { fns: undefined, why: `failed booty's load-time check (${problem})` };
  return loaded;
}

/** '' when the koffi path gives node:crypto's digest on a known input, else what differed. */
function selfCheck(fns: Sha256Fns): string {
  const input = Buffer.alloc(70_001);
  for (let i = 0; i < input.length; i++) input[i] = (i * 131 + 7) & 0xff;
  const ctx = Buffer.alloc(CTX_BYTES);
  const md = Buffer.alloc(32);
  if (fns.init(ctx) !== 1 || fns.update(ctx, input.subarray(0, 3), 3) !== 1 || fns.update(ctx, input.subarray(3), input.length - 3) !== 1 || fns.final(md, ctx) !== 1) return 'a call returned an error';
  const want = createHash('sha256').update(input).digest('hex');
  return md.toString('hex') === want ? '' : `digest ${md.toString('hex').slice(0, 12)}… instead of ${want.slice(0, 12)}…`;
}

/** Why hashing stays on the calling thread ('' when it does not). */
export function hashThreadWhyNot(): string {
  return load().why;
}

/** A sha256 being computed, on the calling thread or off it. */
export interface StreamSha256 {
  /** false: node:crypto on the calling thread only (hashThreadWhyNot() says why) */
  readonly canOffload: boolean;
  /** true: chunks from now on are hashed on the pool (ignored where !canOffload) */
  offload: boolean;
  /** bytes hashed on the pool so far */
  readonly offloaded: number;
  /** Adds `chunk` (copied or hashed at once: the caller may do what it likes with it after). */
  update(chunk: Buffer): void;
  /** bytes given to update() and not hashed yet */
  readonly queued: number;
  /** Resolves once at most `bytes` of whole slabs wait to be hashed; rejects if the hash failed. */
  below(bytes: number): Promise<void>;
  /** The hex digest of everything given, once all of it is hashed. */
  digest(): Promise<string>;
}

/** A new stream hash, on the calling thread until told to offload (where the check passed). */
export function streamSha256(): StreamSha256 {
  const fns = load().fns;
  return fns !== undefined ? new KoffiSha256(fns) : new InPlaceSha256();
}

class InPlaceSha256 implements StreamSha256 {
  readonly canOffload = false;
  offload = false;
  readonly offloaded = 0;
  readonly queued = 0;
  private readonly hash: Hash = createHash('sha256');
  update(chunk: Buffer): void { this.hash.update(chunk); }
  below(): Promise<void> { return Promise.resolve(); }
  digest(): Promise<string> { return Promise.resolve(this.hash.digest('hex')); }
}

/** bytes copied per asynchronous update */
const SLAB = 1 << 20;
/** slabs kept for reuse */
const KEEP_SLABS = 4;

class KoffiSha256 implements StreamSha256 {
  readonly canOffload = true;
  offload = false;
  offloaded = 0;
  /** bytes in slabs handed to the pool and not hashed yet */
  private submitted = 0;
  private readonly fns: Sha256Fns;
  private readonly ctx = Buffer.alloc(CTX_BYTES);
  private cur: Buffer | undefined;
  private fill = 0;
  private readonly free: Buffer[] = [];
  private readonly full: Array<{ buf: Buffer; len: number }> = [];
  private running = false;
  private failure: Error | undefined;
  private waiters: Array<{ bytes: number; resolve: () => void; reject: (e: Error) => void }> = [];

  constructor(fns: Sha256Fns) {
    this.fns = fns;
    if (fns.init(this.ctx) !== 1) this.failure = new Error('sha256: SHA256_Init failed');
  }

  update(chunk: Buffer): void {
    if (this.failure !== undefined || chunk.length === 0) return;
    if (!this.offload && this.submitted === 0 && this.fill === 0) {
      if (this.fns.update(this.ctx, chunk, chunk.length) !== 1) this.failure = new Error('sha256: SHA256_Update failed');
      return;
    }
    // copied: the caller passes its chunk on at once, and whoever gets it next may move its
    // memory to another thread (a transfer) while the hash would still be reading it
    for (let pos = 0; pos < chunk.length;) {
      this.cur ??= this.free.pop() ?? Buffer.allocUnsafeSlow(SLAB);
      const n = Math.min(SLAB - this.fill, chunk.length - pos);
      chunk.copy(this.cur, this.fill, pos, pos + n);
      this.fill += n;
      pos += n;
      if (this.fill === SLAB) this.submit();
    }
    // on the way back to the calling thread: hand over what is here now, so the slabs drain
    if (!this.offload) this.submit();
  }

  private submit(): void {
    if (this.cur === undefined || this.fill === 0) return;
    this.full.push({ buf: this.cur, len: this.fill });
    this.submitted += this.fill;
    this.cur = undefined;
    this.fill = 0;
    this.next();
  }

  private next(): void {
    if (this.running || this.failure !== undefined) return;
    const slab = this.full.shift();
    if (slab === undefined) return;
    this.running = true;
    this.fns.update.async(this.ctx, slab.buf, slab.len, (err, r) => {
      this.running = false;
      if (err !== null && err !== undefined) this.failure = err instanceof Error ? err : new Error(String(err));
      else if (r !== 1) this.failure = new Error('sha256: SHA256_Update failed');
      this.submitted -= slab.len;
      this.offloaded += slab.len;
      if (this.free.length < KEEP_SLABS) this.free.push(slab.buf);
      this.wake();
      this.next();
    });
  }

  private wake(): void {
    const still: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (this.failure !== undefined) w.reject(this.failure);
      else if (this.submitted <= w.bytes) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  get queued(): number {
    return this.submitted + this.fill;
  }

  below(bytes: number): Promise<void> {
    // a partly filled slab is hashed once full or at the end: only the slabs handed over count
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.submitted <= bytes) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ bytes, resolve, reject }));
  }

  async digest(): Promise<string> {
    this.submit();
    await this.below(0);
    if (this.failure !== undefined) throw this.failure;
    const md = Buffer.alloc(32);
    if (this.fns.final(md, this.ctx) !== 1) throw new Error('sha256: SHA256_Final failed');
    return md.toString('hex');
  }
}
