// One HTTP request the agent makes to itself while it waits for a DHCP offer, so that the first
// request that counts (the action's GET, the reporter's first POST) does not pay for undici's
// first use: compiling its llhttp WebAssembly parser (done on the first connection, synchronously)
// and running its request path for the first time. On the host that first request costs ~20 ms
// more than the next; under QEMU's TCG it is a good part of a second (README "Performance").
// The request goes over an abstract unix socket to a server in this process: no network, no
// address needed, nothing left behind (both ends are closed, also on failure).
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { Agent, request } from '../net/undici.ts';
import type { Logger } from '../util/log.ts';

export interface HttpWarmUpResult {
  ok: boolean;
  /** what went wrong (ok false) */
  error?: string;
  ms: number;
}

const RESPONSE = 'HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n';

/** Never rejects: a warm-up that fails only means the first real request pays. */
export async function warmHttp(log: Logger, opts: { socketPath?: string; timeoutMs?: number } = {}): Promise<HttpWarmUpResult> {
  const started = performance.now();
  const timeoutMs = opts.timeoutMs ?? 10_000;
  // abstract namespace (leading NUL): no file to clean up, nothing another process can mistake
  const socketPath = opts.socketPath ?? `\0booty-http-warm-up-${process.pid}-${randomBytes(4).toString('hex')}`;
  const server = opts.socketPath === undefined ? net.createServer((s) => {
    s.on('error', () => { /* the client went away: nothing to do */ });
    s.once('data', () => s.end(RESPONSE));
  }) : undefined;
  const agent = new Agent({ socketPath, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, connectTimeout: timeoutMs });
  try {
    if (server !== undefined) {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => { server.off('error', reject); resolve(); });
      });
    }
    // an IPv4 literal as the host (the socket path decides where it goes): undici asks net.isIP()
    // of every host, and a name would also compile the IPv6 pattern behind it, which the agent's
    // own servers (IPv4 addresses) never need (tens of milliseconds under TCG)
    const res = await request('http://127.0.0.1/', { method: 'GET', dispatcher: agent });
    await res.body.dump();
    if (res.statusCode !== 204) throw new Error(`answered ${res.statusCode}`);
    const ms = Math.round(performance.now() - started);
    log.info(`http: warmed up undici (one request to this process) in ${ms} ms`);
    return { ok: true, ms };
  } catch (e) {
    const error = e instanceof Error ? e.message : String(e);
    log.info(`http: warming up undici failed (${error}); the first request pays for it`);
    return { ok: false, error, ms: Math.round(performance.now() - started) };
  } finally {
    await agent.destroy().catch(() => { /* already closed */ });
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
