// A TCP fault proxy for reliability tests: sits between the agent and the server (on loopback or on
// a test bridge address) and, per accepted connection, cuts (FIN), resets (RST), stalls or throttles
// one direction at a byte offset. What happens to connection number k is decided by
// planFault(seed, k, faults) (test/helpers/fault-plan.ts), so a run with the same seed and the same
// connection order replays the same faults. Backpressure is kept end to end: a source socket is
// paused while its chunk is being forwarded, so the proxy holds at most one chunk per direction.
import net from 'node:net';
import { planFault, validateFaultOptions, FAULT_KINDS } from './fault-plan.ts';
import type { FaultDirection, FaultKind, FaultOptions, FaultPlan } from './fault-plan.ts';

export type { FaultDirection, FaultKind, FaultOptions, FaultPlan } from './fault-plan.ts';

export interface FaultEvent {
  ordinal: number;
  kind: FaultKind;
  direction: FaultDirection;
  offset: number;
  stallMs: number;
  bytesPerSecond: number;
}

export interface FaultStats {
  /** Connections accepted so far. */
  connections: number;
  /** Connections still open. */
  active: number;
  /** Connections whose target connect failed (the client was closed). */
  connectErrors: number;
  /** Faults that actually fired, per kind (a planned fault whose offset is never reached does not count). */
  faults: Record<FaultKind, number>;
  faultsTotal: number;
  /** Bytes handed on, per direction. */
  bytes: Record<FaultDirection, number>;
  /** Every fired fault, in firing order. */
  fired: FaultEvent[];
  /** Bytes the proxy holds right now in user space (socket write buffers + chunks being forwarded):
   *  stays around a chunk or two per connection whatever the peers do, because of backpressure. */
  bufferedBytes: number;
}

export interface FaultProxyOptions {
  target: { host: string; port: number };
  /** Default 127.0.0.1, port 0 (any free port). */
  listen?: { host?: string; port?: number };
  seed: number;
  faults: FaultOptions;
  /** After a cut, how long to wait for each peer to close before destroying its socket. Default 1000 ms. */
  cutGraceMs?: number;
}

export interface FaultProxy {
  host: string;
  port: number;
  /** http://host:port, for pointing an HTTP client at the proxy. */
  url: string;
  stats(): FaultStats;
  /** The plan connection `ordinal` gets (before maxFaults/passThrough apply). */
  planFor(ordinal: number): FaultPlan;
  /** Switch pass-through at run time: new connections and not yet fired faults are left alone. */
  setPassThrough(on: boolean): void;
  /** Stops listening and destroys every open connection and timer. */
  close(): Promise<void>;
}

interface PumpHooks {
  /** Asks the proxy to let this fault fire (false: budget spent or pass-through). */
  fire(plan: FaultPlan): boolean;
  cut(direction: FaultDirection): void;
  reset(): void;
  sleep(ms: number): Promise<void>;
  counted(direction: FaultDirection, n: number): void;
}

/** Forwards one direction of a connection, applying that direction's fault if it has one. */
class DirectionPump {
  readonly direction: FaultDirection;
  private readonly src: net.Socket;
  private readonly dst: net.Socket;
  private readonly hooks: PumpHooks;
  private fault: FaultPlan | null;
  private forwarded = 0;
  private throttleRate = 0;
  private queue: Buffer[] = [];
  private current = 0;
  private busy = false;
  private srcEnded = false;
  /** No more forwarding: the connection was cut, reset or torn down. Incoming data is dropped. */
  stopped = false;
  /** A stall without end fired: nothing is forwarded any more until a side gives up. */
  halted = false;
  /** The source ended and that end was passed on. */
  done = false;

  constructor(direction: FaultDirection, src: net.Socket, dst: net.Socket, fault: FaultPlan | null, hooks: PumpHooks) {
    this.direction = direction;
    this.src = src;
    this.dst = dst;
    this.fault = fault;
    this.hooks = hooks;
  }

  start(): void {
    this.src.on('data', (chunk: Buffer) => {
      if (this.stopped || this.halted) return;
      this.queue.push(chunk);
      if (!this.busy) void this.drain();
    });
    this.src.on('end', () => { this.srcEnded = true; this.passEnd(); });
    this.src.resume();
  }

  /** Stop forwarding; keep reading and dropping so the peer's close stays a FIN, not an RST. */
  stop(): void {
    this.stopped = true;
    this.queue = [];
    if (!this.src.destroyed) this.src.resume();
  }

  private passEnd(): void {
    if (!this.srcEnded || this.busy || this.stopped || this.halted || this.done) return;
    this.done = true;
    if (!this.dst.destroyed && !this.dst.writableEnded) this.dst.end();
  }

  private async drain(): Promise<void> {
    this.busy = true;
    this.src.pause();
    while (this.queue.length > 0 && !this.stopped && !this.halted) {
      await this.forward(this.queue.shift()!);
    }
    this.busy = false;
    if (this.stopped || this.halted) return;
    if (this.srcEnded) this.passEnd();
    else if (!this.src.destroyed) this.src.resume();
  }

