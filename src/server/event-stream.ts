// Live updates for dashboards: `GET /api/events/stream` (Server-Sent Events). Changes are
// gathered for a quarter of a second, each changed machine is summarized ONCE per tick and the
// same bytes go to every open dashboard, so 50 agents reporting and 10 browsers watching cost
// 50 summaries per tick, not 500.
//
// Events: `machine` (a machine's summary, as in GET /api/machines), `removed` ({mac}),
// `log` ({mac, lines}), `images` (the catalog changed: refetch), and `: ping` comments.

import type { ServerResponse } from 'node:http';
import type { MachineChange } from './machines/changes.ts';
import type { MachineStore } from './machines/machine-store.ts';
import { HttpError } from './http/http-error.ts';

const TICK_MS = 250;
const PING_MS = 15_000;
const MAX_BUFFERED = 4 << 20;
/** open streams per operator (a dashboard tab each) and in all: each costs a socket and buffered bytes */
export const STREAM_LIMITS = { perOperator: 16, total: 128 };

export class EventStreamHub {
  readonly #clients = new Set<ServerResponse>();
  readonly #perOperator = new Map<string, number>();
  readonly #changed = new Set<string>();
  readonly #removed = new Set<string>();
  readonly #logs = new Map<string, string[]>();
  #images = false;
  #tick: NodeJS.Timeout | undefined;
  readonly #ping: NodeJS.Timeout;
  readonly #machines: MachineStore;
  readonly #unsubscribe: () => void;
  #flushing = false;

  constructor(machines: MachineStore) {
    this.#machines = machines;
    this.#unsubscribe = machines.onChange((c) => this.#note(c));
    this.#ping = setInterval(() => this.#send(': ping\n\n'), PING_MS);
    this.#ping.unref();
  }

  get clients(): number { return this.#clients.size; }

  /** Open a stream for operator `who`; 429/503 (thrown) when they or everyone have too many open. */
  attach(res: ServerResponse, who: string): void {
    const mine = this.#perOperator.get(who) ?? 0;
    if (mine >= STREAM_LIMITS.perOperator) {
      throw new HttpError(429, `${who} has ${mine} live streams open (at most ${STREAM_LIMITS.perOperator}); close some dashboard tabs`, { headers: { 'Retry-After': '30' } });
    }
    if (this.#clients.size >= STREAM_LIMITS.total) {
      throw new HttpError(503, `${this.#clients.size} live streams are open (at most ${STREAM_LIMITS.total}); try again later`, { headers: { 'Retry-After': '30' } });
    }
    this.#perOperator.set(who, mine + 1);
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive',
      // proxies (nginx) must not buffer the stream
      'X-Accel-Buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    this.#clients.add(res);
    res.on('close', () => {
      this.#clients.delete(res);
      const n = (this.#perOperator.get(who) ?? 1) - 1;
      if (n > 0) this.#perOperator.set(who, n); else this.#perOperator.delete(who);
    });
  }

  imagesChanged(): void {
    this.#images = true;
    this.#schedule();
  }

  #note(c: MachineChange): void {
    if (this.#clients.size === 0) return;
    if (c.type === 'images') this.#images = true;
    else if (c.type === 'machine') this.#changed.add(c.mac);
    else if (c.type === 'removed') { this.#removed.add(c.mac); this.#changed.delete(c.mac); }
    else {
      const l = this.#logs.get(c.mac);
      if (l === undefined) this.#logs.set(c.mac, [...c.lines]); else l.push(...c.lines);
    }
    this.#schedule();
  }

  #schedule(): void {
    this.#tick ??= setTimeout(() => { this.#tick = undefined; void this.#flush(); }, TICK_MS);
  }

  async #flush(): Promise<void> {
    if (this.#flushing) { this.#schedule(); return; }
    this.#flushing = true;
    try {
      const changed = [...this.#changed];
      const removed = [...this.#removed];
      const logs = [...this.#logs];
      const images = this.#images;
      this.#changed.clear(); this.#removed.clear(); this.#logs.clear(); this.#images = false;
      const parts: string[] = [];
      for (const mac of changed) {
        const s = await this.#machines.summary(mac);
        if (s !== undefined) parts.push(`event: machine\ndata: ${JSON.stringify(s)}\n\n`);
      }
      for (const mac of removed) parts.push(`event: removed\ndata: ${JSON.stringify({ mac })}\n\n`);
      for (const [mac, lines] of logs) parts.push(`event: log\ndata: ${JSON.stringify({ mac, lines: lines.slice(-200) })}\n\n`);
      if (images) parts.push('event: images\ndata: {}\n\n');
      if (parts.length > 0) this.#send(parts.join(''));
    } finally { this.#flushing = false; }
  }

  #send(text: string): void {
    for (const res of this.#clients) {
      // a dashboard that stopped reading (a sleeping phone) is dropped rather than buffered forever;
      // EventSource reconnects and reloads the list when it wakes up
      if (res.writableLength > MAX_BUFFERED) { res.destroy(); continue; }
      res.write(text);
    }
  }

  close(): void {
    this.#unsubscribe();
    clearInterval(this.#ping);
    if (this.#tick !== undefined) clearTimeout(this.#tick);
    for (const res of this.#clients) res.end();
    this.#clients.clear();
  }
}
