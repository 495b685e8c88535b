// #/images : the image catalog (size, format, sha256, gzip index state, which machines use
// each, delete: the server refuses an image an action names and says whose), and uploading an
// image from the browser with progress, resumable (image-upload.js).

import { getJson, LoginNeeded } from './api.js';
import { bytes, duration, h, main, setNav } from './dom.js';
import { abandonUpload, uploadImage } from './image-upload.js';

let uploading = null; // {file, name, controller} while an upload runs: it outlives a page change

function usedBy(i) {
  const users = i.usedBy || [];
  if (users.length === 0) return h('td', { class: 'summary', text: 'nothing' });
  return h('td', {}, users.slice(0, 10).flatMap((u, k) => [k ? ', ' : '', u === 'default.json' ? 'default.json' : h('a', { href: `#/m/${u}`, text: u })]),
    users.length > 10 ? ` and ${users.length - 10} more` : '');
}

function deleteButton(i, error) {
  const b = h('button', { type: 'button', class: 'link danger', 'data-delete': i.name, text: 'delete' });
  b.addEventListener('click', async () => {
    // two clicks, no dialog: a confirm() would stop the live page
    if (b.dataset.armed !== '1') { b.dataset.armed = '1'; b.textContent = 'really delete?'; setTimeout(() => { b.dataset.armed = ''; b.textContent = 'delete'; }, 5000); return; }
    error.textContent = '';
    const r = await fetch(`/api/images/${encodeURIComponent(i.name)}`, { method: 'DELETE' });
    if (r.status === 401) throw new LoginNeeded('log in');
    if (!r.ok) error.textContent = `${i.name}: ${(await r.json().catch(() => ({}))).error || `the server answered ${r.status}`}`;
    // the catalog redraws on the "images" event
  });
  return b;
}

function catalogTable(images, error) {
  if (images.length === 0) return h('div', { class: 'empty', text: 'No images yet. Upload one above, with "booty images put", or capture a machine.' });
  return h('div', { class: 'table-wrap' }, h('table', { id: 'images' },
    h('thead', {}, h('tr', {}, ['Name', 'Size', 'Format', 'Uncompressed', 'sha256', 'gzip index', 'From', 'Stored', 'Used by', ''].map((t) => h('th', { text: t })))),
    h('tbody', {}, images.map((i) => h('tr', { 'data-image': i.name },
      h('td', {}, h('a', { href: `/images/${encodeURIComponent(i.name)}`, text: i.name })),
      h('td', { class: 'num', text: bytes(i.size) }),
      h('td', { text: i.format || '' }),
      h('td', { class: 'num', text: i.uncompressedSize === undefined ? '' : bytes(i.uncompressedSize) }),
      h('td', { class: 'hash', title: i.sha256 || 'not hashed yet', 'data-sha256': i.sha256 || '', text: i.sha256 ? `${i.sha256.slice(0, 12)}…` : 'hashing…' }),
      h('td', { text: i.format === 'gzip' ? (i.gzipIndex || 'not indexed') : '' }),
      h('td', {}, i.machine ? h('a', { href: `#/m/${i.machine}`, text: `capture of ${i.machine}` }) : (i.via === 'import' ? 'placed by hand' : i.via || '')),
      h('td', { text: i.storedAt ? new Date(i.storedAt).toLocaleString() : new Date(i.mtime).toLocaleString() }),
      usedBy(i),
      h('td', {}, deleteButton(i, error)))))));
}