  /** Bytes received from the source and not yet handed to the destination socket. */
  get heldBytes(): number {
    return this.current + this.queue.reduce((n, b) => n + b.length, 0);
  }

  private async forward(chunk: Buffer): Promise<void> {
    this.current = chunk.length;
    try { await this.forwardChunk(chunk); } finally { this.current = 0; }
  }

  private async forwardChunk(chunk: Buffer): Promise<void> {
    let buf = chunk;
    while (buf.length > 0 && !this.stopped && !this.halted) {
      const f = this.fault;
      if (f === null) { await this.write(buf); return; }
      const before = f.offset - this.forwarded;
      if (before > 0) {
        const head = buf.length > before ? buf.subarray(0, before) : buf;
        await this.write(head);
        buf = buf.subarray(head.length);
        continue;
      }
      if (this.throttleRate > 0) { await this.writePaced(buf); return; }
      // The offset is reached and byte offset+1 is here: fire (once).
      if (f.kind === 'none' || !this.hooks.fire(f)) { this.fault = null; continue; }
      switch (f.kind) {
        case 'cut': this.fault = null; this.hooks.cut(this.direction); return;
        case 'reset': this.fault = null; this.hooks.reset(); return;
        case 'stall':
          this.fault = null;
          if (f.stallMs === Infinity) { this.halted = true; return; }
          await this.hooks.sleep(f.stallMs);
          continue;
        case 'throttle': this.throttleRate = f.bytesPerSecond; continue;
      }
    }
  }

  private write(buf: Buffer): Promise<void> {
    if (this.dst.destroyed || this.dst.writableEnded) { this.stopped = true; return Promise.resolve(); }
    this.forwarded += buf.length;
    this.hooks.counted(this.direction, buf.length);
    if (this.dst.write(buf)) return Promise.resolve();
    return new Promise(resolve => {
      const done = (): void => { this.dst.off('drain', done); this.dst.off('close', done); resolve(); };
      this.dst.on('drain', done);
      this.dst.on('close', done);
    });
  }

  // Pieces of ~50 ms worth of bytes, each followed by the time it "costs" at the rate.
  private async writePaced(buf: Buffer): Promise<void> {
    const piece = Math.max(1, Math.floor(this.throttleRate / 20));
    for (let i = 0; i < buf.length && !this.stopped; i += piece) {
      const p = buf.subarray(i, i + piece);
      await this.write(p);
      await this.hooks.sleep((p.length * 1000) / this.throttleRate);
    }
  }
}

/** One accepted client socket and its socket to the target. */
class ProxiedConnection {
  readonly ordinal: number;
  readonly plan: FaultPlan;
  private readonly client: net.Socket;
  private readonly server: net.Socket;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly graceMs: number;
  private readonly onFinished: () => void;
  private download: DirectionPump | null = null;
  private upload: DirectionPump | null = null;
  private finished = false;
  private faulted = false;

  constructor(ordinal: number, plan: FaultPlan, client: net.Socket, server: net.Socket, graceMs: number,
    onFinished: () => void) {
    this.ordinal = ordinal;
    this.plan = plan;
    this.client = client;
    this.server = server;
    this.graceMs = graceMs;
    this.onFinished = onFinished;
    for (const s of [client, server]) {
      s.on('error', () => { /* seen through 'close' (hadError) */ });
      s.on('close', hadError => this.sideClosed(s, hadError));
    }
  }

  start(hooks: Omit<PumpHooks, 'cut' | 'reset' | 'sleep'>): void {
    const all: PumpHooks = {
      ...hooks,
      cut: () => this.cut(),
      reset: () => this.reset(),
      sleep: ms => this.sleep(ms),
    };
    const planFor = (d: FaultDirection): FaultPlan | null => (this.plan.kind !== 'none' && this.plan.direction === d ? this.plan : null);
    this.download = new DirectionPump('download', this.server, this.client, planFor('download'), all);
    this.upload = new DirectionPump('upload', this.client, this.server, planFor('upload'), all);
    for (const s of [this.client, this.server]) s.setNoDelay(true);
    // A peer that says it is done while the other direction is stalled for good has given up.
    this.client.on('end', () => { if (this.download?.halted) this.destroy(); });
    this.server.on('end', () => { if (this.upload?.halted) this.destroy(); });
    this.download.start();
    this.upload.start();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise(resolve => {
      if (this.finished) return; // never resolves: the connection is gone
      const t = setTimeout(() => { this.timers.delete(t); resolve(); }, ms);
      this.timers.add(t);
    });
  }

