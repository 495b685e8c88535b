// A machine's full log, following live, with a search box: typing keeps only the lines that
// contain the text (case-insensitive) and marks each match. Lines arriving meanwhile are
// filtered the same way. The newest MAX_LINES lines are kept in the page.

import { h } from './dom.js';

const MAX_LINES = 20_000;

/** The matches of `query` in `line` (lower-cased search): [[start, end], ...]; none for an empty query. */
export function matchesOf(line, query) {
  const out = [];
  if (query === '') return out;
  const hay = line.toLowerCase();
  for (let i = hay.indexOf(query); i !== -1; i = hay.indexOf(query, i + query.length)) out.push([i, i + query.length]);
  return out;
}

function markedLine(line, query) {
  const parts = [];
  let at = 0;
  for (const [a, b] of matchesOf(line, query)) {
    if (a > at) parts.push(line.slice(at, a));
    parts.push(h('mark', { text: line.slice(a, b) }));
    at = b;
  }
  if (at < line.length) parts.push(line.slice(at));
  parts.push('\n');
  return parts;
}

/** The log block: {element, append(lines)}. */
export function logView(initial) {
  const lines = initial.slice(-MAX_LINES);
  const input = h('input', { type: 'search', id: 'log-search', placeholder: 'search the log', 'aria-label': 'search the log', autocomplete: 'off' });
  const count = h('span', { class: 'log-count', id: 'log-count' });
  const pre = h('pre', { class: 'log full', id: 'fulllog' });
  let query = '';
  let shown = 0;

  const atEnd = () => pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
  const showCount = () => { count.textContent = query === '' ? `${lines.length} lines` : `${shown} of ${lines.length} lines match`; };
  function draw() {
    query = input.value.trim().toLowerCase();
    if (query === '') {
      pre.textContent = lines.join('\n');
      shown = lines.length;
    } else {
      const hits = lines.filter((l) => l.toLowerCase().includes(query));
      shown = hits.length;
      pre.replaceChildren(...hits.flatMap((l) => markedLine(l, query)));
    }
    showCount();
    pre.scrollTop = pre.scrollHeight;
  }
  input.addEventListener('input', draw);

  function append(more) {
    const follow = atEnd();
    lines.push(...more);
    if (lines.length > MAX_LINES) { lines.splice(0, lines.length - MAX_LINES); draw(); return; }
    if (query === '') {
      pre.append((pre.textContent === '' ? '' : '\n') + more.join('\n'));
      shown = lines.length;
    } else {
      const hits = more.filter((l) => l.toLowerCase().includes(query));
      shown += hits.length;
      pre.append(...hits.flatMap((l) => markedLine(l, query)));
    }
    showCount();
    if (follow) pre.scrollTop = pre.scrollHeight;
  }

  draw();
  const element = h('div', { class: 'log-view' }, h('div', { class: 'log-tools' }, input, count), pre);
  return { element, append, scrollToEnd: () => { pre.scrollTop = pre.scrollHeight; } };
}
