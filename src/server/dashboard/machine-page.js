// #/m/<mac> : one machine: its card, settings (editable in place), run history, the selected
// run as pictures (timeline and throughput; the latest run unless another is picked), its
// hardware, operator changes and the full log with a search box. Live: a running deploy's charts
// grow with each progress report in the machine's summary (the SSE `machine` event), a phase
// change or a result re-reads the run history and the run's stored samples; nothing polls.

import { getJson, getOk } from './api.js';
import { ago, bytes, duration, h, main, rate, setNav } from './dom.js';
import { machines } from './fleet-state.js';
import { hardwareFacts } from './hardware-facts.js';
import { logView } from './log-view.js';
import { machineCard } from './machine-card.js';
import { WORDS } from './machine-words.js';
import { runDomain, throughputChart, timelineChart } from './run-charts.js';
import { settingsEditor } from './settings-editor.js';

/** Live samples kept in the page per run; beyond, every second one goes (as the server thins). */
const MAX_LIVE_SAMPLES = 4000;

let page = null; // {mac, runs, selected, follow, samples, log, seen} while this page is open

function settingsText(s) {
  if (!s) return '(none)';
  const a = s.action ? JSON.stringify(s.action) : 'no action';
  return `${a}${s.persistent ? ' · persistent' : ''}${s.name ? ` · name ${s.name}` : ''}`;
}

function cardWithoutLog(m) {
  const card = machineCard(m);
  card.querySelector('pre.log')?.remove();
  return card;
}

const runResult = (r) => (r.ok === true ? 'ok' : r.ok === false ? `failed: ${r.error || r.code || ''}` : r.ended ? 'no result (interrupted)' : 'running');

function runsTable() {
  const { runs, selected } = page;
  if (runs.length === 0) return h('div', { class: 'empty', id: 'runs-empty', text: 'No runs yet.' });
  const table = h('table', { id: 'runs', class: 'selectable' },
    h('thead', {}, h('tr', {}, ['Started', 'Action', 'Result', 'Bytes', 'Time', 'Rate', 'Phases'].map((t) => h('th', { text: t })))),
    h('tbody', {}, runs.map((r) => h('tr', { 'data-run': r.id, class: r.id === selected ? 'selected' : null, 'aria-selected': r.id === selected ? 'true' : 'false' },
      h('td', {}, h('button', { type: 'button', class: 'link', 'data-run': r.id, title: 'show this run\'s charts', text: new Date(r.started).toLocaleString() })),
      h('td', { text: r.resultAction || r.action || '' }),
      h('td', { class: r.ok === true ? 'ok' : r.ok === false ? 'bad' : '', text: runResult(r) }),
      h('td', { class: 'num', text: r.bytes === undefined ? '' : bytes(r.bytes) }),
      h('td', { class: 'num', text: duration(r.seconds) }),
      h('td', { class: 'num', text: r.seconds && r.bytes ? rate(r.bytes / r.seconds) : rate(r.rate) }),
      h('td', { text: r.phases.map((p) => p.phase).join(' → ') })))));
  table.addEventListener('click', (ev) => {
    const id = Number(ev.target.closest('[data-run]')?.dataset.run);
    if (!id || !page) return;
    page.follow = id === page.runs[0]?.id;
    selectRun(id).catch(() => {});
  });
  return h('div', { class: 'table-wrap' }, table);
}

/** The selected run's pictures, in #run-charts (drawn at its width). */
function drawCharts() {
  const box = document.getElementById('run-charts');
  if (!box || !page) return;
  const run = page.runs.find((r) => r.id === page.selected);
  if (!run) { box.replaceChildren(h('div', { class: 'empty', text: 'No runs yet: the pictures appear when the machine reports.' })); return; }
  const samples = page.samples.get(run.id) || [];
  const css = getComputedStyle(box);
  const width = Math.max(280, Math.floor((box.clientWidth || 800) - parseFloat(css.paddingLeft) - parseFloat(css.paddingRight)));
  const domain = runDomain(run, samples);
  box.replaceChildren(
    h('h3', { text: `Run ${run.id}: ${run.resultAction || run.action || 'action unknown'} · ${runResult(run)} · ${duration((domain[1] - domain[0]) / 1000)}` }),
    timelineChart(run, domain, width),
    throughputChart(run, samples, domain, width));
  box.dataset.run = run.id;
}

