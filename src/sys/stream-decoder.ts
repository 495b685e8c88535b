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
