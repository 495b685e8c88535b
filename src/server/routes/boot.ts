// Network boot: iPXE scripts (GET /ipxe chains to /ipxe/<mac>), the kernel and initramfs they
// load (/boot/<file>, Range/ETag) and the TLS certificate agents pin (/tls/cert.pem). Public:
// firmware cannot authenticate. A machine's script carries that machine's agent credential
// (booty.token=, access.ts), never an operator token: whoever can read it can speak for that
// machine and no other (README "Security model"). Over HTTPS the script also pins the server's
// certificate (booty.ca=sha256:...), so the agent talks to this server only.

import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { summarizeAction } from '../../config/parse.ts';
import { HttpError } from '../http/http-error.ts';
import { note, sendText } from '../http/respond.ts';
import { serveFile } from '../http/serve-file.ts';
import { ipxeBootScript, ipxeChainScript, ipxeExitScript } from '../ipxe.ts';
import { etagFor } from '../range.ts';
import { BOOT_KERNEL, chooseInitrd, DEFAULT_CONSOLE, INITRD_NAMES } from '../boot-initrd.ts';
import { pemSha256 } from '../../net/tls-pin.ts';
import type { AppContext, AppRequest, AppRoute } from './context.ts';
import { notFound } from './fallbacks.ts';

const IPXE_TYPE = 'text/plain; charset=utf-8';

function baseUrlOf(app: AppContext, req: IncomingMessage): string {
  if (app.boot?.publicUrl !== undefined) return app.boot.publicUrl.replace(/\/+$/, '');
  const host = req.headers.host;
  if (host === undefined || !/^[A-Za-z0-9.:[\]-]+$/.test(host)) throw new HttpError(400, 'a Host header is needed to write URLs into the iPXE script (or start the server with --public-url)');
  // a server speaking HTTPS writes https URLs: the agent, pinned to it, refuses plain http
  return `${app.tlsCert === undefined ? 'http' : 'https'}://${host}`;
}

/** The pin of the server's certificate, computed once per certificate. */
const pins = new WeakMap<Buffer, string>();
function tlsPinOf(app: AppContext): string | undefined {
  const cert = app.tlsCert;
  if (cert === undefined) return undefined;
  let pin = pins.get(cert);
  if (pin === undefined) { pin = pemSha256(cert); pins.set(cert, pin); }
  return pin;
}

async function ipxeFor({ app, req, res, params: { mac } }: AppRequest): Promise<void> {
  const base = baseUrlOf(app, req);
  note(res, 'mac', mac);
  let served;
  try { served = await app.machines.served(mac); } catch (e) {
    // a broken action must not re-image the machine: boot from disk and say why
    note(res, 'ipxe', 'exit');
    return sendText(res, ipxeExitScript(mac, `its action is invalid (${(e as Error).message})`), IPXE_TYPE);
  }
  if (served === undefined || served.action.action === 'none') {
    const why = served === undefined ? 'no action for this machine' : served.trial !== undefined ? served.trial
      : served.oneShotDone !== undefined ? `one-shot ${served.configured.action} done at ${served.oneShotDone}` : 'action is none';
    note(res, 'ipxe', 'exit');
    return sendText(res, ipxeExitScript(mac, why), IPXE_TYPE);
  }
  const boot = app.boot ?? { dir: '', kernel: BOOT_KERNEL, console: DEFAULT_CONSOLE };
  note(res, 'ipxe', 'boot');
  sendText(res, ipxeBootScript(mac, summarizeAction(served.action), {
    serverUrl: base, bootUrl: (boot.url ?? `${base}/boot`).replace(/\/+$/, ''), kernel: boot.kernel, initrd: await chooseInitrd(boot.dir, boot.initrd),
    console: boot.console, token: app.trust.credentialFor(mac), caPin: tlsPinOf(app), extraArgs: boot.extraArgs,
  }), IPXE_TYPE);
}

async function serveBootFile({ app, req, res, params: { bootfile: name } }: AppRequest): Promise<void> {
  const boot = app.boot;
  // (with --initrd, that file only; without it, any of build-initramfs's names: a script written
  // just before a rebuild still loads)
  const initrds: readonly string[] = boot?.initrd !== undefined ? [boot.initrd] : INITRD_NAMES;
  if (boot === undefined || (name !== boot.kernel && !initrds.includes(name))) throw new HttpError(404, `no boot file ${JSON.stringify(name)} (served: the kernel and initramfs of --boot-dir)`);
  let fh: FileHandle;
  try { fh = await open(join(boot.dir, name), 'r'); } catch {
    throw new HttpError(404, `${join(boot.dir, name)} does not exist; build it with "booty build-initramfs" or point --boot-dir at it`);
  }
  const st = await fh.stat();
  await serveFile(req, res, app.counters, { fh, st, etag: etagFor(st) }, {});
}

export const bootRoutes: AppRoute[] = [
  { method: 'GET', path: '/ipxe', access: 'public', handle: ({ app, req, res }) => sendText(res, ipxeChainScript(baseUrlOf(app, req)), IPXE_TYPE) },
  { method: 'GET', path: '/ipxe/:mac', access: 'public', handle: ipxeFor },
  { method: 'GET', path: '/boot/:bootfile', access: 'public', handle: serveBootFile },
  {
    method: 'GET', path: '/tls/cert.pem', access: 'public',
    handle: (r) => {
      if (r.app.tlsCert === undefined) throw notFound(r);
      sendText(r.res, r.app.tlsCert.toString('utf8'), 'application/x-pem-file');
    },
  },
];
