// Start and stop booty server: data directory layout, the HTTP listener, periodic clean-up.
//
// DIR/
//   booty.db                            machines, runs, logs, operator tokens (hashed), audit (SQLite via node:sqlite;
//                                       with --database postgres://... all of it is in PostgreSQL instead: src/server/store/)
//   secret                              the server's secret (0600): agent credentials and dashboard sessions derive from it
//                                       (replicas on PostgreSQL: a copy of the one they share in the database)
//   machines/<aa-bb-cc-dd-ee-ff>.json   declarative action per machine (booty, BOOTy or combined form)
//   default.json                        optional action for machines without their own
//   images/<name>                       images (downloads, uploads, captures)
//   images/.meta/<name>.json            sidecar per image: size, sha256, format, uncompressed size, source machine
//   images/.<name>.upload-<id>          uploads in progress (never served, swept when stale)
//   images/.uploads/<id>/               resumable uploads: session.json, data, part markers (expire after --upload-ttl)

import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BOOT_KERNEL, DEFAULT_CONSOLE } from './boot-initrd.ts';
import { createApp } from './app.ts';
import type { BootFiles } from './app.ts';
import { loadDashboard } from './dashboard-assets.ts';
import { EventStreamHub } from './event-stream.ts';
import { ImageStore } from './image-store.ts';
import { SharedImageCatalog, defaultReplicaUrl } from './image-catalog.ts';
import { CatalogSwarms } from './p2p/catalog-swarms.ts';
import { GzipIndexer } from './gzip-indexer.ts';
import { loadP2p } from '../p2p/load.ts';
import { UploadSessions } from './upload-sessions.ts';
import { parseAction } from '../config/parse.ts';
import { MachineStore } from './machines/machine-store.ts';
import { openStateStore } from './store/open-store.ts';
import { DEFAULT_LOG_RETENTION } from './machines/run-recorder.ts';
import type { LogRetention } from './machines/run-recorder.ts';
import { ServerCounters } from './metrics.ts';
import { TrustPolicy } from './http/access.ts';
import { loadOrCreateSecret, loadSharedSecret } from './trust/server-secret.ts';
import { OperatorTokens } from './trust/operator-tokens.ts';
import { AuditLog } from './trust/audit-log.ts';
import { createServerLog } from './server-log.ts';
import type { ServerLog } from './server-log.ts';

export interface ServerOptions {
  dataDir: string;
  /** the state store: undefined for DIR/booty.db (SQLite), or postgres://... shared by replicas */
  database?: string;
  host: string;
  port: number;
  /** the unnamed operator token (--token); named ones live in booty.db (booty tokens add) */
  token?: string;
  /** everyone is an operator, as before the trust model (labs only) */
  insecureOpen?: boolean;
  /** who may read /metrics (default public) */
  metrics?: 'public' | 'operator';
  /** how long a dashboard login lasts (default 12 h) */
  sessionTtlMs?: number;
  /** deploy actions served carry requireChecksum (see AppOptions) */
  requireChecksum?: boolean;
  maxUploadBytes?: number;
  /** resumable uploads idle this long are deleted (default 24 h) */
  uploadTtlMs?: number;
  /** serve HTTPS with this certificate (PEM, may hold the chain) and key */
  tls?: { cert: Buffer; key: Buffer };
  log?: ServerLog;
  boot?: BootFiles;
  /** peer to peer inside racks (--p2p): metainfo for every image, the rack trackers unless
   *  `trackerUrl` names another one, and `everyDeploy` turns it on in every deploy action */
  p2p?: { trackerUrl?: string; everyDeploy?: boolean; trustedProxies?: readonly string[] };
  /** false: build no gzip access-point indexes (default: one per pigz image, in the background) */
  gzipIndex?: boolean;
  /** how long and how much of each machine's log is kept (default: 30 days, 16 MiB per machine) */
  logRetention?: LogRetention;
  /** replicas on PostgreSQL: this replica's own URL as the others and the agents reach it, where
   *  the shared image catalog sends downloads of the images in its directory (--replica-url;
   *  default: the listening address, a wildcard one as this machine's host name) */
  replicaUrl?: string;
  /** what a machine with no action of its own and no default.json gets (--default-action):
   *  default `inspect` (report the hardware, wait for an operator); `off`: nothing (404, iPXE exit) */
  defaultAction?: 'inspect' | 'none' | 'off';
}

