// The live stream (Server-Sent Events, /api/events/stream): each event goes to the handlers given.
// Nothing polls: what is missed while disconnected is reloaded on reconnect (onReconnect).

const live = document.getElementById('live');
let stream = null;

export function isLive() { return stream !== null; }

export function disconnect() {
  if (stream) { stream.close(); stream = null; }
  live.textContent = ''; live.className = 'live';
}

/**
 * handlers: onOpen(), onLoginLost(problem), and one per event: machine(m), removed({mac}),
 * log({mac, lines}), images(). Unknown events are ignored.
 */
export function connect(handlers) {
  if (stream) stream.close();
  const es = new EventSource('/api/events/stream');
  stream = es;
  es.onopen = () => { live.textContent = 'live'; live.className = 'live on'; handlers.onOpen(); };
  es.onerror = () => {
    live.textContent = 'reconnecting…'; live.className = 'live off';
    // EventSource does not say why: a login that expired meanwhile shows the form
    fetch('/api/session', { cache: 'no-store' }).then((r) => r.json()).then((s) => { if (!s.operator && stream === es) handlers.onLoginLost(s.problem); }).catch(() => {});
  };
  for (const name of ['machine', 'removed', 'log', 'images']) {
    es.addEventListener(name, (ev) => handlers[name](ev.data === undefined || ev.data === '' ? undefined : JSON.parse(ev.data)));
  }
}
