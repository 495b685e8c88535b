// What the fleet table shows of a machine, one function per column, and the words its filters
// and search match. Shared by the machines table and the fleet view.

import { ago } from './dom.js';
import { WORDS, stateClass } from './machine-words.js';

/** A rack is the part of a machine's name before its first "-" (name machines rack-slot: rack1-u7). */
export function rackOf(m) {
  const n = m.name || '';
  const i = n.indexOf('-');
  return i > 0 ? n.slice(0, i) : '';
}

/** The image its action names: the last path segment of the URL in the action's words. */
export function imageOf(m) {
  const words = m.action || '';
  const url = /^(?:deploy|deploy-rootfs) (\S+)/.exec(words)?.[1] ?? /^capture \S+(?: \(.*?\))? -> (\S+)/.exec(words)?.[1];
  if (!url) return '';
  try { return decodeURIComponent(new URL(url).pathname.split('/').pop() || ''); } catch { return url; }
}

export function phaseWords(m) { return WORDS[m.phase] || m.phase || 'not seen yet'; }

/** Percent done of the current or last transfer, undefined when there is none. */
export function percentOf(m) {
  const p = m.progress;
  // a successful transfer is whole even when it ended before its first progress report (a small image)
  if (m.result?.ok && (p || typeof m.result.bytes === 'number')) return 100;
  if (!p || !p.total) return undefined;
  return Math.min(100, (p.bytes / p.total) * 100);
}

/** Sort keys: every column sorts by a string or a number. */
export const SORT_KEYS = {
  mac: (m) => m.mac,
  name: (m) => (m.name || '').toLowerCase(),
  phase: (m) => phaseWords(m),
  progress: (m) => percentOf(m) ?? -1,
  next: (m) => m.next || '',
  image: (m) => imageOf(m).toLowerCase(),
  seen: (m) => (m.lastSeen ? Date.parse(m.lastSeen) : 0),
};

/** Everything free-text search looks in, lower case. */
export function searchText(m) {
  const hw = m.hardware;
  return [m.mac, m.mac.replaceAll('-', ':'), m.name, phaseWords(m), m.next, m.action, m.actionError, m.result?.message,
    hw && [hw.vendor, hw.product, hw.serial, ...(hw.disks || [])].join(' ')].filter(Boolean).join(' ').toLowerCase();
}

/** The phase filter's groups: the state a machine is in, then each phase by name. */
export function matchesPhase(m, phase) {
  if (!phase) return true;
  if (phase.startsWith('state:')) return stateClass(m) === `state-${phase.slice(6)}`;
  return (m.phase || '') === phase;
}

export function seenWords(m) { return ago(m.lastSeen); }