export interface RunningServer {
  url: string;
  server: Server;
  images: ImageStore;
  uploads: UploadSessions;
  machines: MachineStore;
  indexer: GzipIndexer;
  trust: TrustPolicy;
  /** re-read declarative files (machines/*.json, default.json) and hash hand-placed images */
  reload(): Promise<{ changed: string[]; errors: string[] }>;
  close(): Promise<void>;
}

/**
 * Uploads larger than this are refused unless --max-upload says otherwise: a capture is at most
 * its disk's size (compression only shrinks it), and 1 TiB holds the whole disk of most machines
 * booty images; without a limit one bad client fills the data disk every image lives on.
 */
export const DEFAULT_MAX_UPLOAD_BYTES = 2 ** 40;

const SWEEP_EVERY_MS = 10 * 60 * 1000;
const STALE_TEMP_MS = 60 * 60 * 1000;
const IDLE_SOCKET_MS = 10 * 60 * 1000;
const LOG_PRUNE_EVERY_MS = 60 * 60 * 1000;

/** Where `booty build-initramfs` puts the kernel and initramfs: dist/initramfs/ of this checkout. */
export const DEFAULT_BOOT_DIR = resolve(import.meta.dirname, '..', '..', 'dist', 'initramfs');

/** "host:port", "[v6]:port" or ":port" -> {host, port}. */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s.trim());
  if (m === null || Number(m[3]) > 65535) throw new Error(`--listen must be HOST:PORT (e.g. 0.0.0.0:3000 or [::]:3000), got ${JSON.stringify(s)}`);
  return { host: m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]), port: Number(m[3]) };
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const dataDir = resolve(opts.dataDir);
  await mkdir(dataDir, { recursive: true });
  const log = opts.log ?? createServerLog();
  const images = new ImageStore(join(dataDir, 'images'), { maxUploadBytes: opts.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES });
  await mkdir(images.dir, { recursive: true });
  await images.init();
  const uploads = new UploadSessions(images, { ttlMs: opts.uploadTtlMs });
  await uploads.init();
  const store = await openStateStore({ dataDir, database: opts.database });
  // replicas share the catalog (image-catalog.ts); one server's directory is its whole catalog
  const catalog = store.kind === 'postgres' ? new SharedImageCatalog(store, images) : undefined;
  const syncCatalog = async () => {
    if (catalog === undefined) return;
    try {
      const r = await catalog.sync();
      if (r.conflicts.length > 0) log.warn('images held by another replica under the same name are not listed from here', { images: r.conflicts.join(',') });
    } catch (e) { log.warn('could not update the shared image catalog', { error: (e as Error).message }); }
  };
  let secret: Buffer;
  try {
    // replicas share the database's (server-secret.ts); one server keeps its own in DIR/secret
    secret = store.kind === 'postgres' ? await loadSharedSecret(join(dataDir, 'secret'), store) : await loadOrCreateSecret(join(dataDir, 'secret'));
  } catch (e) {
    await store.close().catch(() => {});
    throw e;
  }
  const trust = new TrustPolicy({
    secret, tokens: new OperatorTokens(store), token: opts.token,
    insecureOpen: opts.insecureOpen, metrics: opts.metrics, sessionTtlMs: opts.sessionTtlMs,
  });
  const defaultAction = opts.defaultAction ?? 'inspect';
  const machines = new MachineStore(dataDir, store, {
    defaultAction: defaultAction === 'off' ? undefined : parseAction({ action: defaultAction }),
    onRelayError: (e) => log.warn('could not tell the other replicas of a change', { error: e.message }),
  });
  await machines.init();
  const retention = { ...DEFAULT_LOG_RETENTION, ...opts.logRetention };
  const pruneLogs = async () => {
    try {
      const gone = await machines.recorder.pruneLogs(retention);
      if (gone.byAge + gone.bySize > 0) log.info('machine logs pruned', { 'older-lines': gone.byAge, 'over-size-lines': gone.bySize });
    } catch (e) { log.warn('could not prune machine logs', { error: (e as Error).message }); }
  };
  await pruneLogs();
  const hub = new EventStreamHub(machines);
  const counters = new ServerCounters();
  const dashboard = await loadDashboard();
  if (dashboard === undefined) log.warn('dashboard files not found; / answers JSON only');

  const indexer = new GzipIndexer(images, (msg, fields) => log.info(msg, fields));
  indexer.onChange = () => hub.imagesChanged();
  // loaded only when peer to peer is on (p2p/load.ts)
  const p2p = opts.p2p === undefined ? undefined : await loadP2p();
  const metainfo = p2p === undefined ? undefined : new p2p.MetainfoBuilder(images, (msg, fields) => log.info(msg, fields));
  // replicas: the holder records each image's info dictionary in the shared catalog, so every
  // replica serves its metainfo and tracks its swarm (catalog-swarms.ts)
  if (catalog !== undefined && metainfo !== undefined) {
    catalog.torrentOf = (name, etag) => metainfo.peek(name, etag);
    metainfo.onReady = () => { void syncCatalog(); };
  }
  const catalogSwarms = catalog === undefined || metainfo === undefined ? undefined
    : new CatalogSwarms(() => catalog.infoHashes(), { onError: (e) => log.warn('could not read the swarms of the shared image catalog', { error: e.message }) });
  const rackTracker = p2p === undefined || metainfo === undefined || opts.p2p?.trackerUrl !== undefined ? undefined
    : new p2p.RackTracker((h) => metainfo.knows(h) || (catalogSwarms?.knows(h) ?? false));
  const hashImages = () => {
    void images.importUnhashed().then((done) => {
      if (done.length > 0) { log.info('images hashed', { images: done.join(',') }); hub.imagesChanged(); }
      void syncCatalog();
      // the BitTorrent metainfo, like the sha256: once per image version, in the background
      void metainfo?.scan();
      // gzip images get their access-point index (gzip-indexer.ts), one at a time, in the background
      if (opts.gzipIndex !== false) return indexer.scan();
    }).catch(() => {});
  };
  const reload = async () => {
    const r = await machines.actions.reload();
    for (const e of r.errors) log.warn('invalid action file', { error: e });
    log.info('reloaded', { changed: r.changed.length, errors: r.errors.length });
    hashImages();
    return r;
  };

  const app = createApp({ images, catalog, indexer: opts.gzipIndex === false ? undefined : indexer, uploads, machines, trust, audit: new AuditLog(store), requireChecksum: opts.requireChecksum, log, hub, counters, dashboard, reload, tlsCert: opts.tls?.cert,
    p2p: p2p === undefined || metainfo === undefined ? undefined : { metainfo, catalogSwarms, tracker: rackTracker, trackerUrl: opts.p2p?.trackerUrl, everyDeploy: opts.p2p?.everyDeploy, torrentFile: p2p.torrentFile, trustedProxies: opts.p2p?.trustedProxies },
    boot: opts.boot ?? { dir: DEFAULT_BOOT_DIR, kernel: BOOT_KERNEL, console: DEFAULT_CONSOLE } });
  const httpOpts = { requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 30_000 };
  const server: Server = opts.tls === undefined ? createServer(httpOpts, app)
    : createTlsServer({ ...httpOpts, cert: opts.tls.cert, key: opts.tls.key }, app);
  // A connection idle this long (a stalled upload, a vanished agent) is closed; an upload cut
  // this way loses only its temp file, and agents resume downloads with Range.
  server.setTimeout(IDLE_SOCKET_MS);
  try {
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen(opts.port, opts.host, () => { server.off('error', fail); ok(); });
    });
  } catch (e) {
    hub.close();
    machines.close();
    await store.close();
    throw e;
  }
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  if (catalog !== undefined) catalog.self = opts.replicaUrl ?? defaultReplicaUrl(opts.tls === undefined ? 'http' : 'https', addr.address, addr.port);
  // another replica's catalog change may free a name this one holds a copy of (image-catalog.ts)
  const offCatalog = catalog === undefined ? () => {} : store.onRemoteChange((c) => { if (c.type === 'images') { void syncCatalog(); void catalogSwarms?.refresh(); } });
  void catalogSwarms?.refresh();
  const sweeper = setInterval(() => {
    void images.sweep(STALE_TEMP_MS).catch(() => {});
    void uploads.expire().then((gone) => { if (gone.length > 0) log.info('expired uploads', { uploads: gone.join(',') }); }).catch(() => {});
  }, Math.max(1000, Math.min(SWEEP_EVERY_MS, uploads.ttlMs / 2)));
  sweeper.unref();
  const pruner = setInterval(() => { void pruneLogs(); }, LOG_PRUNE_EVERY_MS);
  pruner.unref();
  hashImages();

  return {
    url: `${opts.tls === undefined ? 'http' : 'https'}://${host}:${addr.port}`,
    server, images, uploads, machines, reload, indexer, trust,
    async close() {
      clearInterval(sweeper);
      clearInterval(pruner);
      indexer.stop();
      metainfo?.stop();
      rackTracker?.close();
      offCatalog();
      hub.close();
      await new Promise<void>((ok) => { server.close(() => ok()); server.closeIdleConnections(); });
      machines.close();
      await store.close();
    },
  };
}
