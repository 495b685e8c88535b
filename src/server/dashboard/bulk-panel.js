// The machines table's two forms: a bulk change of the selected machines (an image from the
// catalog or a URL with its sha256; deploy, capture, wipe or none; disk or disk hints; hostname
// pattern; one-shot or persistent; re-arm), and registering machines by MAC. A bulk change is
// first checked by the server (POST /api/machines/validate, the API's own rules, nothing saved)
// and shows the exact action each machine will be served; only then can it be saved (POST
// /api/machines/bulk: all or none). Refusals show the server's sentence.

import { getJson, LoginNeeded, postJson } from './api.js';
import { h } from './dom.js';
import { buildChanges, parseRegistrations } from './bulk-change.js';

/** how many machines' actions the preview spells out (the rest are counted) */
const PREVIEW_MAX = 50;

async function answerOf(r) {
  if (r.status === 401) throw new LoginNeeded('log in');
  const body = await r.json().catch(() => ({}));
  return { status: r.status, body };
}

function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', { text: label }), input, hint ? h('small', { text: hint }) : null);
}

function previewOf(results) {
  const refused = results.filter((x) => !x.ok);
  const accepted = results.filter((x) => x.ok);
  return h('div', { id: 'bulk-preview', class: 'preview' },
    refused.length ? h('ul', { class: 'refusals' }, refused.map((x) => h('li', { class: 'error', 'data-mac': x.mac }, h('span', { class: 'mono', text: x.mac }), `: ${x.error}`))) : null,
    accepted.slice(0, PREVIEW_MAX).map((x) => h('details', { class: 'served', 'data-mac': x.mac, open: accepted.length <= 3 ? 'open' : null },
      h('summary', {}, h('span', { class: 'mono', text: x.mac }), ` ${x.summary}`),
      h('pre', { class: 'json', text: x.served === null ? '(no action of its own: default.json or the server default applies)' : JSON.stringify(x.served, null, 2) }))),
    accepted.length > PREVIEW_MAX ? h('p', { class: 'summary', text: `… and ${accepted.length - PREVIEW_MAX} more accepted.` }) : null);
}

/** The image catalog for the form's list: name -> {sha256, format}. */
async function catalog() {
  try { return (await getJson('/api/images')).images; } catch (e) { if (e instanceof LoginNeeded) throw e; return []; }
}

