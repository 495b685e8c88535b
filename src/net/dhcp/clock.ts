// Time as the DHCP client sees it. The real clock is setTimeout/Date.now; unit tests pass a fake
// one so hours of lease time (T1, T2, expiry, backoff) run in milliseconds and deterministically.

export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => setTimeout(fn, Math.max(0, Math.min(ms, 0x7fffffff))),
  clearTimer: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};
