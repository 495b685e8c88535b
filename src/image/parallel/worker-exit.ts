// Ending a codec worker that uses koffi (libdeflate) without terminate(): terminate() stops a
// thread wherever it is, and a thread stopped while koffi loads or returns from a native call
// takes the whole process down (node-addon-api: "FATAL ERROR: Error::ThrowAsJavaScriptException
// napi_throw", seen when a capture the server refused closed its pool at once). Instead the
// worker is asked to exit and does so between tasks (its current one takes milliseconds); only
// one that has not gone after `graceMs` is terminated.

/** The message a worker answers with process.exit(0). */
export const EXIT_MESSAGE = { op: 'exit' } as const;

/** In a worker, first thing in its 'message' handler: exits on EXIT_MESSAGE. */
export function exitIfAsked(m: unknown): void {
  if (typeof m === 'object' && m !== null && (m as { op?: unknown }).op === EXIT_MESSAGE.op) process.exit(0);
}

interface ExitableWorker {
  postMessage(m: unknown): void;
  once(ev: 'exit', f: () => void): unknown;
  terminate(): Promise<number>;
  ref(): void;
  threadId: number;
}

/** Asks the worker to exit; resolves once it has (terminating it after graceMs). */
export function endWorker(w: ExitableWorker, graceMs = 10_000): Promise<void> {
  if (w.threadId === -1) return Promise.resolve(); // already gone
  return new Promise((resolve) => {
    // an idle pool's workers are unref'd: without this the process could end before they do,
    // with the caller's await never resumed
    w.ref();
    const timer = setTimeout(() => { void w.terminate(); }, graceMs);
    timer.unref();
    w.once('exit', () => { clearTimeout(timer); resolve(); });
    try { w.postMessage(EXIT_MESSAGE); } catch { clearTimeout(timer); void w.terminate().then(() => resolve(), () => resolve()); }
  });
}
