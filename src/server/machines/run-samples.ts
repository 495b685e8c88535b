// Progress samples of each run: what the dashboard's throughput chart draws (bytes written and
// bytes received over time, resumes). Agents report progress every 2 s; a 10-hour run would be
// 18 000 reports, so what is kept is bounded per run:
//
//   - rate: kept samples are at least `resolution` apart (1 s at first). A sample closer than
//     that to the one before the last replaces the last one, so the newest figures are always
//     kept (the series ends at the run's final byte count) while older ones stay spaced.
//   - cap: when a run holds more than MAX_SAMPLES, every second sample is dropped (the first and
//     the last stay) and the run's resolution doubles. A run therefore keeps between
//     MAX_SAMPLES/2 and MAX_SAMPLES samples whatever its length, evenly spaced in time.
//   - a report older than the last kept sample (a batch sent again after its answer was lost,
//     maybe through another replica) is already in the series, and is not added a second time.
//
// Byte counts, resumes and restarts are cumulative, so a dropped sample loses only resolution:
// the bytes and resumes it saw are in the next kept one.
//
// Stored in the state store (store/run-sample-rows.ts). Writes happen inside the run recorder's
// transaction, which holds the machine's row lock: where a run's series stands is read from the
// database there, never cached in the process, so replicas recording one run take turns on it.

import type { AgentEvent } from '../../config/report.ts';
import type { SampleRow } from '../store/run-sample-rows.ts';
import type { StateStore, StoreTx } from '../store/state-store.ts';

export const SAMPLE_LIMITS = { maxPerRun: 2000, baseResolutionMs: 1000 };

type Progress = Extract<AgentEvent, { type: 'progress' }>;

export interface RunSample {
  time: string;
  phase?: string;
  bytes: number;
  total?: number;
  wireBytes?: number;
  rate?: number;
  resumes?: number;
  restarts?: number;
}

/** A sample as the store receives it (t in ms since 1970). */
export type SampleInput = SampleRow;

export class RunSamples {
  readonly #store: StateStore;
  readonly #limits: typeof SAMPLE_LIMITS;

  constructor(store: StateStore, limits: Partial<typeof SAMPLE_LIMITS> = {}) {
    this.#store = store;
    this.#limits = { ...SAMPLE_LIMITS, ...limits };
  }

  /** A progress report of run `runId` (in the recorder's transaction `tx`). */
  async progress(tx: StoreTx, runId: number, e: Progress): Promise<void> {
    const t = Date.parse(e.time);
    if (!Number.isFinite(t)) return;
    await this.add(tx, runId, {
      t, phase: e.phase, bytes: e.bytes, total: e.total, wireBytes: e.wireBytes, rate: e.rate, resumes: e.resumes, restarts: e.restarts,
    });
  }

  /**
   * A result of run `runId`: its byte count is the run's last sample (the last progress report
   * may be up to 2 s older than the end), for runs that reported progress at all.
   */
  async result(tx: StoreTx, runId: number, e: Extract<AgentEvent, { type: 'result' }>): Promise<void> {
    const { last } = await tx.runSamples.tail(runId);
    const t = Date.parse(e.time);
    if (last === undefined || e.bytes === undefined || !Number.isFinite(t)) return;
    // the same result again (a retried batch) finds itself already last
    if (last.t >= t && last.bytes === e.bytes && last.rate === undefined && last.wireBytes === undefined) return;
    const { id: _id, ...prev } = last;
    await this.add(tx, runId, {
      ...prev, t: Math.max(t, last.t), bytes: e.bytes, rate: undefined,
      // bytes on the wire after the last report are not known: the network series ends there
      wireBytes: undefined,
      resumes: e.resumes ?? last.resumes, restarts: e.restarts ?? last.restarts,
    }, { sameTimeToo: true });
  }

  /** Keep one sample under the rate and cap rules (see the header). */
  async add(tx: StoreTx, runId: number, s: SampleInput, opts: { sameTimeToo?: boolean } = {}): Promise<void> {
    const tail = await tx.runSamples.tail(runId);
    const resolutionMs = tail.resolutionMs ?? this.#limits.baseResolutionMs;
    const last = tail.last;
    // a report the series already holds (older than its newest) comes again from a retried batch
    if (last !== undefined && (s.t < last.t || (s.t === last.t && opts.sameTimeToo !== true))) return;
    // the last sample is provisional while it is closer than the resolution to the one before
    if (last !== undefined && tail.prevT !== undefined && last.t - tail.prevT < resolutionMs) {
      await tx.runSamples.replace(last.id, s);
      return;
    }
    await tx.runSamples.add(runId, s);
    if (tail.count + 1 > this.#limits.maxPerRun) {
      await tx.runSamples.thin(runId);
      await tx.runSamples.setResolution(runId, resolutionMs * 2);
    }
  }

  /** Whether `runId` is a run of `mac` (the route answers 404 otherwise). */
  isRunOf(mac: string, runId: number): Promise<boolean> { return this.#store.runs.isRunOf(mac, runId); }

  /** A run's samples, oldest first, and the spacing they were kept at. */
  async samples(runId: number): Promise<{ resolutionMs: number; samples: RunSample[] }> {
    const [rows, res] = await Promise.all([this.#store.runSamples.list(runId), this.#store.runSamples.resolution(runId)]);
    return {
      resolutionMs: res ?? this.#limits.baseResolutionMs,
      samples: rows.map(({ t, ...rest }) => ({ time: new Date(t).toISOString(), ...withoutUndefined(rest) }) as RunSample),
    };
  }

  /** The machine's runs' samples go with them (`booty machines rm --history`; before the runs are deleted). */
  async forget(tx: StoreTx, mac: string): Promise<void> {
    await tx.runSamples.removeFor(mac);
  }
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
