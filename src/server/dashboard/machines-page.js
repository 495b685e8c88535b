// #/ : the fleet as a table that stays fast with thousands of machines: only the rows in view
// are in the DOM (a spacer row above and below stands for the others), sorted by any column,
// filtered by phase, rack and image, searched as you type; rows are selected (click, shift-click
// for a range, "select all N shown") for bulk changes (bulk-panel.js) and machines registered by
// MAC. #/?phase=failed (or q=, rack=, image=) opens it filtered (the fleet view links so).
// #/cards shows the same machines as cards (machine-card.js), for a wall screen.

import { h, main, setNav } from './dom.js';
import { machines } from './fleet-state.js';
import { machineCard } from './machine-card.js';
import { SORT_KEYS, imageOf, matchesPhase, percentOf, phaseWords, rackOf, searchText, seenWords } from './machine-columns.js';
import { WORDS, stateClass } from './machine-words.js';
import { openBulkPanel, openRegisterPanel } from './bulk-panel.js';

const ROW_HEIGHT = 36; // px, fixed so the rows in view follow from the scroll position
const OVERSCAN = 10;

const COLUMNS = [
  { key: 'mac', title: 'MAC' }, { key: 'name', title: 'Name' }, { key: 'phase', title: 'Phase' }, { key: 'progress', title: 'Progress' },
  { key: 'next', title: 'Next boot' }, { key: 'image', title: 'Image' }, { key: 'seen', title: 'Last seen' },
];

const view = {
  sort: 'mac', desc: false, q: '', phase: '', rack: '', image: '',
  /** selected MACs */
  selected: new Set(),
  /** index (in rows) of the last row clicked, for shift-click ranges */
  anchor: -1,
  /** machines shown, filtered and sorted */
  rows: [],
  /** the search texts, rebuilt when a machine changes */
  text: new Map(),
  dirty: false,
};

let els = null; // the page's elements while it is on screen

function textOf(m) {
  let t = view.text.get(m.mac);
  if (t === undefined) { t = searchText(m); view.text.set(m.mac, t); }
  return t;
}

function computeRows() {
  const words = view.q.toLowerCase().split(/\s+/).filter(Boolean);
  const key = SORT_KEYS[view.sort];
  const rows = [];
  for (const m of machines.values()) {
    if (!matchesPhase(m, view.phase)) continue;
    if (view.rack && rackOf(m) !== view.rack) continue;
    if (view.image && imageOf(m) !== view.image) continue;
    if (words.length) { const t = textOf(m); if (!words.every((w) => t.includes(w))) continue; }
    rows.push(m);
  }
  const keyed = rows.map((m) => [key(m), m]);
  keyed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1].mac < b[1].mac ? -1 : 1));
  if (view.desc) keyed.reverse();
  view.rows = keyed.map((k) => k[1]);
}

function progressCell(m) {
  const pct = percentOf(m);
  if (pct === undefined) return h('td', { class: 'num' });
  const bar = h('div', { class: 'bar mini', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.floor(pct) });
  const fill = h('span');
  fill.style.width = `${pct.toFixed(1)}%`;
  bar.append(fill);
  return h('td', {}, h('div', { class: 'progress-cell' }, bar, h('span', { class: 'pct', text: `${Math.floor(pct)}%` })));
}

function rowOf(m, index) {
  const selected = view.selected.has(m.mac);
  const tr = h('tr', { class: `${stateClass(m)}${selected ? ' selected' : ''}`, 'data-mac': m.mac, 'data-phase': m.phase || 'unknown', 'data-index': index },
    h('td', { class: 'pick' }, h('input', { type: 'checkbox', 'aria-label': `select ${m.mac}`, checked: selected ? 'checked' : null })),
    h('td', {}, h('a', { class: 'mac', href: `#/m/${m.mac}`, text: m.mac })),
    h('td', { text: m.name || '' }),
    h('td', {}, h('span', { class: 'badge', text: phaseWords(m) }), m.actionError || (m.result && !m.result.ok) ? h('span', { class: 'bad', title: m.actionError || m.result.message || '', text: ' ⚠' }) : null),
    progressCell(m),
    h('td', { class: 'next-cell', title: m.next || '', text: `${m.next || 'no action'}${m.persistent ? ' (persistent)' : ''}` }),
    h('td', { text: imageOf(m) }),
    h('td', { text: seenWords(m) }));
  return tr;
}

