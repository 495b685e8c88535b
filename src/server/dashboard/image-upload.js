// Uploading an image from the browser with booty's resumable protocol (README "Server API",
// src/server/routes/uploads.ts): POST /api/uploads starts a session, the File is sliced into
// the session's parts, each PUT /api/uploads/<id>/parts/<n> with its own sha256 (a part that
// fails is sent again, up to RETRIES times), and POST /api/uploads/<id>/commit hands over the
// whole size and sha256, which the server compares before the image appears. The session id is
// kept in localStorage under the file's name, size and date: choosing the same file again after
// a lost connection or a closed tab asks the server which parts it has and sends only the rest.
// The whole file's sha256 is computed here as the parts go (sha256.js: crypto.subtle cannot
// stream); each part's sha256 uses crypto.subtle where the page is a secure context.

import { LoginNeeded } from './api.js';
import { Sha256, sha256Hex } from './sha256.js';

const RETRIES = 5;

function storageKey(name, file) { return `booty-upload:${name}:${file.size}:${file.lastModified}`; }

async function jsonCall(method, url, body) {
  const r = await fetch(url, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401) throw new LoginNeeded('log in');
  const j = await r.json().catch(() => ({}));
  return { status: r.status, body: j };
}

/** PUT one part with XMLHttpRequest (fetch has no upload progress). */
function putPart(id, n, buf, sha, onBytes, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', `/api/uploads/${id}/parts/${n}`);
    xhr.setRequestHeader('X-Booty-Sha256', sha);
    xhr.upload.onprogress = (e) => onBytes(e.loaded);
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status === 200) resolve(body);
      else { const e = new Error(body.error || `part ${n}: the server answered ${xhr.status}`); e.status = xhr.status; reject(e); }
    };
    xhr.onerror = () => reject(new Error(`part ${n}: the connection failed`));
    xhr.onabort = () => reject(Object.assign(new Error('upload stopped'), { stopped: true }));
    signal.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(buf);
  });
}

/**
 * Upload `file` as image `name`. onProgress({phase, sent, total, part, parts, resumed}).
 * Resolves with the stored image's metadata; rejects with the server's sentence.
 */
export async function uploadImage(file, name, { overwrite = false, onProgress = () => {}, signal }) {
  const key = storageKey(name, file);
  let id = localStorage.getItem(key);
  let partSize;
  let have = new Map(); // part number -> sha256 the server holds
  if (id) {
    const s = await jsonCall('GET', `/api/uploads/${id}`);
    if (s.status === 200 && s.body.name === name) { partSize = s.body.partSize; have = new Map(s.body.parts.map((p) => [p.n, p])); }
    else { localStorage.removeItem(key); id = null; }
  }
  if (!id) {
    const s = await jsonCall('POST', '/api/uploads', { name, size: file.size, overwrite });
    if (s.status !== 201) throw new Error(s.body.error || `the server answered ${s.status}`);
    id = s.body.id; partSize = s.body.partSize;
    localStorage.setItem(key, id);
  }
  const parts = Math.ceil(file.size / partSize);
  const whole = new Sha256();
  let done = 0;
  let resumed = 0;
  for (let n = 0; n < parts; n++) {
    if (signal.aborted) throw Object.assign(new Error('upload stopped'), { stopped: true });
    const buf = await file.slice(n * partSize, Math.min(file.size, (n + 1) * partSize)).arrayBuffer();
    whole.update(buf);
    const sha = await sha256Hex(buf);
    const held = have.get(n);
    if (held && held.size === buf.byteLength && held.sha256 === sha) {
      done += buf.byteLength; resumed++;
      onProgress({ phase: 'sending', sent: done, total: file.size, part: n + 1, parts, resumed });
      continue;
    }
    for (let attempt = 1; ; attempt++) {
      try {
        await putPart(id, n, buf, sha, (loaded) => onProgress({ phase: 'sending', sent: done + loaded, total: file.size, part: n + 1, parts, resumed }), signal);
        break;
      } catch (e) {
        // a refusal (4xx) will not change by sending again; a lost connection or a 5xx may
        if (e.stopped || (e.status >= 400 && e.status < 500) || attempt >= RETRIES) throw e;
        onProgress({ phase: `part ${n + 1} failed (${e.message}); sending it again`, sent: done, total: file.size, part: n + 1, parts, resumed });
        await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
      }
    }
    done += buf.byteLength;
  }
  const sha256 = whole.hex();
  onProgress({ phase: 'committing', sent: done, total: file.size, part: parts, parts, resumed });
  const c = await jsonCall('POST', `/api/uploads/${id}/commit`, { size: file.size, sha256, parts });
  if (c.status !== 200) throw new Error(c.body.error || `the server answered ${c.status}`);
  localStorage.removeItem(key);
  return { ...c.body, resumed };
}

/** Stop and forget the upload of `file` as `name` (its parts on the server go too). */
export async function abandonUpload(file, name) {
  const key = storageKey(name, file);
  const id = localStorage.getItem(key);
  localStorage.removeItem(key);
  if (id) await jsonCall('DELETE', `/api/uploads/${id}`).catch(() => {});
}
