// The bulk form's values turned into one change per selected machine, as POST /api/machines/bulk
// takes them. No DOM here (test/unit/dashboard-bulk-change.test.ts runs it in Node). The server
// checks every change by the API's rules; this only fills in patterns and refuses what it
// cannot even build (disk hints that are not JSON).

/**
 * "web{n}" -> web1, web2 ... in the selection's order (from `start`); "{n:3}" pads to 3 digits;
 * "{mac}" and "{name}" are the machine's.
 */
export function fillPattern(pattern, index, m, start = 1) {
  return pattern.replace(/\{(n(?::(\d))?|mac|name)\}/g, (_, key, width) => {
    if (key === 'mac') return m.mac;
    if (key === 'name') return m.name || m.mac;
    return String(start + index).padStart(Number(width || 0), '0');
  });
}

/**
 * form: { action: 'keep'|'deploy'|'capture'|'wipe'|'none', image, sha256, disk, diskHints (JSON
 * text), hostname (pattern), start, captureInto (pattern), origin (for capture upload URLs),
 * wipeMethod, persistence: 'keep'|'one-shot'|'persistent', rearm }
 * Returns { changes } or { problem } (a sentence).
 */
export function buildChanges(selected, form) {
  let hints;
  if (form.diskHints && form.diskHints.trim() !== '') {
    try { hints = JSON.parse(form.diskHints); } catch (e) { return { problem: `the disk hints are not JSON (${e.message}); write e.g. {"transport": "nvme"}` }; }
  }
  const start = Number.isSafeInteger(Number(form.start)) && form.start !== '' ? Number(form.start) : 1;
  const target = {};
  if (form.disk && form.disk.trim() !== '') target.disk = form.disk.trim();
  if (hints !== undefined) target.diskHints = hints;
  const changes = selected.map((m, i) => {
    const c = { mac: m.mac };
    if (form.action === 'deploy') {
      c.action = { action: 'deploy', image: (form.image || '').trim(), ...target };
      if (form.sha256 && form.sha256.trim() !== '') c.action.sha256 = form.sha256.trim();
      if (form.hostname && form.hostname.trim() !== '') c.action.post = { hostname: fillPattern(form.hostname.trim(), i, m, start) };
    } else if (form.action === 'capture') {
      const name = fillPattern((form.captureInto || '{mac}.img').trim(), i, m, start);
      c.action = { action: 'capture', upload: `${form.origin}/images/${encodeURIComponent(name)}`, ...target };
    } else if (form.action === 'wipe') {
      c.action = { action: 'wipe', method: form.wipeMethod || 'quick', ...target };
    } else if (form.action === 'none') {
      c.action = { action: 'none' };
    }
    if (form.persistence === 'persistent') c.persistent = true;
    else if (form.persistence === 'one-shot') c.persistent = false;
    if (form.rearm) c.rearm = true;
    return c;
  });
  if (changes.every((c) => Object.keys(c).length === 1)) return { problem: 'nothing to change: choose an action, one-shot or persistent, or re-arm' };
  return { changes };
}

/** "52:54:00:aa:bb:01 rack1-u1" lines -> registrations {mac, name?}; blank lines and # comments skipped. */
export function parseRegistrations(text) {
  const out = [];
  for (const line of text.split('\n')) {
    const t = line.replace(/#.*/, '').trim();
    if (t === '') continue;
    const [mac, ...rest] = t.split(/[\s,;]+/);
    const name = rest.join(' ').trim();
    out.push(name === '' ? { mac } : { mac, name });
  }
  return out;
}