export async function openBulkPanel(panel, selected, { done }) {
  if (selected.length === 0) return;
  const images = await catalog();
  const action = h('select', { id: 'bulk-action' },
    [['keep', 'keep each action'], ['deploy', 'deploy an image'], ['capture', 'capture the disk'], ['wipe', 'wipe the disk'], ['none', 'none: boot from disk']]
      .map(([v, t]) => h('option', { value: v, text: t })));
  const imagePick = h('select', { id: 'bulk-image' }, h('option', { value: '', text: 'an image from the catalog…' }),
    images.map((i) => h('option', { value: i.name, text: `${i.name} (${i.format || '?'})` })), h('option', { value: '#url', text: 'another URL' }));
  const url = h('input', { id: 'bulk-url', type: 'url', placeholder: 'http://server:3000/images/ubuntu.img.zst', size: 48 });
  const sha = h('input', { id: 'bulk-sha256', placeholder: 'sha256 (64 hex digits)', size: 48, pattern: '[0-9a-fA-F]{64}' });
  const disk = h('input', { id: 'bulk-disk', placeholder: '/dev/sda (empty: the agent picks)' });
  const hints = h('input', { id: 'bulk-hints', placeholder: '{"transport": "nvme", "minSizeGiB": 100}' });
  const hostname = h('input', { id: 'bulk-hostname', placeholder: 'web{n}' });
  const start = h('input', { id: 'bulk-start', type: 'number', value: '1', min: '0', class: 'narrow' });
  const captureInto = h('input', { id: 'bulk-capture', value: '{mac}.img' });
  const wipeMethod = h('select', { id: 'bulk-wipe' }, ['quick', 'discard', 'zero', 'secure'].map((m) => h('option', { value: m, text: m })));
  const persistence = h('select', { id: 'bulk-persistence' },
    [['keep', 'keep one-shot/persistent'], ['one-shot', 'one-shot (then boot from disk)'], ['persistent', 'persistent (at every boot)']].map(([v, t]) => h('option', { value: v, text: t })));
  const rearm = h('input', { id: 'bulk-rearm', type: 'checkbox' });
  const check = h('button', { type: 'button', id: 'bulk-check', text: 'Check' });
  const save = h('button', { type: 'button', id: 'bulk-save', class: 'primary', disabled: 'disabled', text: `Save to ${selected.length} machine${selected.length === 1 ? '' : 's'}` });
  const cancel = h('button', { type: 'button', class: 'link', text: 'close' });
  const error = h('p', { id: 'bulk-error', class: 'error', role: 'alert' });
  const result = h('p', { id: 'bulk-result', class: 'ok' });
  const preview = h('div', { id: 'bulk-preview-slot' });
  const deployOnly = h('div', { class: 'fields' },
    field('Image', imagePick), field('URL', url), field('sha256', sha, 'filled in from the catalog'), field('Hostname', hostname, 'web{n}: numbered in the table\'s order; {n:3} pads, {mac} {name}'), field('numbered from', start));
  const captureOnly = h('div', { class: 'fields' }, field('Capture into image', captureInto, '{mac}, {name}, {n}'));
  const wipeOnly = h('div', { class: 'fields' }, field('Wipe method', wipeMethod));
  const target = h('div', { class: 'fields' }, field('Disk', disk), field('or disk hints (JSON)', hints));

  let checked = null; // the changes the server accepted, while the form is unchanged
  const form = () => ({
    action: action.value, image: url.value, sha256: sha.value, disk: disk.value, diskHints: hints.value, hostname: hostname.value, start: start.value,
    captureInto: captureInto.value, origin: location.origin, wipeMethod: wipeMethod.value, persistence: persistence.value, rearm: rearm.checked,
  });
  const showFor = () => {
    deployOnly.hidden = action.value !== 'deploy';
    captureOnly.hidden = action.value !== 'capture';
    wipeOnly.hidden = action.value !== 'wipe';
    target.hidden = !['deploy', 'capture', 'wipe'].includes(action.value);
  };
  const changed = () => { checked = null; save.disabled = true; result.textContent = ''; preview.replaceChildren(); showFor(); };
  for (const el of [action, url, sha, disk, hints, hostname, start, captureInto, wipeMethod, persistence, rearm]) { el.addEventListener('input', changed); el.addEventListener('change', changed); }
  imagePick.addEventListener('change', () => {
    const img = images.find((i) => i.name === imagePick.value);
    if (img) { url.value = `${location.origin}/images/${encodeURIComponent(img.name)}`; sha.value = img.sha256 || ''; }
    else if (imagePick.value === '#url') { url.value = ''; sha.value = ''; url.focus(); }
    changed();
  });

  check.addEventListener('click', async () => {
    error.textContent = ''; result.textContent = '';
    const built = buildChanges(selected, form());
    if (built.problem) { error.textContent = built.problem; return; }
    const { body } = await answerOf(await postJson('/api/machines/validate', { changes: built.changes }));
    if (!body.results) { error.textContent = body.error || 'the server could not check the change'; return; }
    preview.replaceChildren(previewOf(body.results));
    if (body.ok) { checked = built.changes; save.disabled = false; } else error.textContent = body.error;
  });
  save.addEventListener('click', async () => {
    if (!checked) return;
    save.disabled = true;
    const { status, body } = await answerOf(await postJson('/api/machines/bulk', { changes: checked }));
    if (status === 200) { result.textContent = `Saved: ${body.saved} machine${body.saved === 1 ? '' : 's'}.`; checked = null; done(); }
    else { error.textContent = body.error || `the server answered ${status}`; if (body.results) preview.replaceChildren(previewOf(body.results)); }
  });
  cancel.addEventListener('click', () => panel.replaceChildren());

  panel.replaceChildren(h('section', { class: 'panel', id: 'bulk' },
    h('h2', { text: `Change ${selected.length} machine${selected.length === 1 ? '' : 's'}` }),
    h('p', { class: 'summary', text: selected.slice(0, 8).map((m) => m.name || m.mac).join(', ') + (selected.length > 8 ? `, and ${selected.length - 8} more` : '') }),
    h('div', { class: 'fields' }, field('Action', action), field('Runs', persistence), field('Re-arm (run a one-shot action again)', rearm)),
    deployOnly, captureOnly, wipeOnly, target,
    h('div', { class: 'actions' }, check, save, cancel), error, result, preview));
  showFor();
}

export function openRegisterPanel(panel, { done }) {
  const text = h('textarea', { id: 'register-macs', rows: 4, placeholder: '52:54:00:aa:bb:01 rack1-u1\n52:54:00:aa:bb:02 rack1-u2' });
  const go = h('button', { type: 'button', id: 'register-save', class: 'primary', text: 'Register' });
  const cancel = h('button', { type: 'button', class: 'link', text: 'close' });
  const error = h('p', { id: 'register-error', class: 'error', role: 'alert' });
  const result = h('p', { id: 'register-result', class: 'ok' });
  go.addEventListener('click', async () => {
    error.textContent = ''; result.textContent = '';
    const changes = parseRegistrations(text.value);
    if (changes.length === 0) { error.textContent = 'write one MAC per line, optionally followed by a name'; return; }
    const { status, body } = await answerOf(await postJson('/api/machines/bulk', { create: true, changes }));
    if (status === 200) { result.textContent = `Registered ${body.saved} machine${body.saved === 1 ? '' : 's'}. Select them to give them an action.`; text.value = ''; done(); }
    else error.textContent = body.error || `the server answered ${status}`;
  });
  cancel.addEventListener('click', () => panel.replaceChildren());
  panel.replaceChildren(h('section', { class: 'panel', id: 'register' },
    h('h2', { text: 'Register machines' }),
    h('p', { class: 'summary', text: 'One MAC per line, optionally followed by a name (rack-slot, e.g. rack1-u7: the part before "-" is its rack). They boot with no action of their own until you give them one.' }),
    text, h('div', { class: 'actions' }, go, cancel), error, result));
  text.focus();
}
