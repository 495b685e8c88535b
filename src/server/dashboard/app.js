// booty dashboard: hand-written, no framework, no build step. Pages (by URL hash):
//   #/            every machine: phase, progress bar (MB/s, ETA), errors, last log lines
//   #/m/<mac>     one machine: settings, run history, full log
//   #/images      the image catalog
// Live: Server-Sent Events from /api/events/stream update what is on screen.
// Login: everything shown needs an operator. Without one (GET /api/session), a form takes an
// operator token and POST /api/login turns it into an HttpOnly session cookie; a 401 later (the
// login expired, the token was revoked) brings the form back. Logout deletes the cookie.
'use strict';

const machines = new Map();
let currentLog = null; // {mac, lines} while a machine page is open
const main = document.getElementById('main');
const live = document.getElementById('live');
const who = document.getElementById('who');
let stream = null;

const ACTIVE = new Set(['booting', 'modules', 'network', 'dhcp', 'fetching-action', 'preflight', 'writing', 'verifying', 'growing', 'configuring', 'capturing', 'uploading', 'rebooting', 'powering-off']);
const WORDS = {
  booting: 'booting', modules: 'loading drivers', network: 'bringing up the network', dhcp: 'getting an address (DHCP)',
  'fetching-action': 'asking for its action', preflight: 'checking the disk', writing: 'writing the image', verifying: 'verifying',
  growing: 'growing the disk', configuring: 'configuring the system', capturing: 'reading the disk', uploading: 'uploading',
  rebooting: 'rebooting', 'powering-off': 'powering off', shell: 'waiting in a shell', done: 'done', failed: 'failed',
  inspecting: 'inspected: waiting for an operator',
};
const STALE_MS = 5 * 60 * 1000;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v; else if (k === 'text') el.textContent = v; else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

function bytes(n) {
  if (n === undefined || n === null) return '?';
  const u = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(i === 0 || n >= 100 ? 0 : 1)} ${u[i]}`;
}
function rate(r) { return r === undefined ? '' : `${(r / 1e6).toFixed(r >= 1e8 ? 0 : 1)} MB/s`; }
function duration(s) {
  if (s === undefined || s === null || !isFinite(s)) return '';
  s = Math.max(0, Math.round(s));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  return hh > 0 ? `${hh}:${String(mm).padStart(2, '0')}:${String(ss).padStart(2, '0')}` : `${mm}:${String(ss).padStart(2, '0')}`;
}
function ago(iso) {
  if (!iso) return 'never';
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}
function stateClass(m) {
  // rebooting/powering off after a result: the result is what matters
  if (m.result && (m.phase === 'rebooting' || m.phase === 'powering-off')) return m.result.ok ? 'state-done' : 'state-failed';
  return m.phase === 'failed' ? 'state-failed' : m.phase === 'done' ? 'state-done' : ACTIVE.has(m.phase) ? 'state-active' : 'state-idle';
}

/** The plain-words problem of a machine, if any. */
function problems(m) {
  const out = [];
  if (m.actionError) out.push(['error', `Its action cannot be served: ${m.actionError}`]);
  if (m.result && !m.result.ok) out.push(['error', m.result.message || `The ${m.result.action} failed (${m.result.code || 'no reason given'}).`]);
  // a trial boot (bootOrder "trial"): failed is an error, pending a note; confirmed needs no words here
  if (m.trial && (m.trial.state === 'failed' || m.trial.state === 'handled')) out.push(['error', m.trial.message]);
  if (m.trial && m.trial.state === 'pending') out.push(['warning', m.trial.message]);
  if (ACTIVE.has(m.phase) && m.lastSeen && Date.now() - Date.parse(m.lastSeen) > STALE_MS) out.push(['warning', `No report since ${ago(m.lastSeen)}: the machine may have hung or lost its network.`]);
  return out;
}

function progressBlock(m) {
  let p = m.progress;
  // a successful result is the whole image, whatever the last progress report said
  const finished = m.result !== undefined && m.result !== null;
  if (p && finished && m.result.ok) p = { ...p, bytes: m.result.bytes ?? p.total ?? p.bytes, total: m.result.bytes ?? p.total ?? p.bytes };
  const moving = p && (m.phase === 'writing' || m.phase === 'capturing' || m.phase === 'uploading' || m.phase === 'verifying');
  if (!p || !(moving || finished)) return null;
  const total = p.total;
  const pct = total ? Math.min(100, (p.bytes / total) * 100) : (finished && m.result.ok ? 100 : undefined);
  const eta = p.etaSeconds !== undefined ? p.etaSeconds : total && p.rate > 0 ? (total - p.bytes) / p.rate : undefined;
  const figures = [
    pct === undefined ? null : `${Math.floor(pct)}%`,
    total ? `${bytes(p.bytes)} of ${bytes(total)}` : bytes(p.bytes),
    moving ? rate(p.rate) : null,
    moving && eta !== undefined ? `ETA ${duration(eta)}` : null,
  ].filter(Boolean).join(' · ');
  const bar = h('div', { class: `bar${pct === undefined ? ' indeterminate' : ''}`, role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100,
    'aria-valuenow': pct === undefined ? undefined : Math.floor(pct), 'data-bytes': p.bytes, 'data-total': total });
  const fill = h('span');
  if (pct !== undefined) fill.style.width = `${pct.toFixed(1)}%`;
  bar.append(fill);
  return h('div', { class: 'progress' }, bar, h('div', { class: 'figures', text: figures }));
}

// the machine's last inventory in one line: vendor product, serial, firmware, CPUs, memory, disks
function hardwareLine(hw) {
  return [
    [hw.vendor, hw.product].filter(Boolean).join(' ') || 'unknown system',
    hw.serial ? `serial ${hw.serial}` : null,
    `${hw.firmware}${hw.secureBoot ? ' secure boot' : ''}`,
    `${hw.cpus} CPU${hw.cpus === 1 ? '' : 's'}`,
    `${bytes(hw.memoryBytes)} RAM`,
    `disks: ${hw.disks.join(', ') || 'none'}`,
  ].filter(Boolean).join(' · ');
}

function machineCard(m) {
  const lines = (m.recentLog || []).slice(-3).map((l) => l.replace(/^\S+T(\d\d:\d\d:\d\d)\S* /, '$1 '));
  return h('article', { class: `machine ${stateClass(m)}`, 'data-mac': m.mac, 'data-phase': m.phase || 'unknown' },
    h('header', {},
      h('a', { class: 'mac', href: `#/m/${m.mac}`, text: m.mac }),
      m.name ? h('span', { class: 'name', text: m.name }) : null,
      h('span', { class: 'badge', text: WORDS[m.phase] || m.phase || 'not seen yet' })),
    h('div', { class: 'next', text: `next boot: ${m.next || 'no action'}${m.persistent ? ' (persistent)' : ''} · seen ${ago(m.lastSeen)}` }),
    m.hardware ? h('div', { class: 'hardware', text: hardwareLine(m.hardware) }) : null,
    progressBlock(m),
    problems(m).map(([cls, text]) => h('p', { class: cls, text })),
    lines.length ? h('pre', { class: 'log', text: lines.join('\n') }) : null);
}

