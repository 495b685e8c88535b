// A run as two pictures, drawn as SVG in the page's own pixels (so text stays readable on a
// phone): the timeline (one bar per phase on a time axis) and the throughput (MB/s written to
// disk and received over the network, resumes marked). Both share the time axis, so a slow
// stretch in one lines up with its phase in the other. The numbers come from chart-scale.js; the
// elements carry data-* attributes with what they stand for (tests and curious operators read them).

import {
  formatRateTick, formatSeconds, formatTimeTick, linear, STAGES, throughputIntervals, timeTicks, timelineSegments, valueTicks,
} from './chart-scale.js';
import { bytes, h } from './dom.js';
import { WORDS } from './machine-words.js';

const NS = 'http://www.w3.org/2000/svg';
const MARGIN = { left: 74, right: 14 };
const AXIS = 24;

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const clock = (ms) => new Date(ms).toLocaleTimeString();
const phaseWords = (p) => WORDS[p] || p;

/** The time axis at `y` over [t0, t1] (ms) for a plot `width` wide. */
function timeAxis(x, t0, t1, width, y) {
  const { step, ticks } = timeTicks((t1 - t0) / 1000, Math.max(2, Math.floor((width - MARGIN.left - MARGIN.right) / 90)));
  return svg('g', { class: 'axis time', 'data-step-seconds': step },
    svg('line', { x1: MARGIN.left, x2: width - MARGIN.right, y1: y, y2: y }),
    ticks.map((t) => {
      const px = x(t0 + t * 1000);
      return svg('g', { class: 'tick' }, svg('line', { x1: px, x2: px, y1: y, y2: y + 4 }),
        svg('text', { x: px, y: y + 16, 'text-anchor': px > width - 40 ? 'end' : 'middle' }, formatTimeTick(t, step)));
    }));
}

/** The span a run's pictures cover: its start to its last known moment (phases, samples, end). */
export function runDomain(run, samples) {
  const t0 = Date.parse(run.started);
  const times = [t0, ...run.phases.map((p) => Date.parse(p.time)), ...samples.map((s) => Date.parse(s.time))];
  if (run.ended) times.push(Date.parse(run.ended));
  const t1 = Math.max(...times.filter(Number.isFinite));
  return [t0, Math.max(t1, t0 + 1000)];
}

/** Phases on the time axis; `legend` below lists the stages shown. */
export function timelineChart(run, [t0, t1], width) {
  const height = 34 + AXIS;
  const x = linear(t0, t1, MARGIN.left, width - MARGIN.right);
  const { segments, results } = timelineSegments(run.phases, t1);
  const bars = segments.map((s) => {
    const x0 = x(s.start), w = Math.max(2, x(s.end) - x0);
    const words = phaseWords(s.phase);
    const secs = (s.end - s.start) / 1000;
    return svg('g', { class: `segment stage-${s.stage}`, 'data-phase': s.phase, 'data-stage': s.stage, 'data-start': new Date(s.start).toISOString(), 'data-seconds': secs.toFixed(1) },
      svg('title', {}, `${words}: ${formatSeconds(secs)} (${clock(s.start)} – ${clock(s.end)})`),
      svg('rect', { x: x0, y: 6, width: w, height: 22, rx: 2 }),
      // a label only where it fits
      w > words.length * 6.5 + 8 ? svg('text', { x: x0 + 4, y: 21 }, words) : null);
  });
  const marks = results.map((r) => svg('g', { class: `result ${r.phase}`, 'data-result': r.phase },
    svg('title', {}, `${r.phase} at ${clock(r.at)}`),
    svg('line', { x1: x(r.at), x2: x(r.at), y1: 2, y2: 32 })));
  const stagesShown = new Set(segments.map((s) => s.stage));
  return h('figure', { class: 'chart' },
    svg('svg', { class: 'timeline', 'data-chart': 'timeline', 'data-phases': segments.length, width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `timeline of run ${run.id}: ${segments.map((s) => s.phase).join(', ')}` },
      svg('text', { class: 'axis-title', x: 4, y: 21 }, 'phases'),
      bars, marks, timeAxis(x, t0, t1, width, 34)),
    h('figcaption', { class: 'legend' }, STAGES.filter((s) => stagesShown.has(s.stage)).map((s) => h('span', { class: `key stage-${s.stage}`, text: s.label })),
      segments.some((s) => s.stage === 'other') ? h('span', { class: 'key stage-other', text: 'other' }) : null,
      ` time since the run started at ${new Date(t0).toLocaleString()}`));
}

