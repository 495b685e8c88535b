// What every route handler gets: the server's stores and services (AppContext), and the route
// type bound to it. createApp (app.ts) builds one AppContext per server.

import type { Dashboard } from '../dashboard-assets.ts';
import type { EventStreamHub } from '../event-stream.ts';
import type { GzipIndexer } from '../gzip-indexer.ts';
import type { ImageStore } from '../image-store.ts';
import type { SharedImageCatalog } from '../image-catalog.ts';
import type { MachineStore } from '../machines/machine-store.ts';
import type { ServerCounters } from '../metrics.ts';
import type { ServerLog } from '../server-log.ts';
import type { UploadSessions } from '../upload-sessions.ts';
import type { Route, RouteRequest } from '../http/router.ts';
import type { TrustPolicy } from '../http/access.ts';
import type { AuditLog } from '../trust/audit-log.ts';
import type { MetainfoBuilder } from '../p2p/metainfo-builder.ts';
import type { RackTracker } from '../p2p/rack-tracker.ts';
import type { CatalogSwarms } from '../p2p/catalog-swarms.ts';
import type { torrentFile } from '../../p2p/metainfo.ts';

export interface AppOptions {
  images: ImageStore;
  /** replicas on PostgreSQL: the image catalog they share (image-catalog.ts); none on SQLite */
  catalog?: SharedImageCatalog;
  /** builds and serves gzip access-point indexes; none: images are served without */
  indexer?: GzipIndexer;
  machines: MachineStore;
  /** resumable uploads in parts (POST /api/uploads ...) */
  uploads: UploadSessions;
  /** who may call what (http/access.ts): operator tokens, agent credentials, loopback, --insecure-open */
  trust: TrustPolicy;
  /** operator changes (trust/audit-log.ts); none: not recorded (tests of single routes) */
  audit?: AuditLog;
  /** every deploy action served carries requireChecksum: the agent refuses an image whose sha256
   *  nobody gave (neither the action nor X-Image-Sha256) */
  requireChecksum?: boolean;
  /** peer to peer inside racks (--p2p): images' BitTorrent metainfo, the rack trackers (or an
   *  external tracker's URL), and whether every deploy action served turns it on */
  p2p?: { metainfo: MetainfoBuilder; catalogSwarms?: CatalogSwarms; tracker?: RackTracker; trackerUrl?: string; everyDeploy?: boolean; torrentFile: typeof torrentFile; trustedProxies?: readonly string[] };
  /** one record per request; default: JSON lines on stderr (human on a TTY) */
  log?: ServerLog;
  hub?: EventStreamHub;
  counters?: ServerCounters;
  dashboard?: Dashboard;
  boot?: BootFiles;
  /** the TLS certificate (PEM, may hold the chain), served at /tls/cert.pem for agents that pin */
  tlsCert?: Buffer;
  /** re-read the declarative files (also on SIGHUP) */
  reload?: () => Promise<{ changed: string[]; errors: string[] }>;
}

export interface BootFiles {
  /** directory holding the kernel and initramfs served under /boot/ */
  dir: string;
  kernel: string;
  /** the initramfs file name; undefined: the newest booty.cpio.* in dir at each request (boot-initrd.ts) */
  initrd?: string;
  /** where iPXE fetches kernel and initramfs; default <server>/boot */
  url?: string;
  /** base URL put into MYURL; default: the URL the request came to */
  publicUrl?: string;
  console: string;
  extraArgs?: string;
}

export type AppContext = AppOptions & { log: ServerLog; counters: ServerCounters };

export type AppRoute = Route<AppContext>;
export type AppRequest = RouteRequest<AppContext>;
