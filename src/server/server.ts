// Start and stop booty server: data directory layout, the HTTP listener, periodic clean-up.
//
// DIR/
//   machines/<aa-bb-cc-dd-ee-ff>.json   action per machine (booty, BOOTy or combined form)
//   default.json                        optional action for machines without their own file
//   images/<name>                       images (downloads, uploads, captures)
//   images/.meta/<name>.json            sidecar per image: size, sha256, format, uncompressed size
//   images/.<name>.upload-<id>          uploads in progress (never served, swept when stale)
//   state/<mac>.json, state/<mac>.log   what each agent last reported, and its log

import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createApp } from './app.ts';
import { ImageStore } from './image-store.ts';
import { MachineStore } from './machine-store.ts';

export interface ServerOptions {
  dataDir: string;
  host: string;
  port: number;
  token?: string;
  maxUploadBytes?: number;
  logLine?: (line: string) => void;
}

export interface RunningServer {
  url: string;
  server: Server;
  images: ImageStore;
  machines: MachineStore;
  close(): Promise<void>;
}

const SWEEP_EVERY_MS = 10 * 60 * 1000;
const STALE_TEMP_MS = 60 * 60 * 1000;
const IDLE_SOCKET_MS = 10 * 60 * 1000;

/** "host:port", "[v6]:port" or ":port" -> {host, port}. */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s.trim());
  if (m === null || Number(m[3]) > 65535) throw new Error(`--listen must be HOST:PORT (e.g. 0.0.0.0:3000 or [::]:3000), got ${JSON.stringify(s)}`);
  return { host: m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]), port: Number(m[3]) };
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const dataDir = resolve(opts.dataDir);
  await mkdir(dataDir, { recursive: true });
  const images = new ImageStore(join(dataDir, 'images'), { maxUploadBytes: opts.maxUploadBytes });
  await mkdir(images.dir, { recursive: true });
  await images.init();
  const machines = new MachineStore(dataDir);
  await machines.init();

  const server = createServer({ requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 30_000 },
    createApp({ images, machines, token: opts.token, logLine: opts.logLine }));
  // A connection idle this long (a stalled upload, a vanished agent) is closed; an upload cut
  // this way loses only its temp file, and agents resume downloads with Range.
  server.setTimeout(IDLE_SOCKET_MS);
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port, opts.host, () => { server.off('error', fail); ok(); });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const sweeper = setInterval(() => { void images.sweep(STALE_TEMP_MS).catch(() => {}); }, SWEEP_EVERY_MS);
  sweeper.unref();

  return {
    url: `http://${host}:${addr.port}`,
    server, images, machines,
    async close() {
      clearInterval(sweeper);
      await new Promise<void>((ok) => { server.close(() => ok()); server.closeIdleConnections(); });
      await machines.flush();
    },
  };
}
