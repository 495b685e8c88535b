// The agent's work ahead of the action (src/agent/warm-up.ts): undici's first request is made
// while DHCP is answered, unless the action's own GET starts first, which makes that first request
// itself (a second one would only compete with it for the main thread).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { warmUp } from '../../src/agent/warm-up.ts';
import type { Logger } from '../../src/util/log.ts';

function recordingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log: Logger = { debug: (m) => lines.push(m), info: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m), addSink: () => () => {} };
  return { log, lines };
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !ok(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(ok(), `timed out waiting for ${what}`);
}

test('warm-up: undici is warmed by a request of its own while the agent waits for DHCP', async () => {
  const { log, lines } = recordingLog();
  warmUp(undefined, log);
  await until('the warm-up request', () => lines.some((l) => /^http: warmed up undici/.test(l)));
});

test('warm-up: no request of its own once the action fetch started (it warms undici itself)', async () => {
  const { log, lines } = recordingLog();
  const w = warmUp(undefined, log);
  // the lease came at once: the fetch starts before the warm-up's steps reached the request
  w.fetching();
  for (let i = 0; i < 10; i++) await turn();
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(lines.filter((l) => /^http: /.test(l)), [], 'no warm-up request made');
});
