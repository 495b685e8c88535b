// Buffers lent down a pipeline instead of copied: a producer that owns a pool of O_DIRECT-aligned
// blocks (decode-worker.ts) marks each block it pushes with how to give it back, and the consumer
// (writer.ts) writes the block as it is, then gives it back once the disk has its bytes. A consumer
// that does not know about loans must still return them: takeLoan() hands over the duty.
const loans = new WeakMap<Uint8Array, () => void>();

/** Marks `buf` as lent; `giveBack` is called once, when the consumer is done with it. */
export function lendBlock<T extends Uint8Array>(buf: T, giveBack: () => void): T {
  loans.set(buf, giveBack);
  return buf;
}

/** The give-back function of a lent buffer (removing the mark), or undefined when not lent. */
export function takeLoan(buf: Uint8Array): (() => void) | undefined {
  const f = loans.get(buf);
  if (f !== undefined) loans.delete(buf);
  return f;
}