function setNav(which) {
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('current', a.dataset.nav === which);
}

// ---- pages -----------------------------------------------------------------------------------

function renderList() {
  setNav('machines');
  const list = [...machines.values()].sort((a, b) => a.mac.localeCompare(b.mac));
  const counts = {};
  for (const m of list) { const c = stateClass(m).slice(6); counts[c] = (counts[c] || 0) + 1; }
  const summary = `${list.length} machine${list.length === 1 ? '' : 's'}` +
    (counts.active ? ` · ${counts.active} working` : '') + (counts.done ? ` · ${counts.done} done` : '') + (counts.failed ? ` · ${counts.failed} failed` : '');
  main.replaceChildren(
    h('h1', { text: 'Machines' }),
    h('div', { class: 'summary', id: 'summary', text: summary }),
    list.length === 0
      ? h('div', { class: 'empty', text: 'No machines yet. Add one with "booty machines add MAC --image URL", or boot one against this server.' })
      : h('div', { class: 'grid', id: 'machines' }, list.map(machineCard)));
}

function updateCard(m) {
  const grid = document.getElementById('machines');
  if (!grid) { renderList(); return; }
  const old = grid.querySelector(`[data-mac="${m.mac}"]`);
  if (old) old.replaceWith(machineCard(m)); else renderList();
  const list = [...machines.values()];
  const s = document.getElementById('summary');
  if (s) s.textContent = `${list.length} machine${list.length === 1 ? '' : 's'}`;
}

class LoginNeeded extends Error {}

async function getOk(url) {
  const r = await fetch(url, { cache: 'no-store' });
  if (r.status === 401) throw new LoginNeeded((await r.json().catch(() => ({}))).error || 'log in');
  if (!r.ok) throw new Error(`${url}: ${r.status} ${(await r.text()).slice(0, 200)}`);
  return r;
}
async function getJson(url) { return (await getOk(url)).json(); }

async function postJson(url, body) {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body ?? {}) });
}

// ---- login -------------------------------------------------------------------------------------

