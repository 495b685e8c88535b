// #/m/<mac> : one machine: its card, settings, run history, operator changes, the full log live.

import { getJson, getOk } from './api.js';
import { ago, bytes, duration, h, main, rate, setNav } from './dom.js';
import { machines } from './fleet-state.js';
import { machineCard } from './machine-card.js';
import { WORDS } from './machine-words.js';

let currentLog = null; // {mac, lines} while this page is open

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
  main.replaceChildren(
    h('h1', {}, h('span', { class: 'mac', text: m.mac }), m.name ? ` ${m.name}` : ''),
    cardWithoutLog(m),
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

async function renderMachine({ mac }) {
  setNav('');
  currentLog = null;
  const [m, runs, logText, audit] = await Promise.all([
    getJson(`/api/machines/${mac}`), getJson(`/api/machines/${mac}/runs?limit=50`),
    getOk(`/api/machines/${mac}/log?limit=5000`).then((r) => r.text()), getJson(`/api/audit?mac=${mac}&limit=50`),
  ]);
  machines.set(mac, { ...machines.get(mac), ...m });
  currentLog = { mac, lines: logText.split('\n').filter((l) => l !== '') };
  drawMachine(mac, runs.runs, audit.entries);
}

export const machinePage = {
  match: (hash) => { const m = /^#\/m\/([0-9a-f-]{17})$/.exec(hash); return m ? { mac: m[1] } : null; },
  render: renderMachine,
  leave: () => { currentLog = null; },
  onMachine(m) {
    if (!currentLog || currentLog.mac !== m.mac) return;
    const card = main.querySelector(`[data-mac="${m.mac}"]`);
    if (card) card.replaceWith(cardWithoutLog(m));
  },
  onLog(mac, lines) {
    if (!currentLog || currentLog.mac !== mac) return;
    currentLog.lines.push(...lines);
    const pre = document.getElementById('fulllog');
    if (!pre) return;
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
    pre.append('\n' + lines.join('\n'));
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  },
};
