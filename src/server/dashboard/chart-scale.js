// The arithmetic of the machine page's charts, without the DOM (node's unit tests import it):
// scales, axis ticks (time in s/min/h, rates in MB/s), a run's phases as timeline segments and
// its progress samples as throughput intervals. Units are decimal (MB = 10^6 bytes) like the
// progress line and the benchmark tables.

/** A linear map from [d0, d1] to [r0, r1] (a zero-width domain maps to r0). */
export function linear(d0, d1, r0, r1) {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

/** The smallest 1, 2 or 5 times a power of ten that is at least `raw` (> 0). */
export function niceStep(raw) {
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw * (1 - 1e-9)) return m * p;
  return 10 * p;
}

/** Ticks from 0 to at least `max` in at most `count` nice steps: {max, step, ticks}. */
export function valueTicks(max, count = 4) {
  const top = max > 0 && Number.isFinite(max) ? max : 1;
  const step = niceStep(top / Math.max(1, count));
  const n = Math.max(1, Math.ceil(top / step - 1e-9));
  return { max: n * step, step, ticks: Array.from({ length: n + 1 }, (_, i) => round(i * step)) };
}

const round = (v) => Math.round(v * 1e9) / 1e9;

/** Steps of a time axis, in seconds: what a clock reader counts in. */
export const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

/** Ticks for a span of `seconds` with at most `maxTicks` intervals: {step, ticks} (seconds from the start). */
export function timeTicks(seconds, maxTicks = 6) {
  const span = seconds > 0 && Number.isFinite(seconds) ? seconds : 1;
  const limit = Math.max(1, maxTicks);
  const step = TIME_STEPS.find((s) => span / s <= limit) ?? TIME_STEPS[TIME_STEPS.length - 1] * Math.ceil(span / limit / 86400);
  const ticks = [];
  for (let t = 0; t <= span + 1e-9; t += step) ticks.push(t);
  return { step, ticks };
}

/** A time tick's label in the unit of its step: "40 s", "1 min 30 s", "25 min", "2 h", "1 h 30 min". */
export function formatTimeTick(t, step) {
  const s = Math.round(t);
  if (s === 0) return '0';
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (step >= 3600 || (s % 3600 === 0 && s >= 3600)) return `${h} h${m > 0 ? ` ${m} min` : ''}`;
  if (step >= 60) return h > 0 ? `${h} h${m > 0 ? ` ${m} min` : ''}` : `${m} min`;
  if (s < 60) return `${s} s`;
  return `${h > 0 ? `${h} h ` : ''}${m > 0 ? `${m} min` : ''}${sec > 0 ? ` ${sec} s` : ''}`.trim();
}

/** A rate tick's label: bytes/s as MB/s with as many decimals as the step needs. */
export function formatRateTick(bytesPerSecond, stepBytesPerSecond) {
  const mb = bytesPerSecond / 1e6;
  const stepMb = stepBytesPerSecond / 1e6;
  const decimals = stepMb >= 1 ? 0 : Math.min(3, Math.ceil(-Math.log10(stepMb) - 1e-9));
  return `${mb.toFixed(decimals)} MB/s`;
}