function showLogin(problem) {
  if (stream) { stream.close(); stream = null; }
  live.textContent = ''; live.className = 'live';
  who.replaceChildren();
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'current-password', placeholder: 'operator token', required: 'required' });
  const error = h('p', { class: 'error', id: 'login-error', text: problem || '' });
  const form = h('form', { id: 'login', class: 'login' },
    h('h1', { text: 'Log in' }),
    h('p', { text: 'The dashboard shows machines, logs and images to operators. Paste an operator token (make one on the server: booty tokens add NAME --data DIR).' }),
    input, h('button', { type: 'submit', text: 'Log in' }), error);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await postJson('/api/login', { token: input.value });
    if (r.ok) { input.value = ''; start(); return; }
    error.textContent = (await r.json().catch(() => ({}))).error || `login failed (${r.status})`;
  });
  main.replaceChildren(form);
  input.focus();
}

function showOperator(name) {
  who.replaceChildren(h('span', { text: name }), ' ');
  // loopback needs no login, so there is nothing to log out of
  if (name !== 'loopback' && name !== 'insecure-open') {
    const out = h('button', { id: 'logout', class: 'link', type: 'button', text: 'log out' });
    out.addEventListener('click', async () => { await postJson('/api/logout'); machines.clear(); showLogin('Logged out.'); });
    who.append(out);
  }
}

function failed(e) {
  if (e instanceof LoginNeeded) showLogin(e.message);
  else main.replaceChildren(h('p', { class: 'error', text: `Could not load this page: ${e.message}` }));
}

async function renderMachine(mac) {
  setNav('');
  const [m, runs, logText, audit] = await Promise.all([
    getJson(`/api/machines/${mac}`), getJson(`/api/machines/${mac}/runs?limit=50`),
    getOk(`/api/machines/${mac}/log?limit=5000`).then((r) => r.text()), getJson(`/api/audit?mac=${mac}&limit=50`),
  ]);
  machines.set(mac, { ...machines.get(mac), ...m });
  currentLog = { mac, lines: logText.split('\n').filter((l) => l !== '') };
  drawMachine(mac, runs.runs, audit.entries);
}

function settingsText(s) {
  if (!s) return '(none)';
  const a = s.action ? JSON.stringify(s.action) : 'no action';
  return `${a}${s.persistent ? ' · persistent' : ''}${s.name ? ` · name ${s.name}` : ''}`;
}

function drawMachine(mac, runs, audit) {
  const m = machines.get(mac);
  if (!m) return;
  const settings = [
    ['Phase', WORDS[m.phase] || m.phase || 'not seen yet'],
    ['Next boot', `${m.next || 'no action'}${m.oneShotDone ? ` (one-shot action done ${ago(m.oneShotDone)})` : ''}`],
    ['Configured action', m.action || 'none'],
    ['Managed by', m.managedBy === 'file' ? `file machines/${m.mac}.json` : m.managedBy === 'api' ? 'API / CLI' : m.actionSource === 'default' ? 'default.json' : '—'],
    ['Runs the action', m.persistent ? 'at every boot (persistent)' : 'once, then boots from disk (one-shot)'],
    ['First seen', m.firstSeen ? new Date(m.firstSeen).toLocaleString() : 'never'],
    ['Last seen', ago(m.lastSeen)],
  ];
  const card = machineCard(m);
  card.querySelector('pre.log')?.remove();
  main.replaceChildren(
    h('h1', {}, h('span', { class: 'mac', text: m.mac }), m.name ? ` ${m.name}` : ''),
    card,
    h('h2', { text: 'Settings' }),
    h('dl', { class: 'settings' }, settings.map(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })])),
    h('h2', { text: 'Runs' }),
    runs.length === 0 ? h('div', { class: 'empty', text: 'No runs yet.' }) : h('div', { class: 'table-wrap' }, h('table', { id: 'runs' },
      h('thead', {}, h('tr', {}, ['Started', 'Action', 'Result', 'Bytes', 'Time', 'Rate', 'Phases'].map((t) => h('th', { text: t })))),
      h('tbody', {}, runs.map((r) => h('tr', {},
        h('td', { text: new Date(r.started).toLocaleString() }),
        h('td', { text: r.resultAction || r.action || '' }),
        h('td', { class: r.ok === true ? 'ok' : r.ok === false ? 'bad' : '', text: r.ok === true ? 'ok' : r.ok === false ? `failed: ${r.error || r.code || ''}` : r.ended ? 'no result (interrupted)' : 'running' }),
        h('td', { class: 'num', text: r.bytes === undefined ? '' : bytes(r.bytes) }),
        h('td', { class: 'num', text: duration(r.seconds) }),
        h('td', { class: 'num', text: r.seconds && r.bytes ? rate(r.bytes / r.seconds) : rate(r.rate) }),
        h('td', { text: r.phases.map((p) => p.phase).join(' → ') })))))),
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
    h('pre', { class: 'log full', id: 'fulllog', text: currentLog && currentLog.mac === mac ? currentLog.lines.join('\n') : '' }));
  const pre = document.getElementById('fulllog');
  pre.scrollTop = pre.scrollHeight;
}