function uploadForm() {
  const file = h('input', { type: 'file', id: 'upload-file' });
  const name = h('input', { id: 'upload-name', placeholder: 'image name (default: the file\'s)', size: 32 });
  const overwrite = h('input', { type: 'checkbox', id: 'upload-overwrite' });
  const go = h('button', { type: 'button', id: 'upload-start', class: 'primary', text: 'Upload' });
  const stop = h('button', { type: 'button', id: 'upload-stop', class: 'link', text: 'stop', hidden: 'hidden' });
  const forget = h('button', { type: 'button', id: 'upload-forget', class: 'link', text: 'discard the partial upload', hidden: 'hidden' });
  const bar = h('div', { class: 'bar', id: 'upload-bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': 0 }, h('span'));
  const figures = h('div', { class: 'figures', id: 'upload-figures' });
  const error = h('p', { class: 'error', id: 'upload-error', role: 'alert' });
  const result = h('p', { class: 'ok', id: 'upload-result' });
  const progress = h('div', { class: 'progress', hidden: 'hidden' }, bar, figures);
  file.addEventListener('change', () => { if (file.files[0] && !name.value) name.placeholder = file.files[0].name; });

  const show = (p, started) => {
    const pct = p.total ? (p.sent / p.total) * 100 : 100;
    bar.firstChild.style.width = `${pct.toFixed(1)}%`;
    bar.setAttribute('aria-valuenow', String(Math.floor(pct)));
    const secs = (performance.now() - started) / 1000;
    const mbs = secs > 0 ? p.sent / secs / 1e6 : 0;
    figures.textContent = [`${Math.floor(pct)}%`, `${bytes(p.sent)} of ${bytes(p.total)}`, `part ${p.part} of ${p.parts}`,
      p.resumed ? `${p.resumed} part${p.resumed === 1 ? '' : 's'} already on the server` : null,
      p.phase === 'sending' ? `${mbs.toFixed(1)} MB/s` : p.phase, p.phase === 'sending' && mbs > 0 && p.total > p.sent ? `ETA ${duration((p.total - p.sent) / 1e6 / mbs)}` : null]
      .filter(Boolean).join(' · ');
  };

  go.addEventListener('click', async () => {
    const f = file.files[0];
    error.textContent = ''; result.textContent = '';
    if (!f) { error.textContent = 'choose a file first'; return; }
    if (uploading) { error.textContent = `an upload of ${uploading.name} is running; stop it first`; return; }
    const imageName = name.value.trim() || f.name;
    const controller = new AbortController();
    uploading = { file: f, name: imageName, controller };
    go.disabled = true; stop.hidden = false; forget.hidden = true; progress.hidden = false;
    const started = performance.now();
    try {
      const stored = await uploadImage(f, imageName, { overwrite: overwrite.checked, signal: controller.signal, onProgress: (p) => show(p, started) });
      result.textContent = `Stored ${stored.name}: ${bytes(stored.size)}, ${stored.format}, sha256 ${stored.sha256}${stored.resumed ? ` (resumed: ${stored.resumed} part${stored.resumed === 1 ? ' was' : 's were'} already on the server)` : ''}.`;
      result.dataset.sha256 = stored.sha256;
    } catch (e) {
      if (e instanceof LoginNeeded) throw e;
      error.textContent = e.stopped ? 'Stopped. Choose the same file and press Upload to go on where it stopped.' : `The upload failed: ${e.message}. Press Upload again to go on where it stopped.`;
      forget.hidden = false;
    } finally {
      uploading = null; go.disabled = false; stop.hidden = true;
    }
  });
  stop.addEventListener('click', () => uploading?.controller.abort());
  forget.addEventListener('click', async () => {
    const f = file.files[0];
    if (f) await abandonUpload(f, name.value.trim() || f.name);
    forget.hidden = true; error.textContent = 'The partial upload was discarded.';
  });

  return h('section', { class: 'panel', id: 'upload' },
    h('h2', { text: 'Upload an image' }),
    h('div', { class: 'fields' },
      h('label', { class: 'field' }, h('span', { text: 'File' }), file),
      h('label', { class: 'field' }, h('span', { text: 'Name' }), name),
      h('label', { class: 'field' }, h('span', { text: 'Replace an image of that name' }), overwrite)),
    h('div', { class: 'actions' }, go, stop, forget), progress, error, result);
}

let form = null; // kept across catalog redraws, so a running upload's progress stays on screen

async function renderImages() {
  setNav('images');
  const { images } = await getJson('/api/images');
  if (!form || !uploading) form = uploadForm();
  const error = h('p', { class: 'error', id: 'images-error', role: 'alert' });
  main.replaceChildren(h('h1', { text: 'Images' }), form, h('h2', { text: 'Catalog' }), error, catalogTable(images, error));
}

async function redrawCatalog() {
  const table = document.getElementById('images') ?? document.querySelector('main .empty');
  const error = document.getElementById('images-error');
  if (!table || !error) return renderImages();
  const { images } = await getJson('/api/images');
  (table.closest('.table-wrap') ?? table).replaceWith(catalogTable(images, error));
}

export const imagesPage = {
  match: (hash) => (hash === '#/images' ? {} : null),
  render: renderImages,
  onImages: () => redrawCatalog().catch(() => {}),
  onReconnect: () => redrawCatalog().catch(() => {}),
};
