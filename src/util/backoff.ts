// Retry delays for talking to a server that may be down (rebooting, not yet started): grow
// exponentially so a fleet booting at once does not hammer it, cap so a machine notices soon
// when it comes back, and jitter so machines that failed together do not retry together.

export interface BackoffOptions {
  initialMs: number;
  factor: number;
  maxMs: number;
  /** 0..1: the delay is reduced by up to this fraction at random */
  jitter: number;
}

export const defaultBackoff: BackoffOptions = { initialMs: 1000, factor: 2, maxMs: 30_000, jitter: 0.2 };

/** Delay before retry number `attempt` (0 = the first retry). `random` returns [0, 1). */
export function backoffDelay(attempt: number, opts: BackoffOptions = defaultBackoff, random: () => number = Math.random): number {
  const base = Math.min(opts.maxMs, opts.initialMs * opts.factor ** Math.max(0, attempt));
  return Math.round(base * (1 - opts.jitter * random()));
}

/**
 * Whether another retry fits in the total time budget: `elapsedMs` spent so far, the next
 * `delayMs`. A budget of 0 means retry forever.
 */
export function withinBudget(elapsedMs: number, delayMs: number, budgetMs: number): boolean {
  return budgetMs === 0 || elapsedMs + delayMs <= budgetMs;
}

/** Waits `ms`; rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(t); reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted')); };
    if (signal?.aborted) onAbort(); else signal?.addEventListener('abort', onAbort, { once: true });
  });
}
