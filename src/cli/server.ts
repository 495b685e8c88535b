// `booty server --data DIR [--database postgres://...] [--listen HOST:PORT] [--token T] [--max-upload BYTES] [--tls-cert F --tls-key F] [boot and log options]`
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_BOOT_DIR, parseListen, startServer } from '../server/server.ts';
import { BOOT_KERNEL, DEFAULT_CONSOLE, describeBootFiles, initrdNameProblem } from '../server/boot-initrd.ts';
import { createServerLog } from '../server/server-log.ts';
import { pemSha256 } from '../net/tls-pin.ts';
import type { LogFormat, ServerLog } from '../server/server-log.ts';
import type { TrustPolicy } from '../server/http/access.ts';

const HELP = `usage: booty server --data DIR [--database postgres://...] [--listen HOST:PORT] [--token TOKEN] [--max-upload BYTES]
                    [--metrics public|operator] [--insecure-open]
                    [--tls-cert FILE --tls-key FILE] [--upload-ttl SECONDS]
                    [--boot-dir DIR] [--initrd NAME] [--boot-url URL] [--public-url URL] [--console ARGS]
                    [--kernel-args ARGS] [--log-format auto|json|human]
                    [--machine-log-days DAYS] [--machine-log-mib MIB]

Serves actions per MAC, images (with Range/ETag), accepts uploads (booty PUT and BOOTy's
multipart POST) and agent reports; keeps machines, runs and logs in DIR/booty.db; serves the
live dashboard at /, iPXE scripts at /ipxe and /ipxe/<mac>, and Prometheus metrics at /metrics.
See README "booty server" and "Server API".

  --data DIR          data directory (created if missing): booty.db, machines/, default.json, images/
  --database URL      keep machines, runs, logs, tokens and the audit log in PostgreSQL instead of
                      DIR/booty.db, shared by any number of server replicas: postgres://USER[:PW]@HOST[:PORT]/DB
                      or postgres://USER@/DB?host=/socket/dir (README "Replicas on PostgreSQL")
  --replica-url URL   with --database postgres://: this replica's own URL as the other replicas and the
                      agents reach it (not the load balancer's); downloads of images in its directory
                      are sent there from every replica (default: the --listen address, a wildcard
                      one as this machine's host name)
  --listen HOST:PORT  address to listen on (default 0.0.0.0:3000; port 0 picks a free port)
  --token TOKEN       an operator token (unnamed; also from the environment variable BOOTY_TOKEN).
                      Named, revocable ones: "booty tokens add NAME --data DIR". Without any,
                      operator requests (changes, uploads, logs, the dashboard) are accepted from
                      this host (loopback) only. Agents always use their machine's credential,
                      which /ipxe/<mac> puts on its kernel command line (README "Security model")
  --metrics WHO       who may read /metrics: public (default) or operator
  --login-ttl SECONDS how long a dashboard login lasts (default 43200: 12 hours)
  --insecure-open     anyone on the network is an operator (changes actions, overwrites images,
                      reads logs): the behaviour before the trust model, for isolated labs only
  --max-upload BYTES  refuse uploads larger than this (default 1099511627776 = 1 TiB: a capture is at
                      most its disk's size; raise it for bigger disks; "unlimited": no limit)
  --require-checksum  every deploy action served tells the agent to refuse an image whose sha256
                      is unknown (images stored here always have one; others need "sha256")
  --tls-cert FILE     serve HTTPS with this certificate (PEM; may hold the chain, served at /tls/cert.pem);
                      prints the booty.ca=sha256:... pin agents use to trust this server
  --tls-key FILE      the certificate's private key (PEM)
  --upload-ttl SECONDS  delete resumable uploads idle this long (default 86400)
  --boot-dir DIR      kernel (vmlinuz) and initramfs served under /boot/ (default: dist/initramfs
                      of this checkout, where "booty build-initramfs" puts them)
  --initrd NAME       the initramfs file in --boot-dir (default: the newest of booty.cpio.zst,
                      booty.cpio.lz4, booty.cpio.gz and booty.cpio, as build-initramfs names them)
  --boot-url URL      let iPXE fetch vmlinuz and the initramfs from URL instead of /boot/
  --public-url URL    the server's URL as machines reach it, for MYURL in iPXE scripts
                      (default: from the Host header of the iPXE request)
  --console ARGS      console arguments for the agent's kernel (default "${DEFAULT_CONSOLE}")
  --kernel-args ARGS  more kernel arguments (e.g. "booty.debug booty.countdown=10")
  --default-action A  what a MAC with no action of its own and no DIR/default.json gets: inspect (default:
                      it reports its hardware and waits for an operator, shown in "booty machines list"),
                      none (boot from disk) or off (no action: 404, and /ipxe/<mac> answers exit)
  --log-format F      auto (default: human on a terminal, JSON lines otherwise), json or human
  --no-gzip-index     build no gzip access-point indexes (default: every gzip image written by pigz
                      gets one, in the background, so agents inflate it on every core)
  --p2p               peer to peer inside racks: compute every image's BitTorrent metainfo in the
                      background (GET /image-torrent/<name>) and run the rack trackers
                      (GET /p2p/<rack>/announce); agents use it when their action says "p2p"
  --p2p-tracker URL   as --p2p, but peers announce to this tracker instead of the built-in one
  --p2p-trusted-proxy ADDR  the load balancer's address (repeatable): announces from it name the
                      peer in X-Forwarded-For (its last entry); from anyone else the header is ignored
  --p2p-every-deploy  every deploy action served without "p2p", of an image this server holds,
                      gets "p2p": {} (the whole fleet)
  --machine-log-days DAYS  delete machines' log lines received more than DAYS ago (default 30; 0: keep)
  --machine-log-mib MIB    keep at most MIB MiB of log text per machine, oldest lines go first
                           (default 16; 0: no limit). Checked at start and every hour

SIGHUP (or POST /api/reload) re-reads DIR/machines/*.json and DIR/default.json.
`;