  /** FIN both ways after what was forwarded; then drop whatever still arrives. */
  private cut(): void {
    this.faulted = true;
    this.download?.stop();
    this.upload?.stop();
    for (const s of [this.client, this.server]) {
      if (s.destroyed) continue;
      s.end();
      const t = setTimeout(() => { this.timers.delete(t); s.destroy(); }, this.graceMs);
      this.timers.add(t);
    }
  }

  private reset(): void {
    this.faulted = true;
    this.download?.stop();
    this.upload?.stop();
    for (const s of [this.client, this.server]) if (!s.destroyed) s.resetAndDestroy();
  }

  private sideClosed(side: net.Socket, hadError: boolean): void {
    const other = side === this.client ? this.server : this.client;
    if (this.client.destroyed && this.server.destroyed) { this.finish(); return; }
    if (this.faulted) return; // cut/reset handle both sides themselves
    const outward = side === this.client ? this.upload : this.download;
    const inward = side === this.client ? this.download : this.upload;
    if (hadError) { if (!other.destroyed) other.resetAndDestroy(); return; }
    // A clean close normally comes after both directions ended; anything else means this side
    // gave up (for example a client timing out on a stall), so let the other side go too.
    if (outward === null || inward === null || outward.halted || !inward.done) other.destroy();
  }

  get bufferedBytes(): number {
    return this.client.writableLength + this.server.writableLength +
      (this.download?.heldBytes ?? 0) + (this.upload?.heldBytes ?? 0);
  }

  destroy(): void {
    this.faulted = true;
    this.download?.stop();
    this.upload?.stop();
    for (const s of [this.client, this.server]) if (!s.destroyed) s.destroy();
    this.finish();
  }

  private finish(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (this.finished) return;
    this.finished = true;
    this.onFinished();
  }
}

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  const faults = opts.faults;
  validateFaultOptions(faults);
  const maxFaults = faults.maxFaults ?? Infinity;
  const graceMs = opts.cutGraceMs ?? 1000;
  let passThrough = faults.passThrough ?? false;
  let nextOrdinal = 0;
  const open = new Set<ProxiedConnection>();
  const sockets = new Set<net.Socket>();
  const st: FaultStats = {
    connections: 0, active: 0, connectErrors: 0,
    faults: Object.fromEntries(FAULT_KINDS.map(k => [k, 0])) as Record<FaultKind, number>,
    faultsTotal: 0, bytes: { download: 0, upload: 0 }, fired: [], bufferedBytes: 0,
  };

  const fire = (plan: FaultPlan): boolean => {
    if (passThrough || plan.kind === 'none' || st.faultsTotal >= maxFaults) return false;
    st.faultsTotal++;
    st.faults[plan.kind]++;
    st.fired.push({ ordinal: plan.ordinal, kind: plan.kind, direction: plan.direction, offset: plan.offset,
      stallMs: plan.stallMs, bytesPerSecond: plan.bytesPerSecond });
    return true;
  };
  const counted = (d: FaultDirection, n: number): void => { st.bytes[d] += n; };
  const track = (s: net.Socket): void => { sockets.add(s); s.on('close', () => sockets.delete(s)); };

  // pauseOnConnect: nothing is read from the client before the target connection exists.
  const listener = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, client => {
    const ordinal = nextOrdinal++;
    st.connections++;
    st.active++;
    track(client);
    const planned = planFault(opts.seed, ordinal, faults);
    const plan = passThrough || st.faultsTotal >= maxFaults ? { ...planned, kind: 'none' as const } : planned;
    const server = net.connect({ host: opts.target.host, port: opts.target.port, allowHalfOpen: true });
    track(server);
    const conn = new ProxiedConnection(ordinal, plan, client, server, graceMs, () => { open.delete(conn); st.active--; });
    open.add(conn);
    let connected = false;
    server.once('connect', () => {
      connected = true;
      if (client.destroyed) { conn.destroy(); return; }
      conn.start({ fire, counted });
    });
    server.once('error', () => { if (!connected) st.connectErrors++; });
  });
  listener.on('error', () => { /* only listen errors, surfaced by the listen promise below */ });

  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(opts.listen?.port ?? 0, opts.listen?.host ?? '127.0.0.1', () => {
      listener.off('error', reject);
      resolve();
    });
  });
  const addr = listener.address() as net.AddressInfo;
  const host = addr.address;
  const urlHost = addr.family === 'IPv6' ? `[${host}]` : host;

  return {
    host,
    port: addr.port,
    url: `http://${urlHost}:${addr.port}`,
    stats: () => ({
      ...st, faults: { ...st.faults }, bytes: { ...st.bytes }, fired: st.fired.map(e => ({ ...e })),
      bufferedBytes: [...open].reduce((n, c) => n + c.bufferedBytes, 0),
    }),
    planFor: ordinal => planFault(opts.seed, ordinal, faults),
    setPassThrough: on => { passThrough = on; },
    close: async () => {
      const closed = new Promise<void>(resolve => listener.close(() => resolve()));
      for (const c of [...open]) c.destroy();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
