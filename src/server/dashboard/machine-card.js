// One machine as a card: phase, next boot, hardware, progress bar, problems, last log lines.

import { ago, bytes, duration, h, rate } from './dom.js';
import { WORDS, problems, stateClass } from './machine-words.js';

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

/** The machine's last inventory in one line: vendor product, serial, firmware, CPUs, memory, disks. */
export function hardwareLine(hw) {
  return [
    [hw.vendor, hw.product].filter(Boolean).join(' ') || 'unknown system',
    hw.serial ? `serial ${hw.serial}` : null,
    `${hw.firmware}${hw.secureBoot ? ' secure boot' : ''}`,
    `${hw.cpus} CPU${hw.cpus === 1 ? '' : 's'}`,
    `${bytes(hw.memoryBytes)} RAM`,
    `disks: ${hw.disks.join(', ') || 'none'}`,
  ].filter(Boolean).join(' · ');
}

export function machineCard(m) {
  const lines = (m.recentLog || []).slice(-3).map((l) => l.replace(/^\S+T(\d\d:\d\d:\d\d)\S* /, '$1 '));
  return h('article', { class: `machine ${stateClass(m)}`, 'data-mac': m.mac, 'data-phase': m.phase || 'unknown' },
    h('header', {},
      h('a', { class: 'mac', href: `#/m/${m.mac}`, text: m.mac }),
      m.name ? h('span', { class: 'name', text: m.name }) : null,
      h('span', { class: 'badge', text: WORDS[m.phase] || m.phase || 'not seen yet' })),
    h('div', { class: 'next', text: `next boot: ${m.next || 'no action'}${m.persistent ? ' (persistent)' : ''} · seen ${ago(m.lastSeen)}` }),
    m.hardware ? h('div', { class: 'hardware', text: hardwareLine(m.hardware) }) : null,
    progressBlock(m),
    problems(m, ago).map(([cls, text]) => h('p', { class: cls, text })),
    lines.length ? h('pre', { class: 'log', text: lines.join('\n') }) : null);
}
