// A block decode worker (block-decode-pool.ts starts it, worker-start.ts says how): decodes one
// xz block or one bzip2 block per task, each wrapped as a standalone one-block stream
// (xz-container.ts wrapBlock, bzip2-bits.ts standaloneBlock) so that the library checks it in full
// (xz: block header, sizes, integrity check; bzip2: block CRC), and moves the output back in 1 MiB
// parts as they fill, all-zero parts as a count.
import { parentPort, workerData } from 'node:worker_threads';
import v8 from 'node:v8';
import vm from 'node:vm';
import { exitIfAsked } from './worker-exit.ts';
import { WorkerNativeLib } from '../../sys/native-codec-worker.ts';
import { LZMA_FUNCTIONS, lzmaApi } from '../../sys/liblzma-api.ts';
import { BZ2_FUNCTIONS, bz2Api } from '../../sys/libbz2-api.ts';
import type { NativeStreamDecoder, StreamDecodeError } from '../../sys/stream-decoder.ts';
import { wrapBlock } from '../format/xz-container.ts';
import { standaloneBlock } from '../format/bzip2-bits.ts';
import type { BlockPart, BlockReply, BlockRequest, BlockWorkerData } from './block-decode-pool.ts';

if (parentPort === null) throw new Error('block-decode-worker-entry.ts runs as a worker thread (block-decode-pool.ts)');
const port = parentPort;
const cfg = workerData as BlockWorkerData;
/** output part size: bzip2 blocks decode to at most ~900 kB apart from long runs; smaller parts
 *  also keep each worker's own buffers small */
const PART = 1 << 20;
const ZEROS = Buffer.alloc(PART);

// A task's input (moved here) is garbage once decoded: a scavenge after each task keeps the
// worker's external memory from piling up (codec-worker-entry.ts does the same).
let collect: ((o: { type: 'minor' }) => void) | null = null;
try {
  v8.setFlagsFromString('--expose-gc');
  collect = vm.runInNewContext('gc') as (o: { type: 'minor' }) => void;
} catch { collect = null; }

const lzma = new WorkerNativeLib(cfg.liblzma, LZMA_FUNCTIONS, lzmaApi);
const bz2 = new WorkerNativeLib(cfg.libbz2, BZ2_FUNCTIONS, bz2Api);

class Refused extends Error {
  readonly e: StreamDecodeError;
  constructor(e: StreamDecodeError) { super(e.message); this.e = e; }
}

/** Decodes `pieces` (one whole stream, in a row) into parts; the stream must end exactly at the
 *  end of the last piece. Each part is sent as soon as it is full (`send`), so a block's output
 *  does not pile up here while the block decodes. */
function decodeAll(dec: NativeStreamDecoder, pieces: Buffer[], send: (p: BlockPart) => void): void {
  let out = Buffer.allocUnsafeSlow(PART);
  let zeros = 0;
  const flushZeros = () => { if (zeros > 0) { send(zeros); zeros = 0; } };
  try {
    for (let i = 0; i < pieces.length; i++) {
      const input = pieces[i];
      const last = i === pieces.length - 1;
      let off = 0;
      for (;;) {
        const r = dec.step(input, off, input.length - off, out, 0, PART, last);
        const consumed = input.length - off - r.inLeft;
        off += consumed;
        const produced = PART - r.outLeft;
        if (produced > 0) {
          if (out.compare(ZEROS, 0, produced, 0, produced) === 0) zeros += produced; // a count; the buffer is reused
          else if (produced >= PART >> 1) {
            flushZeros();
            send(out.subarray(0, produced));
            out = Buffer.allocUnsafeSlow(PART);
          } else {
            flushZeros();
            const small = Buffer.allocUnsafeSlow(produced);
            out.copy(small, 0, 0, produced);
            send(small);
          }
        }
        if (r.error !== null) throw new Refused(r.error);
        if (r.ended) {
          if (!last || off !== input.length) throw new Refused({ message: 'data after the end of the block', kind: 'corrupt' });
          flushZeros();
          return;
        }
        // this piece is used up (the decoder has output room left): the next one
        if (r.outLeft > 0 && off === input.length && !last) break;
        if (consumed === 0 && produced === 0) throw new Refused({ message: 'the block ends early', kind: 'truncated' });
      }
    }
  } finally {
    dec.end();
  }
}

function run(t: BlockRequest, send: (p: BlockPart) => void): void {
  const data = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (t.op === 'xz') {
    const api = lzma.get();
    if (api === null) throw new Error('liblzma did not load in the block worker');
    return decodeAll(api.decoder(0), wrapBlock(data, t.flags, t.unpadded, t.uncompressed), send);
  }
  const api = bz2.get();
  if (api === null) throw new Error('libbz2 did not load in the block worker');
  return decodeAll(api.decoder(), [standaloneBlock(data, t.bit, t.bits, t.level, t.crc)], send);
}

port.on('message', (m: BlockRequest | null) => {
  exitIfAsked(m);
  let t = m;
  m = null;
  const id = t!.id;
  try {
    // parts go as they come (moved, not copied); 'done' ends the block
    run(t!, (part) => port.postMessage({ id, part, more: true } satisfies BlockReply, typeof part === 'number' ? [] : [part.buffer as ArrayBuffer]));
    port.postMessage({ id } satisfies BlockReply);
  } catch (e) {
    const error: StreamDecodeError = e instanceof Refused ? e.e : { message: String((e as Error)?.message ?? e), kind: 'limits' };
    port.postMessage({ id, error } satisfies BlockReply);
  }
  t = null;
  collect?.({ type: 'minor' });
});
