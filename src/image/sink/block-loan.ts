// Buffers lent down a pipeline instead of copied: a producer marks each buffer it pushes with how
// to give it back, and the consumer (writer.ts) gives it back once done with it. Two kinds:
// - aligned blocks from a pool of O_DIRECT-aligned buffers (decode-worker.ts, segment-inflate.ts):
//   the writer may write such a block as it is, and gives it back once the disk has its bytes;
// - buffers of no particular address that the producer owns alone (the block decoders' parts,
//   moved from a worker): the writer copies them and gives them back at once, so that the
//   producer can free their memory then rather than at the next collection of the heap.
// A consumer that does not know about loans must still return them: takeLoan() hands over the duty.
interface Loan { giveBack: () => void; aligned: boolean }

const loans = new WeakMap<Uint8Array, Loan>();

/** Marks `buf` as lent; `giveBack` is called once, when the consumer is done with it. `aligned`:
 *  the buffer is an O_DIRECT-aligned block that may be written as it is (default). */
export function lendBlock<T extends Uint8Array>(buf: T, giveBack: () => void, aligned = true): T {
  loans.set(buf, { giveBack, aligned });
  return buf;
}

/** The loan of a lent buffer (removing the mark), or undefined when not lent. */
export function takeLoan(buf: Uint8Array): Loan | undefined {
  const loan = loans.get(buf);
  if (loan !== undefined) loans.delete(buf);
  return loan;
}
