// The shape every native streaming decoder booty drives has (liblzma for xz, libbz2 for bzip2):
// one step moves bytes from an input window to an output window, as the libraries' own
// *_code/*Decompress calls do, and says whether the stream ended or what went wrong.

/** A decoder failure in the library's own terms, mapped to deploy's words by the caller. */
export interface StreamDecodeError {
  message: string;
  /** 'corrupt' (bad data or header), 'truncated' (input ended inside the stream), 'limits'
   *  (memory or options the library refuses) */
  kind: 'corrupt' | 'truncated' | 'limits';
}

export interface StepResult { inLeft: number; outLeft: number; ended: boolean; error: StreamDecodeError | null }

export interface NativeStreamDecoder {
  /** Decodes what fits into out[outOff, outOff+outLen) from inp[inOff, inOff+inLen). `finish`:
   *  no input follows this window. After `ended`, bytes left in the input are not part of the
   *  stream (the caller reports them as trailing bytes). */
  step(inp: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number, finish: boolean): StepResult;
  /** Frees the library's state (idempotent). */
  end(): void;
}

/**
 * A native decoder's load-time check: `known` must decode to `text`, and the same stream with one
 * bit flipped at `flipAt` must fail. '' when both hold, else what went wrong (for the log).
 */
export function checkKnownStream(newDecoder: () => NativeStreamDecoder, what: string, known: Buffer, text: string, flipAt: number): string {
  const decodeAll = (input: Buffer): { out: string; error: StreamDecodeError | null } => {
    const d = newDecoder();
    try {
      const out = Buffer.alloc(4096);
      const r = d.step(input, 0, input.length, out, 0, out.length, true);
      return { out: out.subarray(0, out.length - r.outLeft).toString('latin1'), error: r.error ?? (r.ended ? null : { message: 'did not end', kind: 'truncated' }) };
    } finally { d.end(); }
  };
  const good = decodeAll(known);
  if (good.error !== null || good.out !== text) return `a known ${what} stream decoded to ${JSON.stringify(good.out.slice(0, 40))}${good.error ? ` (${good.error.message})` : ''}`;
  const damaged = Buffer.from(known);
  damaged[flipAt] ^= 0x01;
  if (decodeAll(damaged).error === null) return `a damaged ${what} stream decoded without an error`;
  return '';
}