async function loadSamples(id) {
  const { samples } = await getJson(`/api/machines/${page.mac}/runs/${id}/samples`);
  if (page) page.samples.set(id, samples);
}

async function selectRun(id) {
  page.selected = id;
  const runs = document.getElementById('runs-box');
  if (runs) runs.replaceChildren(runsTable());
  await loadSamples(id);
  drawCharts();
}

/** The run history again (a phase changed, a run started or ended), and the selected run's samples. */
async function refreshRuns({ samples }) {
  const mac = page.mac;
  const { runs } = await getJson(`/api/machines/${mac}/runs?limit=50`);
  if (!page || page.mac !== mac) return;
  page.runs = runs;
  if (page.follow || !runs.some((r) => r.id === page.selected)) page.selected = runs[0]?.id;
  if (page.selected !== undefined && (samples || !page.samples.has(page.selected))) await loadSamples(page.selected);
  document.getElementById('runs-box')?.replaceChildren(runsTable());
  drawCharts();
}

function factsList(m) {
  const facts = [
    ['Phase', WORDS[m.phase] || m.phase || 'not seen yet'],
    ['Next boot', `${m.next || 'no action'}${m.oneShotDone ? ` (one-shot action done ${ago(m.oneShotDone)})` : ''}`],
    ['Configured action', m.action || 'none'],
    ['Managed by', m.managedBy === 'file' ? `file machines/${m.mac}.json (changes are written into it)` : m.managedBy === 'api' ? 'API / CLI' : m.actionSource === 'default' ? 'default.json' : '—'],
    ['First seen', m.firstSeen ? new Date(m.firstSeen).toLocaleString() : 'never'],
    ['Last seen', ago(m.lastSeen)],
  ];
  return h('dl', { class: 'settings', id: 'facts' }, facts.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]));
}

function drawMachine(detail, audit) {
  const m = machines.get(page.mac) || detail;
  main.replaceChildren(
    h('h1', {}, h('span', { class: 'mac', text: m.mac }), m.name ? ` ${m.name}` : ''),
    cardWithoutLog(m),
    h('h2', { text: 'Settings' }),
    factsList(m),
    h('div', { id: 'settings-box' }, settingsEditor(detail, { saved: () => reloadSettings().catch(() => {}) })),
    h('h2', { text: 'Runs' }),
    h('div', { id: 'runs-box' }, runsTable()),
    h('section', { id: 'run-charts', class: 'run-charts' }),
    h('h2', { text: 'Hardware' }),
    hardwareFacts(detail.inventory, m.hardware?.received),
    h('h2', { text: 'Changes' }),
    audit.length === 0 ? h('div', { class: 'empty', text: 'No changes by an operator recorded.' }) : h('div', { class: 'table-wrap' }, h('table', { id: 'audit' },
      h('thead', {}, h('tr', {}, ['When', 'Who', 'What', 'Before', 'After'].map((t) => h('th', { text: t })))),
      h('tbody', {}, audit.map((e) => h('tr', {},
        h('td', { text: new Date(e.at).toLocaleString() }),
        h('td', { text: e.who }),
        h('td', { text: e.what }),
        h('td', { class: 'json', text: settingsText(e.before) }),
        h('td', { class: 'json', text: settingsText(e.after) })))))),
    h('h2', { text: 'Log' }),
    page.log.element);
  page.log.scrollToEnd();
  drawCharts();
}

