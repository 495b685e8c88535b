// #/fleet : the fleet at a glance, from the machines' summaries the live stream keeps current
// (nothing polls): how many machines are in each state and phase (each a link to the table
// filtered so), the deploys in progress as one stacked bar by phase and a bar per transfer, the
// aggregate MB/s the agents report, and the failures of the last day with their sentences.
// "Failures of the last day" are machines whose last result failed in the last 24 h, and
// machines whose action cannot be served; earlier failed runs are on each machine's page.

import { bytes, h, main, rate, setNav } from './dom.js';
import { machines } from './fleet-state.js';
import { percentOf, phaseWords } from './machine-columns.js';
import { ACTIVE, WORDS, stateClass } from './machine-words.js';

const DAY_MS = 24 * 3600 * 1000;
/** phases whose progress reports carry a transfer rate */
const MOVING = new Set(['writing', 'capturing', 'uploading', 'verifying']);
/** the stacked bar's segments: a run's phases in order, grouped */
const STAGES = [
  { name: 'starting', phases: ['booting', 'modules', 'network', 'dhcp', 'fetching-action', 'preflight'] },
  { name: 'writing', phases: ['writing', 'capturing', 'uploading'] },
  { name: 'verifying', phases: ['verifying'] },
  { name: 'growing and configuring', phases: ['growing', 'configuring'] },
  { name: 'rebooting', phases: ['rebooting', 'powering-off'] },
];

let scheduled = false;

function filterLink(param, value, text, count, cls) {
  return h('a', { class: `chip ${cls || ''}`, href: `#/?${param}=${encodeURIComponent(value)}`, 'data-count-of': value },
    h('strong', { text: String(count) }), ` ${text}`);
}

function stateCounts(list) {
  const states = { active: 0, done: 0, failed: 0, idle: 0 };
  const phases = new Map();
  for (const m of list) {
    states[stateClass(m).slice(6)]++;
    const p = m.phase || '';
    if (p) phases.set(p, (phases.get(p) || 0) + 1);
  }
  return h('section', { id: 'phase-counts' },
    h('div', { class: 'chips' },
      h('span', { class: 'chip total' }, h('strong', { text: String(list.length) }), ' machines'),
      filterLink('phase', 'state:active', 'working', states.active, 'state-active'),
      filterLink('phase', 'state:done', 'done', states.done, 'state-done'),
      filterLink('phase', 'state:failed', 'failed', states.failed, 'state-failed'),
      filterLink('phase', 'state:idle', 'idle', states.idle, 'state-idle')),
    h('div', { class: 'chips small' }, [...phases.entries()].sort((a, b) => b[1] - a[1]).map(([p, n]) => filterLink('phase', p, WORDS[p] || p, n))));
}

function inProgress(list) {
  const active = list.filter((m) => ACTIVE.has(m.phase) && !(m.result && (m.phase === 'rebooting' || m.phase === 'powering-off')));
  const bar = h('div', { class: 'stacked', id: 'stacked', role: 'img', 'aria-label': 'deploys in progress by phase' });
  const legend = h('div', { class: 'legend' });
  STAGES.forEach((s, i) => {
    const n = active.filter((m) => s.phases.includes(m.phase)).length;
    if (n === 0) return;
    const seg = h('span', { class: `seg seg-${i}`, title: `${n} ${s.name}`, 'data-stage': s.name, 'data-count': n });
    seg.style.flexGrow = String(n);
    bar.append(seg);
    legend.append(h('span', { class: 'key' }, h('i', { class: `seg-${i}` }), `${n} ${s.name}`));
  });
  const moving = active.filter((m) => MOVING.has(m.phase) && m.progress);
  const total = moving.reduce((s, m) => s + (m.progress.rate || 0), 0);
  const left = moving.reduce((s, m) => s + Math.max(0, (m.progress.total || 0) - m.progress.bytes), 0);
  return h('section', { id: 'in-progress' },
    h('h2', { text: `In progress: ${active.length}` }),
    h('div', { class: 'rate-line' },
      h('span', { id: 'aggregate-rate', class: 'big', 'data-rate': total, text: moving.length ? rate(total) : '0 MB/s' }),
      h('span', { class: 'summary', text: ` over ${moving.length} transfer${moving.length === 1 ? '' : 's'}, as the agents report${left ? ` · ${bytes(left)} to go` : ''}` })),
    active.length ? [bar, legend] : h('p', { class: 'summary', text: 'Nothing in progress.' }),
    moving.length ? h('ul', { class: 'transfers', id: 'transfers' }, moving.sort((a, b) => a.mac.localeCompare(b.mac)).slice(0, 200).map((m) => {
      const pct = percentOf(m);
      const b = h('div', { class: 'bar mini' }, h('span'));
      b.firstChild.style.width = `${(pct ?? 0).toFixed(1)}%`;
      return h('li', { 'data-mac': m.mac }, h('a', { class: 'mac', href: `#/m/${m.mac}`, text: m.name || m.mac }), b,
        h('span', { class: 'figures', text: `${pct === undefined ? '' : `${Math.floor(pct)}% · `}${rate(m.progress.rate)}` }));
    })) : null);
}

function failures(list) {
  const since = Date.now() - DAY_MS;
  const out = [];
  for (const m of list) {
    if (m.actionError) out.push({ m, time: m.lastSeen || '', text: `Its action cannot be served: ${m.actionError}` });
    const r = m.result;
    if (r && !r.ok && Date.parse(r.time) >= since) out.push({ m, time: r.time, text: r.message || `The ${r.action} failed (${r.code || 'no reason given'}).` });
  }
  out.sort((a, b) => (a.time < b.time ? 1 : -1));
  return h('section', { id: 'failures' },
    h('h2', { text: `Failures of the last day: ${out.length}` }),
    out.length === 0 ? h('p', { class: 'summary', text: 'None.' })
      : h('ul', { class: 'failures' }, out.slice(0, 200).map(({ m, time, text }) => h('li', { 'data-mac': m.mac },
        h('a', { class: 'mac', href: `#/m/${m.mac}`, text: m.name ? `${m.name} (${m.mac})` : m.mac }),
        time ? h('span', { class: 'summary', text: ` ${new Date(time).toLocaleString()} · ${phaseWords(m)}` }) : null,
        h('p', { class: 'error', text })))));
}

function renderFleet() {
  setNav('fleet');
  const list = [...machines.values()];
  main.replaceChildren(h('h1', { text: 'Fleet' }), stateCounts(list), inProgress(list), failures(list));
}

function soon() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => { scheduled = false; if (location.hash === '#/fleet') renderFleet(); });
}

export const fleetPage = {
  match: (hash) => (hash === '#/fleet' ? {} : null),
  render: async () => renderFleet(),
  onMachine: soon,
  onRemoved: soon,
  onReconnect: soon,
  onTick: soon,
};