/** Draw the rows in view (and the spacers standing for the rest). */
function paint() {
  if (!els) return;
  const { scroller, tbody } = els;
  const total = view.rows.length;
  const first = Math.max(0, Math.floor(scroller.scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(total, Math.ceil((scroller.scrollTop + scroller.clientHeight) / ROW_HEIGHT) + OVERSCAN);
  const top = h('tr', { class: 'spacer', 'aria-hidden': 'true' });
  top.style.height = `${first * ROW_HEIGHT}px`;
  const bottom = h('tr', { class: 'spacer', 'aria-hidden': 'true' });
  bottom.style.height = `${(total - last) * ROW_HEIGHT}px`;
  const rows = [];
  for (let i = first; i < last; i++) rows.push(rowOf(view.rows[i], i));
  tbody.replaceChildren(top, ...rows, bottom);
  paintCounts();
}

function countsText() {
  const all = machines.size;
  const shown = view.rows.length;
  const sel = view.selected.size;
  return `${shown === all ? `${all} machine${all === 1 ? '' : 's'}` : `${shown} of ${all} machines shown`}${sel ? ` · ${sel} selected` : ''}`;
}

function paintCounts() {
  if (!els) return;
  els.count.textContent = countsText();
  const empty = document.getElementById('machines-empty');
  if (empty) empty.hidden = machines.size > 0;
  const sel = view.selected.size;
  els.bulk.disabled = sel === 0;
  els.bulk.textContent = sel ? `Change ${sel} machine${sel === 1 ? '' : 's'}…` : 'Change selected…';
  els.clear.hidden = sel === 0;
  const shownSelected = view.rows.length > 0 && view.rows.every((m) => view.selected.has(m.mac));
  els.all.checked = shownSelected;
  els.all.indeterminate = !shownSelected && sel > 0;
}

function refresh() { computeRows(); paint(); }

/** Live changes come in bursts: recompute once per frame. */
function refreshSoon() {
  if (view.dirty) return;
  view.dirty = true;
  requestAnimationFrame(() => { view.dirty = false; if (els) { repaintFilters(); refresh(); } });
}

function optionList(values, allLabel) {
  return [h('option', { value: '', text: allLabel }), ...[...values].sort().map((v) => h('option', { value: v, text: v }))];
}

function filterOptions() {
  const racks = new Set(); const images = new Set(); const phases = new Set();
  for (const m of machines.values()) {
    const r = rackOf(m); if (r) racks.add(r);
    const i = imageOf(m); if (i) images.add(i);
    if (m.phase) phases.add(m.phase);
  }
  return { racks, images, phases };
}

let filterSig = '';

/** The filters' choices follow the fleet (a new rack, a new image); redrawn only when they change. */
function repaintFilters(force = false) {
  if (!els) return;
  const { racks, images, phases } = filterOptions();
  const sig = [[...racks].sort(), [...images].sort(), [...phases].sort()].map((l) => l.join('\n')).join('\t');
  if (!force && sig === filterSig) return;
  filterSig = sig;
  const keep = (sel, opts, value) => { sel.replaceChildren(...opts); sel.value = value; };
  keep(els.rack, optionList(racks, 'every rack'), view.rack);
  keep(els.image, optionList(images, 'every image'), view.image);
  keep(els.phase, [
    h('option', { value: '', text: 'every phase' }),
    h('option', { value: 'state:active', text: 'working' }), h('option', { value: 'state:failed', text: 'failed' }),
    h('option', { value: 'state:done', text: 'done' }), h('option', { value: 'state:idle', text: 'idle' }),
    ...[...phases].sort().map((p) => h('option', { value: p, text: `phase: ${WORDS[p] || p}` })),
  ], view.phase);
}

function onRowClick(ev) {
  const tr = ev.target.closest('tr[data-mac]');
  if (!tr || ev.target.closest('a')) return;
  const index = Number(tr.dataset.index);
  const mac = tr.dataset.mac;
  const on = !view.selected.has(mac);
  if (ev.shiftKey && view.anchor >= 0 && view.anchor < view.rows.length) {
    const [a, b] = view.anchor < index ? [view.anchor, index] : [index, view.anchor];
    const to = view.selected.has(view.rows[view.anchor].mac);
    for (let i = a; i <= b; i++) { if (to) view.selected.add(view.rows[i].mac); else view.selected.delete(view.rows[i].mac); }
  } else if (on) view.selected.add(mac); else view.selected.delete(mac);
  view.anchor = index;
  ev.preventDefault();
  paint();
}

/** The selected machines in the table's order (hostname patterns number them so), then any selected but filtered out. */
export function selectedInOrder() {
  const out = view.rows.filter((m) => view.selected.has(m.mac));
  const shown = new Set(out.map((m) => m.mac));
  for (const mac of view.selected) if (!shown.has(mac) && machines.has(mac)) out.push(machines.get(mac));
  return out;
}

function headerCell(c) {
  const sorted = view.sort === c.key;
  const th = h('th', { 'data-sort': c.key, 'aria-sort': sorted ? (view.desc ? 'descending' : 'ascending') : 'none' },
    h('button', { type: 'button', class: 'sort', text: `${c.title}${sorted ? (view.desc ? ' ▼' : ' ▲') : ''}` }));
  th.addEventListener('click', () => {
    if (view.sort === c.key) view.desc = !view.desc; else { view.sort = c.key; view.desc = false; }
    els.head.replaceChildren(...headRow());
    refresh();
  });
  return th;
}

function headRow() {
  return [h('th', { class: 'pick' }, els.all), ...COLUMNS.map(headerCell)];
}

function readHashFilters(params) {
  for (const k of ['q', 'phase', 'rack', 'image']) view[k] = params.get(k) || '';
}

function renderTable(params) {
  setNav('machines');
  readHashFilters(params);
  view.text.clear();
  const search = h('input', { id: 'search', type: 'search', placeholder: 'search MAC, name, phase, action, serial…', value: view.q, 'aria-label': 'search' });
  const phase = h('select', { id: 'filter-phase', 'aria-label': 'phase' });
  const rack = h('select', { id: 'filter-rack', 'aria-label': 'rack' });
  const image = h('select', { id: 'filter-image', 'aria-label': 'image' });
  const all = h('input', { type: 'checkbox', id: 'select-all', 'aria-label': 'select every machine shown' });
  const bulk = h('button', { type: 'button', id: 'bulk-open', class: 'primary', text: 'Change selected…' });
  const register = h('button', { type: 'button', id: 'register-open', text: 'Register machines…' });
  const clear = h('button', { type: 'button', id: 'select-none', class: 'link', text: 'clear selection' });
  const count = h('span', { id: 'summary', class: 'summary' });
  const head = h('tr');
  const tbody = h('tbody');
  const scroller = h('div', { class: 'fleet-scroll', id: 'machines-scroll' }, h('table', { id: 'machines-table', class: 'fleet' }, h('thead', {}, head), tbody));
  const panel = h('div', { id: 'panel' });
  els = { search, phase, rack, image, all, bulk, clear, count, head, tbody, scroller, panel };
  head.replaceChildren(...headRow());
  repaintFilters(true);

  let typing;
  search.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(() => { view.q = search.value; scroller.scrollTop = 0; refresh(); }, 60); });
  for (const [sel, k] of [[phase, 'phase'], [rack, 'rack'], [image, 'image']]) sel.addEventListener('change', () => { view[k] = sel.value; scroller.scrollTop = 0; refresh(); });
  all.addEventListener('change', () => {
    if (all.checked) for (const m of view.rows) view.selected.add(m.mac); else for (const m of view.rows) view.selected.delete(m.mac);
    paint();
  });
  clear.addEventListener('click', () => { view.selected.clear(); paint(); });
  tbody.addEventListener('click', onRowClick);
  scroller.addEventListener('scroll', () => requestAnimationFrame(paint), { passive: true });
  bulk.addEventListener('click', () => openBulkPanel(panel, selectedInOrder(), { done: () => { paint(); } }));
  register.addEventListener('click', () => openRegisterPanel(panel, { done: () => refresh() }));

  main.replaceChildren(...[
    h('h1', { text: 'Machines' }),
    h('div', { class: 'toolbar' }, search, phase, rack, image, h('a', { href: '#/cards', class: 'view-switch', text: 'as cards' })),
    h('div', { class: 'toolbar' }, count, clear, h('span', { class: 'grow' }), register, bulk),
    panel,
    h('div', { class: 'empty', id: 'machines-empty', hidden: machines.size ? 'hidden' : null, text: 'No machines yet. Register them by MAC ("Register machines…"), or boot one against this server.' }),
    scroller].filter(Boolean));
  refresh();
}

