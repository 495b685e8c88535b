// A TCP port nobody listens on at this moment, for a helper process (PostgreSQL, haproxy, a
// registry) that must be told its port before it starts. Another process may take it in between:
// callers that can retry do.
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((ok) => s.close(() => ok()));
  return port;
}
