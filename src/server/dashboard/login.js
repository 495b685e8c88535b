// The login form (an operator token becomes an HttpOnly session cookie) and the operator's name
// with "log out" in the header.

import { postJson } from './api.js';
import { h, main } from './dom.js';

const who = document.getElementById('who');

/** Show the form; `loggedIn` runs after a successful login, `beforeShow` stops what needs a login. */
export function showLogin(problem, { loggedIn, beforeShow }) {
  beforeShow();
  who.replaceChildren();
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'current-password', placeholder: 'operator token', required: 'required' });
  const error = h('p', { class: 'error', id: 'login-error', text: problem || '' });
  const form = h('form', { id: 'login', class: 'login' },
    h('h1', { text: 'Log in' }),
    h('p', { text: 'The dashboard shows machines, logs and images to operators. Paste an operator token (make one on the server: booty tokens add NAME --data DIR).' }),
    input, h('button', { type: 'submit', text: 'Log in' }), error);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await postJson('/api/login', { token: input.value });
    if (r.ok) { input.value = ''; loggedIn(); return; }
    error.textContent = (await r.json().catch(() => ({}))).error || `login failed (${r.status})`;
  });
  main.replaceChildren(form);
  input.focus();
}

/** The operator's name in the header, with "log out" unless the login is implicit (loopback). */
export function showOperator(name, loggedOut) {
  who.replaceChildren(h('span', { text: name }), ' ');
  if (name !== 'loopback' && name !== 'insecure-open') {
    const out = h('button', { id: 'logout', class: 'link', type: 'button', text: 'log out' });
    out.addEventListener('click', async () => { await postJson('/api/logout'); loggedOut(); });
    who.append(out);
  }
}