// ---- #/cards: the same machines as cards ------------------------------------------------------

function summaryText(list) {
  const counts = {};
  for (const m of list) { const c = stateClass(m).slice(6); counts[c] = (counts[c] || 0) + 1; }
  return `${list.length} machine${list.length === 1 ? '' : 's'}` +
    (counts.active ? ` · ${counts.active} working` : '') + (counts.done ? ` · ${counts.done} done` : '') + (counts.failed ? ` · ${counts.failed} failed` : '');
}

function renderCards() {
  setNav('machines');
  const list = [...machines.values()].sort((a, b) => a.mac.localeCompare(b.mac));
  main.replaceChildren(
    h('h1', { text: 'Machines' }),
    h('div', { class: 'summary' }, h('span', { id: 'summary', text: summaryText(list) }), ' · ', h('a', { href: '#/', class: 'view-switch', text: 'as a table' })),
    list.length === 0
      ? h('div', { class: 'empty', text: 'No machines yet. Add one with "booty machines add MAC --image URL", or boot one against this server.' })
      : h('div', { class: 'grid', id: 'machines' }, list.map(machineCard)));
}

function updateCard(m) {
  const grid = document.getElementById('machines');
  if (!grid) { renderCards(); return; }
  const old = grid.querySelector(`[data-mac="${m.mac}"]`);
  if (old) old.replaceWith(machineCard(m)); else renderCards();
  const s = document.getElementById('summary');
  if (s) s.textContent = summaryText([...machines.values()]);
}

function hashParams(hash) {
  if (hash === '#/' || hash === '#') return new URLSearchParams();
  if (hash.startsWith('#/?')) return new URLSearchParams(hash.slice(3));
  return null;
}

export const machinesPage = {
  match: hashParams,
  render: async (params) => renderTable(params),
  leave: () => { els = null; },
  onMachine: (m) => { view.text.delete(m.mac); refreshSoon(); },
  onRemoved: (mac) => { view.selected.delete(mac); view.text.delete(mac); refreshSoon(); },
  onReconnect: () => { view.text.clear(); repaintFilters(); refresh(); },
  // "seen 2 min ago" ages without events
  onTick: () => paint(),
};

export const machineCardsPage = {
  match: (hash) => (hash === '#/cards' ? {} : null),
  render: async () => renderCards(),
  onMachine: updateCard,
  onRemoved: () => renderCards(),
  onReconnect: () => renderCards(),
  onTick: () => renderCards(),
};
