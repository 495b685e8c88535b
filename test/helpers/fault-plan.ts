// Pure fault planning for the fault proxy (test/helpers/fault-proxy.ts): (seed, connection ordinal,
// options) -> what to do to that connection. Kept free of sockets and clocks so a failing seed can be
// replayed and the plan itself unit-tested. One connection gets at most one fault.
import { seededRandom } from './seeded-random.ts';

export type FaultKind = 'cut' | 'reset' | 'stall' | 'throttle';
export const FAULT_KINDS: readonly FaultKind[] = ['cut', 'reset', 'stall', 'throttle'];

/** download: server -> client bytes; upload: client -> server bytes. */
export type FaultDirection = 'download' | 'upload';

/** Inclusive integer range. */
export interface Range { min: number; max: number }

export interface FaultOptions {
  /** Probability per connection of each fault kind (0..1, the sum at most 1). Missing kinds are 0. */
  probability?: Partial<Record<FaultKind, number>>;
  /** Directions a fault may hit; one is picked per faulty connection. Default ['download']. */
  directions?: readonly FaultDirection[];
  /** Byte offset within the hit direction where the fault starts. Default 0..65536. */
  offset?: Range;
  /** How long a stall holds the direction, in ms; 'forever' holds it until a side gives up.
   *  Default 200..1000. */
  stallMs?: Range | 'forever';
  /** Throttle rate in bytes per second from the offset on. Default 16 KiB..256 KiB. */
  throttleBytesPerSecond?: Range;
  /** At most this many faults fire over the proxy's life; later connections are clean, so a run
   *  always ends. Default unlimited. Counted by the proxy, not by the plan. */
  maxFaults?: number;
  /** The first N connections (ordinals 0..N-1) are always clean. Default 0. */
  cleanConnections?: number;
  /** Forward everything untouched (no plan fires). Default false. */
  passThrough?: boolean;
}

export interface FaultPlan {
  ordinal: number;
  kind: FaultKind | 'none';
  direction: FaultDirection;
  /** Bytes of `direction` forwarded untouched before the fault fires (it fires when byte offset+1
   *  arrives, so a stream of exactly `offset` bytes passes clean). */
  offset: number;
  /** For stall: the hold in ms (Infinity = until a side gives up). 0 for other kinds. */
  stallMs: number;
  /** For throttle: the rate. 0 for other kinds. */
  bytesPerSecond: number;
}

const DEFAULT_OFFSET: Range = { min: 0, max: 65536 };
const DEFAULT_STALL: Range = { min: 200, max: 1000 };
const DEFAULT_THROTTLE: Range = { min: 16 * 1024, max: 256 * 1024 };

function checkRange(name: string, r: Range, lowest: number): void {
  if (!Number.isSafeInteger(r.min) || !Number.isSafeInteger(r.max) || r.min < lowest || r.max < r.min) {
    throw new RangeError(`fault options: ${name} must be integers with ${lowest} <= min <= max (got ${r.min}..${r.max})`);
  }
}

/** Throws a RangeError naming the bad field; the proxy calls it once at start. */
export function validateFaultOptions(o: FaultOptions): void {
  let sum = 0;
  for (const [kind, p] of Object.entries(o.probability ?? {})) {
    if (!FAULT_KINDS.includes(kind as FaultKind)) throw new RangeError(`fault options: unknown fault kind "${kind}" in probability`);
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new RangeError(`fault options: probability.${kind} must be within 0..1 (got ${p})`);
    sum += p;
  }
  if (sum > 1 + 1e-9) throw new RangeError(`fault options: probabilities add up to ${sum}, more than 1`);
  const dirs = o.directions ?? ['download'];
  if (dirs.length === 0 || dirs.some(d => d !== 'download' && d !== 'upload')) {
    throw new RangeError(`fault options: directions must be a non-empty list of "download"/"upload"`);
  }
  checkRange('offset', o.offset ?? DEFAULT_OFFSET, 0);
  if (o.stallMs !== 'forever') checkRange('stallMs', o.stallMs ?? DEFAULT_STALL, 0);
  checkRange('throttleBytesPerSecond', o.throttleBytesPerSecond ?? DEFAULT_THROTTLE, 1);
  if (o.maxFaults !== undefined && !(o.maxFaults >= 0)) throw new RangeError(`fault options: maxFaults must be >= 0 (got ${o.maxFaults})`);
  if (o.cleanConnections !== undefined && !(Number.isSafeInteger(o.cleanConnections) && o.cleanConnections >= 0)) {
    throw new RangeError(`fault options: cleanConnections must be an integer >= 0 (got ${o.cleanConnections})`);
  }
}

// Mixes seed and ordinal into one well-spread 32-bit state (murmur3 finalizer), so neighbouring
// ordinals and neighbouring seeds get unrelated streams.
function mixSeed(seed: number, ordinal: number): number {
  let h = (seed ^ Math.imul(ordinal + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function pick(rand: () => number, r: Range): number {
  return r.min + Math.floor(rand() * (r.max - r.min + 1));
}

/** The fault for connection `ordinal` (0-based accept order) under `seed`. Pure and deterministic.
 *  Ignores maxFaults and passThrough (the proxy applies those while running). */
export function planFault(seed: number, ordinal: number, o: FaultOptions): FaultPlan {
  const rand = seededRandom(mixSeed(seed, ordinal));
  // Always draw the same number of values in the same order, so changing one option (say the
  // stall range) does not reshuffle which connections are faulty.
  const rKind = rand(), rDir = rand(), rOffset = rand(), rParam = rand();
  const dirs = o.directions ?? ['download'];
  const direction = dirs[Math.min(dirs.length - 1, Math.floor(rDir * dirs.length))];
  const offset = pick(() => rOffset, o.offset ?? DEFAULT_OFFSET);
  const clean: FaultPlan = { ordinal, kind: 'none', direction, offset, stallMs: 0, bytesPerSecond: 0 };
  if (ordinal < (o.cleanConnections ?? 0)) return clean;

  let kind: FaultKind | 'none' = 'none';
  let acc = 0;
  for (const k of FAULT_KINDS) {
    const p = o.probability?.[k] ?? 0;
    if (p > 0 && rKind < acc + p) { kind = k; break; }
    acc += p;
  }
  if (kind === 'none') return clean;
  const stallMs = kind !== 'stall' ? 0 : o.stallMs === 'forever' ? Infinity : pick(() => rParam, o.stallMs ?? DEFAULT_STALL);
  const bytesPerSecond = kind === 'throttle' ? pick(() => rParam, o.throttleBytesPerSecond ?? DEFAULT_THROTTLE) : 0;
  return { ordinal, kind, direction, offset, stallMs, bytesPerSecond };
}