/** A duration in words for titles and legends: "42 s", "3 min 05 s", "2 h 07 min". */
export function formatSeconds(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

// ---- a run's phases ------------------------------------------------------------------------------

/** The stages an operator reads a run in, and which reported phases belong to each. */
export const STAGES = [
  { stage: 'boot', label: 'boot to action', phases: ['booting', 'modules', 'network', 'dhcp'] },
  { stage: 'action', label: 'fetch the action', phases: ['fetching-action', 'inspecting'] },
  { stage: 'write', label: 'write / read', phases: ['preflight', 'writing', 'verifying', 'capturing', 'uploading'] },
  { stage: 'grow', label: 'grow', phases: ['growing'] },
  { stage: 'post', label: 'post-deploy', phases: ['configuring'] },
  { stage: 'reboot', label: 'reboot', phases: ['rebooting', 'powering-off', 'shell'] },
];
const STAGE_OF = new Map(STAGES.flatMap((s) => s.phases.map((p) => [p, s.stage])));
/** phases that are a result, not a span of time */
const RESULT_PHASES = new Set(['done', 'failed']);

export function stageOf(phase) { return STAGE_OF.get(phase) ?? 'other'; }

/**
 * A run's phases ({phase, time}) as segments on its time axis: each phase lasts until the next
 * one (the last until `endMs`); done/failed are results (a mark, not a span); a phase repeated
 * right after itself continues it.
 * Returns {segments: [{phase, stage, start, end}], results: [{phase, at}]} with times in ms.
 */
export function timelineSegments(phases, endMs) {
  // a phase reported twice in a row (the agent's "done" and its result's) is one
  const list = phases.map((p) => ({ phase: p.phase, at: Date.parse(p.time) })).filter((p, i, all) => Number.isFinite(p.at) && (i === 0 || all[i - 1].phase !== p.phase));
  const segments = [];
  const results = [];
  for (let i = 0; i < list.length; i++) {
    const p = list[i];
    if (RESULT_PHASES.has(p.phase)) { results.push({ phase: p.phase, at: p.at }); continue; }
    const next = list[i + 1];
    const end = next === undefined ? Math.max(endMs, p.at) : Math.max(next.at, p.at);
    segments.push({ phase: p.phase, stage: stageOf(p.phase), start: p.at, end });
  }
  return { segments, results };
}

// ---- a run's progress samples --------------------------------------------------------------------

/**
 * Samples ({time, bytes, wireBytes?, resumes?, restarts?}) as throughput intervals from `startMs`
 * (0 bytes then): [{start, end, diskBytes, disk, netBytes?, net?}] with rates in bytes/s, plus
 * resume/restart marks [{at, kind, count}] and the bytes all intervals account for (`diskBytes`,
 * equal to the last sample's bytes when nothing started over). A restart from byte 0 counts the
 * bytes written since; reports at the same instant add to the next interval.
 */
export function throughputIntervals(samples, startMs) {
  const intervals = [];
  const marks = [];
  let prev = { at: startMs, bytes: 0, wire: 0, resumes: 0, restarts: 0 };
  let carryDisk = 0;
  let carryNet = 0;
  let diskBytes = 0;
  let netBytes = 0;
  for (const s of samples) {
    const at = Date.parse(s.time);
    if (!Number.isFinite(at)) continue;
    const restarted = (s.restarts ?? 0) > prev.restarts || s.bytes < prev.bytes;
    let disk = restarted ? s.bytes : s.bytes - prev.bytes;
    let net;
    if (s.wireBytes !== undefined) net = s.wireBytes >= prev.wire ? s.wireBytes - prev.wire : s.wireBytes;
    if ((s.resumes ?? 0) > prev.resumes) marks.push({ at, kind: 'resume', count: s.resumes - prev.resumes });
    if (restarted) marks.push({ at, kind: 'restart', count: Math.max(1, (s.restarts ?? 0) - prev.restarts) });
    disk += carryDisk;
    if (net !== undefined) net += carryNet;
    const from = prev.at;
    prev = { at: Math.max(at, prev.at), bytes: s.bytes, wire: s.wireBytes ?? prev.wire, resumes: s.resumes ?? prev.resumes, restarts: s.restarts ?? prev.restarts };
    if (at <= from) { carryDisk = disk; carryNet = net ?? carryNet; continue; }
    carryDisk = 0;
    if (net !== undefined) carryNet = 0;
    const seconds = (at - from) / 1000;
    intervals.push({ start: from, end: at, diskBytes: disk, disk: disk / seconds, ...(net === undefined ? {} : { netBytes: net, net: net / seconds }) });
    diskBytes += disk;
    if (net !== undefined) netBytes += net;
  }
  return { intervals, marks, diskBytes: diskBytes + carryDisk, netBytes: netBytes + carryNet };
}
