// What a machine's phase and state mean in words, shared by the machines list and a machine's page.

export const ACTIVE = new Set(['booting', 'modules', 'network', 'dhcp', 'fetching-action', 'preflight', 'writing', 'verifying', 'growing', 'configuring', 'capturing', 'uploading', 'rebooting', 'powering-off']);

export const WORDS = {
  booting: 'booting', modules: 'loading drivers', network: 'bringing up the network', dhcp: 'getting an address (DHCP)',
  'fetching-action': 'asking for its action', preflight: 'checking the disk', writing: 'writing the image', verifying: 'verifying',
  growing: 'growing the disk', configuring: 'configuring the system', capturing: 'reading the disk', uploading: 'uploading',
  rebooting: 'rebooting', 'powering-off': 'powering off', shell: 'waiting in a shell', done: 'done', failed: 'failed',
  inspecting: 'inspected: waiting for an operator',
};

// an active machine silent this long is probably hung or off the network
const STALE_MS = 5 * 60 * 1000;

export function stateClass(m) {
  // rebooting/powering off after a result: the result is what matters
  if (m.result && (m.phase === 'rebooting' || m.phase === 'powering-off')) return m.result.ok ? 'state-done' : 'state-failed';
  return m.phase === 'failed' ? 'state-failed' : m.phase === 'done' ? 'state-done' : ACTIVE.has(m.phase) ? 'state-active' : 'state-idle';
}

/** The plain-words problems of a machine: [class, sentence] pairs. */
export function problems(m, ago) {
  const out = [];
  if (m.actionError) out.push(['error', `Its action cannot be served: ${m.actionError}`]);
  if (m.result && !m.result.ok) out.push(['error', m.result.message || `The ${m.result.action} failed (${m.result.code || 'no reason given'}).`]);
  // a trial boot (bootOrder "trial"): failed is an error, pending a note; confirmed needs no words here
  if (m.trial && (m.trial.state === 'failed' || m.trial.state === 'handled')) out.push(['error', m.trial.message]);
  if (m.trial && m.trial.state === 'pending') out.push(['warning', m.trial.message]);
  if (ACTIVE.has(m.phase) && m.lastSeen && Date.now() - Date.parse(m.lastSeen) > STALE_MS) out.push(['warning', `No report since ${ago(m.lastSeen)}: the machine may have hung or lost its network.`]);
  return out;
}
