// The operator API as the dashboard calls it: a 401 becomes LoginNeeded (the login form comes back).

export class LoginNeeded extends Error {}

export async function getOk(url) {
  const r = await fetch(url, { cache: 'no-store' });
  if (r.status === 401) throw new LoginNeeded((await r.json().catch(() => ({}))).error || 'log in');
  if (!r.ok) throw new Error(`${url}: ${r.status} ${(await r.text()).slice(0, 200)}`);
  return r;
}

export async function getJson(url) { return (await getOk(url)).json(); }

export async function postJson(url, body) {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body ?? {}) });
}
