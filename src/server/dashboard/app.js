// booty dashboard: hand-written ES modules, no framework, no build step. Pages by URL hash:
//   #/            every machine as a table, bulk changes (machines-page.js); #/?phase=&q=&rack=&image= filtered
//   #/cards       every machine as a card (machines-page.js)
//   #/fleet       counts per phase, deploys in progress, MB/s, failures of the last day (fleet-page.js)
//   #/m/<mac>     one machine: settings edited in place, run history, charts of a run, live log (machine-page.js)
//   #/images      the image catalog (images-page.js)
// A page is an object: match(hash) -> params or null; render(params) -> Promise; optional
// leave(), and live handlers onMachine(m), onRemoved(mac), onLog(mac, lines), onImages(),
// onReconnect(), onTick() (every 30 s, for "seen 2 min ago"). Only the page on screen gets them.
// Live: Server-Sent Events (live.js). Login: everything shown needs an operator (login.js); a 401
// later (the login expired, the token was revoked) brings the form back.

import { LoginNeeded } from './api.js';
import { h, main } from './dom.js';
import { loadMachines, machines } from './fleet-state.js';
import { imagesPage } from './images-page.js';
import { connect, disconnect, isLive } from './live.js';
import { showLogin, showOperator } from './login.js';
import { machinePage } from './machine-page.js';
import { fleetPage } from './fleet-page.js';
import { machineCardsPage, machinesPage } from './machines-page.js';

const PAGES = [machinesPage, machineCardsPage, fleetPage, machinePage, imagesPage];
let current = null; // the page on screen

function login(problem) {
  showLogin(problem, { loggedIn: start, beforeShow: () => { disconnect(); if (current?.leave) current.leave(); current = null; } });
}

function failed(e) {
  if (e instanceof LoginNeeded) login(e.message);
  else main.replaceChildren(h('p', { class: 'error', text: `Could not load this page: ${e.message}` }));
}

function route() {
  const hash = location.hash || '#/';
  if (current?.leave) current.leave();
  current = null;
  for (const page of PAGES) {
    const params = page.match(hash);
    if (params === null) continue;
    current = page;
    page.render(params).catch(failed);
    return;
  }
  main.replaceChildren(h('p', { class: 'error', text: `No such page: ${hash}` }), h('a', { href: '#/', text: 'all machines' }));
}

function dispatch(handler, ...args) {
  const page = current;
  if (page && page[handler]) page[handler](...args);
}

async function start() {
  const session = await (await fetch('/api/session', { cache: 'no-store' })).json();
  if (!session.operator) { login(session.problem); return; }
  showOperator(session.operator, () => { machines.clear(); login('Logged out.'); });
  try { await loadMachines(); } catch (e) { failed(e); return; }
  route();
  connect({
    // after a reconnect, what was missed is reloaded
    onOpen: () => loadMachines().then(() => dispatch('onReconnect')).catch(() => {}),
    onLoginLost: login,
    machine: (m) => { machines.set(m.mac, m); dispatch('onMachine', m); },
    removed: ({ mac }) => { machines.delete(mac); dispatch('onRemoved', mac); },
    log: ({ mac, lines }) => dispatch('onLog', mac, lines),
    images: () => dispatch('onImages'),
  });
}

window.addEventListener('hashchange', () => { if (isLive()) route(); });
start().catch(failed);
setInterval(() => { if (isLive()) dispatch('onTick'); }, 30_000);
