// #/ : every machine as a card.

import { h, main, setNav } from './dom.js';
import { machines } from './fleet-state.js';
import { machineCard } from './machine-card.js';
import { stateClass } from './machine-words.js';

function summaryText(list) {
  const counts = {};
  for (const m of list) { const c = stateClass(m).slice(6); counts[c] = (counts[c] || 0) + 1; }
  return `${list.length} machine${list.length === 1 ? '' : 's'}` +
    (counts.active ? ` · ${counts.active} working` : '') + (counts.done ? ` · ${counts.done} done` : '') + (counts.failed ? ` · ${counts.failed} failed` : '');
}

function renderList() {
  setNav('machines');
  const list = [...machines.values()].sort((a, b) => a.mac.localeCompare(b.mac));
  main.replaceChildren(
    h('h1', { text: 'Machines' }),
    h('div', { class: 'summary', id: 'summary', text: summaryText(list) }),
    list.length === 0
      ? h('div', { class: 'empty', text: 'No machines yet. Add one with "booty machines add MAC --image URL", or boot one against this server.' })
      : h('div', { class: 'grid', id: 'machines' }, list.map(machineCard)));
}

function updateCard(m) {
  const grid = document.getElementById('machines');
  if (!grid) { renderList(); return; }
  const old = grid.querySelector(`[data-mac="${m.mac}"]`);
  if (old) old.replaceWith(machineCard(m)); else renderList();
  const s = document.getElementById('summary');
  if (s) s.textContent = summaryText([...machines.values()]);
}

export const machinesPage = {
  match: (hash) => (hash === '#/' ? {} : null),
  render: async () => renderList(),
  onMachine: updateCard,
  onRemoved: () => renderList(),
  onReconnect: () => renderList(),
  // "seen 2 min ago" and stale warnings age without events
  onTick: () => renderList(),
};
