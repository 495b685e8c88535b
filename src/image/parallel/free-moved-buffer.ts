// Memory moved between threads (a block's compressed input to its worker, a decoded part back to
// the main thread) is garbage as soon as its one user is done with it, but V8 frees an
// ArrayBuffer's memory only when a collection reaches it: buffers promoted to the old generation
// then piled up by tens of MiB (README, "Memory of the block decoders"). Detaching the buffer
// (ArrayBuffer.prototype.transfer(0)) frees its memory at once.

/** Frees the memory under `view` now. Only for a buffer that nothing else refers to (moved here
 *  whole, or made for this view alone); shared memory and detached buffers are left alone. */
export function freeMovedBuffer(view: Uint8Array): void {
  const ab = view.buffer;
  if (ab instanceof ArrayBuffer && !ab.detached) ab.transfer(0);
}