/** MB/s over time: disk (uncompressed bytes written or read) and network (bytes on the wire). */
export function throughputChart(run, samples, [t0, t1], width) {
  const height = 170 + AXIS;
  const plotTop = 10, plotBottom = 170;
  const first = samples[0];
  // the transfer starts with the phase of its first sample (writing, uploading), 0 bytes then
  const startPhase = first ? run.phases.find((p) => p.phase === first.phase) : undefined;
  const startMs = Math.min(startPhase ? Date.parse(startPhase.time) : t0, first ? Date.parse(first.time) : t0);
  const { intervals, marks, diskBytes, netBytes } = throughputIntervals(samples, startMs);
  const peak = Math.max(0, ...intervals.map((i) => Math.max(i.disk, i.net ?? 0)));
  // an idle run still gets an axis of 0 to 1 MB/s
  const { max, step, ticks } = valueTicks(peak > 0 ? peak : 1e6, 4);
  const x = linear(t0, t1, MARGIN.left, width - MARGIN.right);
  const y = linear(0, max, plotBottom, plotTop);
  const path = (key) => {
    let d = '';
    let open = false;
    for (const i of intervals) {
      if (i[key] === undefined) { open = false; continue; }
      const yy = y(i[key]).toFixed(1);
      d += open ? `V${yy}H${x(i.end).toFixed(1)}` : `M${x(i.start).toFixed(1)},${yy}H${x(i.end).toFixed(1)}`;
      open = true;
    }
    return d;
  };
  const netPoints = intervals.filter((i) => i.net !== undefined).length;
  const empty = intervals.length === 0;
  return h('figure', { class: 'chart' },
    svg('svg', {
      class: 'throughput', 'data-chart': 'throughput', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
      'aria-label': `throughput of run ${run.id}: ${bytes(diskBytes)} written${marks.length ? `, ${marks.length} resume or restart marks` : ''}`,
    },
      svg('g', { class: 'axis rate' }, ticks.map((v) => svg('g', { class: 'tick' },
        svg('line', { class: v === 0 ? 'base' : 'grid', x1: MARGIN.left, x2: width - MARGIN.right, y1: y(v), y2: y(v) }),
        svg('text', { x: MARGIN.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, formatRateTick(v, step))))),
      empty ? svg('text', { class: 'empty-note', x: (MARGIN.left + width - MARGIN.right) / 2, y: 90, 'text-anchor': 'middle' }, 'no progress reported in this run') : null,
      // network (dashed) over disk: a raw image moves as many bytes on both, and both stay visible
      svg('path', { class: 'series disk', 'data-series': 'disk', 'data-points': intervals.length, 'data-bytes': Math.round(diskBytes), d: path('disk') || undefined }),
      svg('path', { class: 'series network', 'data-series': 'network', 'data-points': netPoints, 'data-bytes': Math.round(netBytes), d: path('net') || undefined }),
      marks.map((m) => svg('g', { class: `mark ${m.kind}`, 'data-mark': m.kind, 'data-count': m.count },
        svg('title', {}, `${m.count} ${m.kind}${m.count === 1 ? '' : 's'} before ${clock(m.at)}`),
        svg('line', { x1: x(m.at), x2: x(m.at), y1: plotTop, y2: plotBottom }),
        svg('text', { x: x(m.at) + 3, y: plotTop + 10 }, m.kind))),
      timeAxis(x, t0, t1, width, plotBottom)),
    h('figcaption', { class: 'legend' },
      h('span', { class: 'key disk', text: run.resultAction === 'capture' || run.action?.startsWith('capture') ? 'disk read' : 'disk written' }),
      h('span', { class: 'key network', text: 'network' }),
      marks.length ? h('span', { class: 'key mark', text: 'resume / restart' }) : null,
      ` MB/s (10^6 bytes a second), averaged between reports; ${bytes(diskBytes)} on disk${netPoints ? `, ${bytes(netBytes)} over the network by the last progress report` : ''}`));
}
