// The one module that touches node:zlib's private API. booty drives zlib's native handle
// synchronously, as node:zlib's own *Sync functions do (processChunkSync in lib/zlib.js), but
// with the output pointed into buffers booty owns (O_DIRECT write blocks, a reused scratch
// buffer) and the input given as (buffer, offset, length): no copy, no allocation per chunk, no
// thread-pool hop. Node's public API has no such call, so this relies on what a stream keeps in
// private fields:
//   stream._handle.writeSync(flush, in, inOff, inLen, out, outOff, outLen)  one synchronous step
//   stream._handle.onerror = (message, errno, code) => ...                  its error report
//   stream._writeState: Uint32Array [avail_out, avail_in] after the step
//   stream._defaultFlushFlag / stream._finishFlushFlag                      the stream's flush flags
// A Node upgrade that changes them breaks this file alone, and test/unit/sys-zlib-handle.test.ts
// says so loudly (it pins the fields and how they behave). Where they are missing, syncZlib()
// answers undefined and callers take node:zlib's public (slower) road.
import zlib from 'node:zlib';

/** What zlib reported through the handle's onerror (zlib's message, errno and code). */
export interface ZlibError {
  message: string;
  errno: number;
  code: string;
}

/** The node:zlib streams booty drives this way. */
export type SyncZlibStream = zlib.Gunzip | zlib.InflateRaw | zlib.DeflateRaw | zlib.ZstdCompress | zlib.ZstdDecompress;

interface NativeHandle {
  writeSync(flush: number, inp: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  onerror: (message: string, errno: number, code: string) => void;
}

interface Internals {
  _handle?: Partial<NativeHandle> | null;
  _writeState?: unknown;
  _defaultFlushFlag?: unknown;
  _finishFlushFlag?: unknown;
}

/** A node:zlib stream's native handle, driven one synchronous step at a time. */
export class SyncZlib<S extends SyncZlibStream = SyncZlibStream> {
  readonly stream: S;
  /** the stream's flush flag for a step that is not the last (Z_NO_FLUSH; zstd: ZSTD_e_continue) */
  readonly flushFlag: number;
  /** ... and for the last one (Z_FINISH; zstd: ZSTD_e_end) */
  readonly finishFlag: number;
  /** set by the step that failed; reset() clears it */
  error: ZlibError | null = null;
  private readonly handle: NativeHandle;
  private readonly state: Uint32Array;

  /** (use syncZlib(), which checks the internals are there) */
  private constructor(stream: S, handle: NativeHandle, state: Uint32Array, flushFlag: number, finishFlag: number) {
    this.stream = stream;
    this.handle = handle;
    this.state = state;
    this.flushFlag = flushFlag;
    this.finishFlag = finishFlag;
    handle.onerror = (message, errno, code) => { this.error = { message, errno, code }; };
  }

  /** (for syncZlib) */
  static wrap<S extends SyncZlibStream>(stream: S): SyncZlib<S> | undefined {
    const i = stream as unknown as Internals;
    const h = i._handle;
    if (h === undefined || h === null || typeof h.writeSync !== 'function' || !(i._writeState instanceof Uint32Array)
      || typeof i._defaultFlushFlag !== 'number' || typeof i._finishFlushFlag !== 'number') return undefined;
    return new SyncZlib(stream, h as NativeHandle, i._writeState, i._defaultFlushFlag, i._finishFlushFlag);
  }

  /**
   * One step: takes what it can of inp[inOff, inOff + inLen) and writes what it can into
   * out[outOff, outOff + outLen). Afterwards inLeft / outLeft say what was not taken / not
   * filled. False when zlib reported an error (this.error says which).
   */
  write(flush: number, inp: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): boolean {
    this.handle.writeSync(flush, inp, inOff, inLen, out, outOff, outLen);
    return this.error === null;
  }

  /** output space the last step left unfilled */
  get outLeft(): number {
    return this.state[0];
  }

  /** input the last step did not take */
  get inLeft(): number {
    return this.state[1];
  }

  /** Starts a new stream with the same settings (a compressor keeps its level and pledged size). */
  reset(): void {
    // (every zlib stream has reset(); @types/node declares it on some classes only)
    (this.stream as { reset(): void }).reset();
    this.error = null;
  }

  close(): void {
    this.stream.close();
  }
}

/** The stream's handle to drive synchronously, or undefined (and the stream closed) where this
 *  Node's zlib lacks the internals. */
export function syncZlib<S extends SyncZlibStream>(stream: S): SyncZlib<S> | undefined {
  const s = SyncZlib.wrap(stream);
  if (s === undefined) stream.close();
  return s;
}

/** Whether this Node's zlib exposes what booty drives (for the decoders: gunzip and zstd). The
 *  pinned runtime does; elsewhere deploy decodes on the main thread through public streams. */
export function syncZlibSupported(): boolean {
  supported ??= [zlib.createGunzip(), zlib.createZstdDecompress()].every((d) => {
    const ok = SyncZlib.wrap(d) !== undefined;
    d.close();
    return ok;
  });
  return supported;
}
let supported: boolean | undefined;
