// A virtual clock for the DHCP client (src/net/dhcp/clock.ts): timers fire only when a test
// advances time, so lease times of minutes run instantly and retransmission intervals can be
// read exactly. Between timers it lets pending promise chains settle.
import type { Clock } from '../../src/net/dhcp/clock.ts';

interface Timer { id: number; at: number; fn: () => void }

export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
}

export class FakeClock implements Clock {
  #t: number;
  #timers: Timer[] = [];
  #next = 1;

  constructor(start = 1_000_000) { this.#t = start; }

  now(): number { return this.#t; }

  setTimer(fn: () => void, ms: number): unknown {
    const t = { id: this.#next++, at: this.#t + Math.max(0, ms), fn };
    this.#timers.push(t);
    return t.id;
  }

  clearTimer(handle: unknown): void {
    this.#timers = this.#timers.filter((t) => t.id !== handle);
  }

  get pendingTimers(): number { return this.#timers.length; }

  /** Moves time forward by ms, firing due timers in order and settling promises after each. */
  async advance(ms: number): Promise<void> {
    const end = this.#t + ms;
    for (;;) {
      await settle();
      let due: Timer | undefined;
      for (const t of this.#timers) if (t.at <= end && (due === undefined || t.at < due.at)) due = t;
      if (due === undefined) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#t = due.at;
      due.fn();
    }
    this.#t = end;
    await settle();
  }

  /** Advances in steps until cond() holds; throws after maxMs of virtual time. */
  async advanceUntil(cond: () => boolean, maxMs: number, stepMs = 100): Promise<void> {
    const end = this.#t + maxMs;
    while (!cond()) {
      if (this.#t >= end) throw new Error(`condition not met within ${maxMs} ms of virtual time`);
      await this.advance(stepMs);
    }
  }
}