/** After a save: the settings (and the changes list) as the server now has them. */
async function reloadSettings() {
  const mac = page.mac;
  const [detail, audit] = await Promise.all([getJson(`/api/machines/${mac}`), getJson(`/api/audit?mac=${mac}&limit=50`)]);
  if (!page || page.mac !== mac) return;
  machines.set(mac, { ...machines.get(mac), ...detail });
  drawMachine(detail, audit.entries);
}

async function renderMachine({ mac }) {
  setNav('');
  page = null;
  const [detail, runs, logText, audit] = await Promise.all([
    getJson(`/api/machines/${mac}`), getJson(`/api/machines/${mac}/runs?limit=50`),
    getOk(`/api/machines/${mac}/log?limit=5000`).then((r) => r.text()), getJson(`/api/audit?mac=${mac}&limit=50`),
  ]);
  machines.set(mac, { ...machines.get(mac), ...detail });
  const m = machines.get(mac);
  page = {
    mac, runs: runs.runs, selected: runs.runs[0]?.id, follow: true, samples: new Map(),
    // the log view lives as long as the page (a redraw after a save keeps its search)
    log: logView(logText.split('\n').filter((l) => l !== '')),
    seen: { run: m.run, phase: m.phase, result: m.result?.time },
  };
  if (page.selected !== undefined) await loadSamples(page.selected);
  drawMachine(detail, audit.entries);
}

let resizeTimer = null;
function onResize() { clearTimeout(resizeTimer); resizeTimer = setTimeout(drawCharts, 150); }
window.addEventListener('resize', onResize);

/** A progress report in a summary, as a sample of its run (the server keeps its own, thinned). */
function liveSample(m) {
  const p = m.progress;
  if (!p || m.run === undefined || !page.samples.has(m.run)) return false;
  const list = page.samples.get(m.run);
  const last = list[list.length - 1];
  if (last && Date.parse(last.time) >= Date.parse(p.time)) return false;
  list.push({ time: p.time, phase: p.phase, bytes: p.bytes, total: p.total, wireBytes: p.wireBytes, rate: p.rate, resumes: p.resumes, restarts: p.restarts });
  if (list.length > MAX_LIVE_SAMPLES) page.samples.set(m.run, list.filter((_, i) => i % 2 === 0 || i === list.length - 1));
  return true;
}

export const machinePage = {
  match: (hash) => { const m = /^#\/m\/([0-9a-f-]{17})$/.exec(hash); return m ? { mac: m[1] } : null; },
  render: renderMachine,
  leave: () => { page = null; },
  onMachine(m) {
    if (!page || page.mac !== m.mac) return;
    const card = main.querySelector(`.machine[data-mac="${m.mac}"]`);
    if (card) card.replaceWith(cardWithoutLog(m));
    document.getElementById('facts')?.replaceWith(factsList(m));
    const seen = page.seen;
    const newRun = m.run !== seen.run;
    const moved = newRun || m.phase !== seen.phase || (m.result?.time ?? null) !== (seen.result ?? null);
    page.seen = { run: m.run, phase: m.phase, result: m.result?.time };
    if (newRun && m.run !== undefined && page.follow) { page.samples.set(m.run, []); page.selected = m.run; }
    const grew = m.run === page.selected && liveSample(m);
    // a phase, a new run or a result: the history and (after a result) the stored samples again
    if (moved) refreshRuns({ samples: m.result !== undefined && m.result !== null && m.run === page.selected }).catch(() => {});
    else if (grew) drawCharts();
  },
  onLog(mac, lines) {
    if (!page || page.mac !== mac || !page.log) return;
    page.log.append(lines);
  },
  onReconnect() {
    if (page) renderMachine({ mac: page.mac }).catch(() => {});
  },
  onTick() {
    if (!page) return;
    const m = machines.get(page.mac);
    const card = m && main.querySelector(`.machine[data-mac="${m.mac}"]`);
    if (card) card.replaceWith(cardWithoutLog(m));
    document.getElementById('facts')?.replaceWith(factsList(m));
  },
};
