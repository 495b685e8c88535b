// warmHttp(): the agent's request to itself (src/agent/http-warm-up.ts) completes over a real
// undici Agent and a real unix socket, leaves nothing listening, and turns a failure into a
// result (never an exception: it runs unattended during the DHCP wait in PID 1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { warmHttp } from '../../src/agent/http-warm-up.ts';
import { createLogger } from '../../src/util/log.ts';

function logger() {
  const lines: string[] = [];
  return { lines, log: createLogger({ level: 'debug', sinks: [(_l, m) => { lines.push(m); }] }) };
}

const pipes = () => process.getActiveResourcesInfo().filter((n) => /Pipe/.test(n)).length;

test('one request to itself: ok, logged, and no socket left open afterwards', async () => {
  const { lines, log } = logger();
  const before = pipes();
  const r = await warmHttp(log);
  // closed handles leave the list on a later turn of the event loop
  for (let i = 0; i < 100 && pipes() > before; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(pipes(), before, process.getActiveResourcesInfo().join(', '));
  assert.equal(r.ok, true, r.error ?? "");
  assert.ok(r.ms >= 0);
  assert.ok(lines.some((l) => /^http: warmed up undici \(one request to this process\) in \d+ ms$/.test(l)), lines.join('\n'));
  // twice in a row works too (a fresh socket name each time)
  assert.equal((await warmHttp(log)).ok, true);
});

test('nothing listening: a result that says why, no exception', async () => {
  const { lines, log } = logger();
  const r = await warmHttp(log, { socketPath: '\0booty-http-warm-up-test-nobody-listens', timeoutMs: 2_000 });
  assert.equal(r.ok, false);
  assert.match(r.error ?? '', /ECONNREFUSED|connect/i);
  assert.ok(lines.some((l) => /^http: warming up undici failed \(.+\); the first request pays for it$/.test(l)), lines.join('\n'));
});

test('a server that answers something else is a failure, not a hang', async () => {
  const path = `\0booty-http-warm-up-test-${process.pid}`;
  const server = net.createServer((s) => { s.once('data', () => s.end('HTTP/1.1 500 Nope\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')); });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  try {
    const r = await warmHttp(logger().log, { socketPath: path, timeoutMs: 2_000 });
    assert.deepEqual([r.ok, r.error], [false, 'answered 500']);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