/** Say, at start, who may change things: an operator must not find out from a 401 at 3am. */
async function warnAboutTrust(trust: TrustPolicy, dataDir: string, log: ServerLog): Promise<void> {
  if (trust.insecureOpen) {
    const msg = '--insecure-open: ANYONE who can reach this server can change actions, overwrite and delete images, and read logs; use it on an isolated lab network only';
    process.stderr.write(`booty server: WARNING: ${msg}\n`);
    log.warn('insecure open', { warning: msg });
  } else if (!await trust.hasOperatorToken()) {
    const msg = `no operator token: operator requests (changes, uploads, logs, the dashboard) are accepted from this host (loopback) only; agents keep working with their machine credentials. Create a token: booty tokens add NAME --data ${dataDir}`;
    process.stderr.write(`booty server: ${msg}\n`);
    log.warn('no operator token', { hint: `booty tokens add NAME --data ${dataDir}` });
  }
}

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv, strict: true, allowPositionals: false,
      options: {
        data: { type: 'string' }, database: { type: 'string' }, listen: { type: 'string', default: '0.0.0.0:3000' },
        token: { type: 'string' }, 'insecure-open': { type: 'boolean' }, 'login-ttl': { type: 'string' }, metrics: { type: 'string', default: 'public' }, 'max-upload': { type: 'string' }, 'require-checksum': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
        'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' }, 'upload-ttl': { type: 'string' },
        'boot-dir': { type: 'string' }, initrd: { type: 'string' }, 'boot-url': { type: 'string' }, 'public-url': { type: 'string' }, 'replica-url': { type: 'string' },
        console: { type: 'string', default: DEFAULT_CONSOLE }, 'kernel-args': { type: 'string' },
        'log-format': { type: 'string', default: 'auto' }, 'default-action': { type: 'string', default: 'inspect' }, 'no-gzip-index': { type: 'boolean' },
        p2p: { type: 'boolean' }, 'p2p-tracker': { type: 'string' }, 'p2p-every-deploy': { type: 'boolean' }, 'p2p-trusted-proxy': { type: 'string', multiple: true },
        'machine-log-days': { type: 'string' }, 'machine-log-mib': { type: 'string' },
      },
    }));
  } catch (e) {
    process.stderr.write(`booty server: ${(e as Error).message}\n${HELP}`);
    return 2;
  }
  if (values.help === true) { process.stdout.write(HELP); return 0; }
  if (values.data === undefined) { process.stderr.write(`booty server: --data DIR is required\n${HELP}`); return 2; }
  let listen;
  try { listen = parseListen(values.listen); } catch (e) { process.stderr.write(`booty server: ${(e as Error).message}\n`); return 2; }
  const maxUpload = values['max-upload'];
  if (maxUpload !== undefined && maxUpload !== 'unlimited' && !/^\d+$/.test(maxUpload)) { process.stderr.write('booty server: --max-upload must be a number of bytes or "unlimited"\n'); return 2; }
  const metrics = values.metrics;
  if (metrics !== 'public' && metrics !== 'operator') { process.stderr.write('booty server: --metrics must be public or operator\n'); return 2; }
  const defaultAction = values['default-action'];
  if (defaultAction !== 'inspect' && defaultAction !== 'none' && defaultAction !== 'off') { process.stderr.write('booty server: --default-action must be inspect, none or off\n'); return 2; }
  const format = values['log-format'];
  if (format !== 'auto' && format !== 'json' && format !== 'human') { process.stderr.write('booty server: --log-format must be auto, json or human\n'); return 2; }
  const initrdProblem = values.initrd === undefined ? undefined : initrdNameProblem(values.initrd);
  if (initrdProblem !== undefined) { process.stderr.write(`booty server: ${initrdProblem}\n`); return 2; }
  for (const k of ['boot-url', 'public-url', 'replica-url'] as const) {
    const v = values[k];
    if (v !== undefined && !/^https?:\/\/[^\s$]+$/.test(v)) { process.stderr.write(`booty server: --${k} must be an http(s) URL, got ${JSON.stringify(v)}\n`); return 2; }
  }
  const loginTtl = values['login-ttl'];
  if (loginTtl !== undefined && !/^\d+(\.\d+)?$/.test(loginTtl)) { process.stderr.write('booty server: --login-ttl must be a number of seconds\n'); return 2; }
  const ttl = values['upload-ttl'];
  if (ttl !== undefined && !/^\d+(\.\d+)?$/.test(ttl)) { process.stderr.write('booty server: --upload-ttl must be a number of seconds\n'); return 2; }
  for (const k of ['machine-log-days', 'machine-log-mib'] as const) {
    const v = values[k];
    if (v !== undefined && !/^\d+(\.\d+)?$/.test(v)) { process.stderr.write(`booty server: --${k} must be a number (0: no limit), got ${JSON.stringify(v)}\n`); return 2; }
  }
  const logDays = values['machine-log-days'];
  const logMib = values['machine-log-mib'];
  let tls: { cert: Buffer; key: Buffer } | undefined;
  let pin: string | undefined;
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) {
    process.stderr.write('booty server: --tls-cert and --tls-key go together\n');
    return 2;
  }
  if (values['tls-cert'] !== undefined && values['tls-key'] !== undefined) {
    try {
      tls = { cert: readFileSync(values['tls-cert']), key: readFileSync(values['tls-key']) };
      pin = pemSha256(tls.cert);
    } catch (e) {
      process.stderr.write(`booty server: cannot use the TLS certificate: ${(e as Error).message}\n`);
      return 2;
    }
  }
  const token = values.token ?? process.env.BOOTY_TOKEN;
  const log = createServerLog(format as LogFormat);

  const bootDir = values['boot-dir'] === undefined ? DEFAULT_BOOT_DIR : resolve(values['boot-dir']);
  let running: Awaited<ReturnType<typeof startServer>>;
  try {
    running = await startServer({
      dataDir: values.data, database: values.database, host: listen.host, port: listen.port, token: token === '' ? undefined : token, insecureOpen: values['insecure-open'] === true, metrics,
      sessionTtlMs: loginTtl === undefined ? undefined : Number(loginTtl) * 1000, requireChecksum: values['require-checksum'] === true,
      maxUploadBytes: maxUpload === undefined ? undefined : maxUpload === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(maxUpload), log, tls,
      uploadTtlMs: ttl === undefined ? undefined : Number(ttl) * 1000, gzipIndex: values['no-gzip-index'] !== true,
      p2p: values.p2p === true || values['p2p-tracker'] !== undefined || values['p2p-every-deploy'] === true
        ? { trackerUrl: values['p2p-tracker'], everyDeploy: values['p2p-every-deploy'] === true, trustedProxies: values['p2p-trusted-proxy'] } : undefined,
      defaultAction, replicaUrl: values['replica-url'],
      logRetention: {
        ...(logDays === undefined ? {} : { maxAgeMs: Number(logDays) * 24 * 3600 * 1000 }),
        ...(logMib === undefined ? {} : { maxBytesPerMachine: Math.round(Number(logMib) * (1 << 20)) }),
      },
      boot: {
        dir: bootDir, kernel: BOOT_KERNEL, ...(values.initrd === undefined ? {} : { initrd: values.initrd }),
        url: values['boot-url'], publicUrl: values['public-url'], console: values.console, extraArgs: values['kernel-args'],
      },
    });
  } catch (e) {
    process.stderr.write(`booty server: cannot start: ${(e as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`booty server: listening on ${running.url}\n`);
  if (pin !== undefined) process.stdout.write(`booty server: TLS certificate sha256:${pin} (agents: booty.ca=sha256:${pin}; CLI: --ca sha256:${pin})\n`);
  log.info('started', { data: values.data, url: running.url, token: token ? 'required' : undefined });
  await warnAboutTrust(running.trust, values.data, log);
  if (values['boot-url'] === undefined) {
    const boot = await describeBootFiles(bootDir, BOOT_KERNEL, values.initrd);
    if (boot.ok) log.info('boot files', { detail: boot.message });
    else {
      process.stderr.write(`booty server: WARNING: ${boot.message}\n`);
      log.warn('boot files missing', { warning: boot.message });
    }
  }
  const onHup = () => { void running.reload().catch((e: unknown) => log.error('reload failed', { error: (e as Error).message })); };
  process.on('SIGHUP', onHup);
  await new Promise<void>((done) => {
    const stop = (sig: string) => {
      log.info('shutting down', { signal: sig });
      void running.close().finally(done);
      // a second signal, or connections that will not close, must not keep us alive
      setTimeout(() => done(), 5000).unref();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  process.off('SIGHUP', onHup);
  return 0;
}
