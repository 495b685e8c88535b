// A machine's settings, editable in place: name, action kind, image (or upload) URL and sha256,
// disk, persistent or one-shot, re-arm. Every edit is checked by the server itself
// (PUT /api/machines/<mac>?dryRun=1, the same rules as the change): the answer, the exact JSON
// action an agent would be served, is shown before "Save" is possible, and a refusal is shown as
// the server's sentence. "Save" sends what was checked to PUT /api/machines/<mac>, the request
// `booty machines set` makes. The action is sent only when it changed: sending it re-arms a
// one-shot action, which a new name must not do.

import { h } from './dom.js';

const KINDS = ['deploy', 'capture', 'wipe', 'inspect', 'shell', 'none'];
const CHECK_DELAY_MS = 250;

/** JSON with sorted keys: two actions are the same when these are equal. */
export function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).filter((k) => v[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

/**
 * The action the form describes, built on the configured one (its other fields stay) when the
 * kind is the same; null: no action of its own.
 */
export function actionFromForm(f, configured) {
  if (f.kind === '') return null;
  const a = configured && configured.action === f.kind ? { ...configured } : { action: f.kind };
  if (f.kind === 'deploy') {
    a.image = f.url;
    if (f.sha256 !== '') a.sha256 = f.sha256.toLowerCase(); else delete a.sha256;
  }
  if (f.kind === 'capture') a.upload = f.url;
  if (['deploy', 'capture', 'wipe', 'deploy-rootfs'].includes(f.kind)) {
    // a disk replaces the hints; an empty disk keeps the hints (or the agent's first disk)
    if (f.disk !== '') { a.disk = f.disk; delete a.diskHints; } else delete a.disk;
  }
  return a;
}

/**
 * The editor for machine `detail` (GET /api/machines/<mac>); `saved()` runs after a change was
 * stored. Returns the element.
 */
export function settingsEditor(detail, { saved }) {
  const configured = detail.configuredAction;
  const hasOwn = configured !== undefined;
  const kind = hasOwn ? configured.action : '';
  const kinds = [...new Set([...KINDS, ...(hasOwn ? [kind] : [])])];
  const field = (label, input, hint) => h('label', { class: 'field' }, h('span', { class: 'label', text: label }), input, hint ? h('span', { class: 'hint', text: hint }) : null);

  const name = h('input', { id: 'set-name', type: 'text', maxlength: 100, value: detail.name ?? '', placeholder: 'none (e.g. rack1-u7)' });
  const kindSelect = h('select', { id: 'set-kind' },
    h('option', { value: '', text: detail.actionSource && detail.actionSource !== 'machine' ? `none of its own (gets ${detail.actionSource === 'default' ? 'default.json' : 'the server default'})` : 'none of its own' }),
    kinds.map((k) => h('option', { value: k, text: k })));
  kindSelect.value = kind;
  const url = h('input', { id: 'set-url', type: 'url', value: configured?.image ?? configured?.upload ?? '', placeholder: 'http://server:3000/images/ubuntu.img.zst' });
  const sha = h('input', { id: 'set-sha256', type: 'text', value: configured?.sha256 ?? '', placeholder: '64 hex digits (optional)', spellcheck: 'false' });
  const disk = h('input', { id: 'set-disk', type: 'text', value: configured?.disk ?? '', placeholder: configured?.diskHints ? 'as the disk hints say' : 'the first disk' });
  const runs = h('select', { id: 'set-runs' }, h('option', { value: 'one-shot', text: 'once, then boot from disk (one-shot)' }), h('option', { value: 'persistent', text: 'at every boot (persistent)' }));
  runs.value = detail.persistent ? 'persistent' : 'one-shot';
  const rearm = h('input', { id: 'set-rearm', type: 'checkbox' });
  const urlField = field('Image URL', url);
  const shaField = field('Image sha256', sha);
  const diskField = field('Disk', disk, configured?.diskHints ? 'empty: the disk hints choose' : 'empty: the agent picks the first disk');

  const preview = h('pre', { class: 'json', id: 'settings-json' });
  const summary = h('p', { class: 'muted', id: 'settings-summary' });
  const error = h('p', { class: 'error', id: 'settings-error', role: 'alert' });
  const status = h('span', { class: 'muted', id: 'settings-status' });
  const save = h('button', { type: 'submit', id: 'settings-save', disabled: 'disabled', text: 'Save' });

  let checked = null; // {key, body} the server accepted in a dry run
  let timer = null;
  let asked = 0;

  const formValues = () => ({ kind: kindSelect.value, url: url.value.trim(), sha256: sha.value.trim(), disk: disk.value.trim() });
  function body() {
    const action = actionFromForm(formValues(), configured);
    const changed = hasOwn ? action === null || canonical(action) !== canonical(configured) : action !== null;
    const b = { name: name.value.trim() === '' ? null : name.value.trim(), persistent: runs.value === 'persistent' };
    if (changed) b.action = action;
    if (rearm.checked) b.rearm = true;
    return { body: b, shown: action, changed };
  }
  function showFields() {
    const k = kindSelect.value;
    urlField.hidden = !(k === 'deploy' || k === 'capture');
    urlField.querySelector('.label').textContent = k === 'capture' ? 'Upload to (URL)' : 'Image URL';
    shaField.hidden = k !== 'deploy';
    diskField.hidden = !['deploy', 'capture', 'wipe', 'deploy-rootfs'].includes(k);
  }

  async function check() {
    const { body: b, shown, changed } = body();
    const key = canonical(b);
    const mine = ++asked;
    save.disabled = true;
    status.textContent = 'checking…';
    // the dry run gets the action even when unchanged, to show what is served
    const r = await fetch(`/api/machines/${detail.mac}?dryRun=1`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...b, ...(shown === null || changed ? {} : { action: shown }) }) }).catch((e) => ({ ok: false, status: 0, json: async () => ({ error: e.message }) }));
    const answer = await r.json().catch(() => ({}));
    if (mine !== asked) return; // a newer edit was sent meanwhile
    if (!r.ok || answer.ok !== true) {
      checked = null;
      error.textContent = `The server refuses this change: ${answer.error || `answer ${r.status}`}`;
      preview.textContent = '';
      summary.textContent = '';
      status.textContent = '';
      return;
    }
    error.textContent = '';
    checked = { key, body: b };
    preview.textContent = answer.action === undefined || answer.action === null ? '(no action of its own)' : JSON.stringify(answer.action, null, 2);
    const what = [changed ? 'the action changes (a one-shot action runs again)' : 'the action is unchanged',
      b.rearm ? 're-armed: it runs once more' : null, `name ${b.name === null ? 'none' : `"${b.name}"`}`, b.persistent ? 'persistent' : 'one-shot'].filter(Boolean);
    summary.textContent = `${answer.summary ? `Served at its next boot: ${answer.summary}. ` : ''}${what.join('; ')}.`;
    status.textContent = 'checked by the server';
    save.disabled = false;
  }
  function edited() {
    showFields();
    checked = null;
    save.disabled = true;
    status.textContent = '';
    clearTimeout(timer);
    timer = setTimeout(() => { check().catch(() => {}); }, CHECK_DELAY_MS);
  }

  const form = h('form', { class: 'settings-form', id: 'settings-form' },
    h('div', { class: 'fields' },
      field('Name', name), field('Action', kindSelect), urlField, shaField, diskField, field('Runs', runs),
      h('label', { class: 'field check' }, rearm, h('span', { text: 'Re-arm: run the one-shot action once more' }))),
    h('div', { class: 'preview' }, h('div', { class: 'label', text: 'JSON action served (checked by the server before saving)' }), preview, summary, error,
      h('div', { class: 'actions' }, save, status)));
  for (const el of [name, kindSelect, url, sha, disk, runs, rearm]) el.addEventListener(el.tagName === 'SELECT' || el.type === 'checkbox' ? 'change' : 'input', edited);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (checked === null || checked.key !== canonical(body().body)) { edited(); return; }
    save.disabled = true;
    status.textContent = 'saving…';
    const r = await fetch(`/api/machines/${detail.mac}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(checked.body) });
    const answer = await r.json().catch(() => ({}));
    if (!r.ok) {
      error.textContent = `The server refused the change: ${answer.error || `answer ${r.status}`}`;
      status.textContent = '';
      return;
    }
    status.textContent = 'saved';
    saved(answer);
  });
  showFields();
  check().catch(() => {});
  return form;
}