async function renderImages() {
  setNav('images');
  const { images } = await getJson('/api/images');
  main.replaceChildren(
    h('h1', { text: 'Images' }),
    images.length === 0 ? h('div', { class: 'empty', text: 'No images. Upload one with PUT /images/<name>, or capture a machine.' })
      : h('div', { class: 'table-wrap' }, h('table', { id: 'images' },
        h('thead', {}, h('tr', {}, ['Name', 'Size', 'Format', 'Uncompressed', 'sha256', 'From', 'Stored', 'Used by'].map((t) => h('th', { text: t })))),
        h('tbody', {}, images.map((i) => h('tr', {},
          h('td', {}, h('a', { href: `/images/${encodeURIComponent(i.name)}`, text: i.name })),
          h('td', { class: 'num', text: bytes(i.size) }),
          h('td', { text: i.format || '' }),
          h('td', { class: 'num', text: i.uncompressedSize === undefined ? '' : bytes(i.uncompressedSize) }),
          h('td', { class: 'hash', title: i.sha256 || 'not hashed yet', text: i.sha256 ? `${i.sha256.slice(0, 12)}…` : 'hashing…' }),
          h('td', {}, i.machine ? h('a', { href: `#/m/${i.machine}`, text: `capture of ${i.machine}` }) : (i.via === 'import' ? 'placed by hand' : i.via || '')),
          h('td', { text: i.storedAt ? new Date(i.storedAt).toLocaleString() : new Date(i.mtime).toLocaleString() }),
          h('td', { text: (i.usedBy || []).join(', ') })))))));
}

// ---- routing and live updates ------------------------------------------------------------------

function route() {
  const hash = location.hash || '#/';
  const m = /^#\/m\/([0-9a-f-]{17})$/.exec(hash);
  currentLog = null;
  const page = m ? renderMachine(m[1]) : hash === '#/images' ? renderImages() : Promise.resolve(renderList());
  page.catch(failed);
}

async function loadMachines() {
  const { machines: list } = await getJson('/api/machines');
  machines.clear();
  for (const m of list) machines.set(m.mac, m);
}

function connect() {
  if (stream) stream.close();
  const es = new EventSource('/api/events/stream');
  stream = es;
  es.onopen = () => {
    live.textContent = 'live'; live.className = 'live on';
    // after a reconnect, what was missed is reloaded
    loadMachines().then(() => { if ((location.hash || '#/') === '#/') renderList(); }).catch(() => {});
  };
  es.onerror = () => {
    live.textContent = 'reconnecting…'; live.className = 'live off';
    // EventSource does not say why: a login that expired meanwhile shows the form
    fetch('/api/session', { cache: 'no-store' }).then((r) => r.json()).then((s) => { if (!s.operator && stream === es) showLogin(s.problem); }).catch(() => {});
  };
  es.addEventListener('machine', (ev) => {
    const m = JSON.parse(ev.data);
    machines.set(m.mac, m);
    const hash = location.hash || '#/';
    if (hash === '#/') updateCard(m);
    else if (hash === `#/m/${m.mac}`) {
      const card = main.querySelector(`[data-mac="${m.mac}"]`);
      if (card) { const c = machineCard(m); c.querySelector('pre.log')?.remove(); card.replaceWith(c); }
    }
  });
  es.addEventListener('removed', (ev) => {
    machines.delete(JSON.parse(ev.data).mac);
    if ((location.hash || '#/') === '#/') renderList();
  });
  es.addEventListener('log', (ev) => {
    const { mac, lines } = JSON.parse(ev.data);
    if (currentLog && currentLog.mac === mac) {
      currentLog.lines.push(...lines);
      const pre = document.getElementById('fulllog');
      if (pre) {
        const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
        pre.append('\n' + lines.join('\n'));
        if (atEnd) pre.scrollTop = pre.scrollHeight;
      }
    }
  });
  es.addEventListener('images', () => { if (location.hash === '#/images') renderImages().catch(() => {}); });
}

async function start() {
  const session = await (await fetch('/api/session', { cache: 'no-store' })).json();
  if (!session.operator) { showLogin(session.problem); return; }
  showOperator(session.operator);
  try { await loadMachines(); } catch (e) { failed(e); return; }
  route();
  connect();
}

window.addEventListener('hashchange', () => { if (stream) route(); });
start().catch(failed);
// "seen 2 min ago" and stale warnings age without events
setInterval(() => { if (stream && (location.hash || '#/') === '#/') renderList(); }, 30_000);
