// An agent fetching its action: GET /<mac>, /<mac>.bty, /booty/<mac>.bty (BOOTy's paths) and
// GET /api/machines/<mac>/action. Public: an agent asks before it can authenticate; but the
// contents of post.files (written into the deployed system: keys, passwords) go only to that
// machine's credential or an operator.

import type { ServerResponse } from 'node:http';
import { toBootyJson } from '../../config/parse.ts';
import { isBootyError } from '../../util/errors.ts';
import type { Action } from '../../config/action.ts';
import type { Principal } from '../http/access.ts';
import { refuseOtherMachine } from '../http/access.ts';
import { HttpError } from '../http/http-error.ts';
import { note, writeHead } from '../http/respond.ts';
import { imageNameProblem, normalizeMac } from '../names.ts';
import { metainfoUrlFor } from '../../p2p/metainfo-url.ts';
import type { AppContext, AppRequest, AppRoute } from './context.ts';

/** The action an agent gets now (one-shot rule applied); 404 saying what to create when none. */
export async function serveAction(app: AppContext, res: ServerResponse, macText: string, principal: Principal): Promise<void> {
  const mac = normalizeMac(macText);
  if (mac === undefined) throw new HttpError(404, `no such path (not a MAC address: ${JSON.stringify(macText.slice(0, 40))})`);
  let found;
  try { found = await app.machines.served(mac); } catch (e) {
    if (isBootyError(e)) throw new HttpError(500, `action for ${mac} is invalid: ${e.message}`);
    throw e;
  }
  if (found === undefined) {
    throw new HttpError(404, `no action for ${mac}: create ${app.machines.actions.actionFile(mac)} or ${app.machines.actions.defaultFile}, or PUT /api/machines/${mac}/action`);
  }
  if (carriesFiles(found.action)) mayReadFiles(principal, mac);
  note(res, 'mac', mac); note(res, 'action', found.action.action); note(res, 'from', found.source);
  if (found.oneShotDone !== undefined) note(res, 'one-shot-done', found.oneShotDone);
  if (found.trial !== undefined) note(res, 'trial', found.trial);
  let action = app.requireChecksum === true && found.action.action === 'deploy' ? { ...found.action, requireChecksum: true } : found.action;
  // --p2p-every-deploy: the whole fleet fetches its images from its rack's peers (an action's own
  // "p2p" wins); images on other servers have no metainfo here and are fetched as they are
  // (another replica's have: served from the shared catalog)
  if (app.p2p?.everyDeploy === true && action.action === 'deploy' && action.p2p === undefined && await isOwnImage(app, action.image)) action = { ...action, p2p: {} };
  const text = toBootyJson(action) + '\n';
  writeHead(res, 200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

/** Is `url` .../images/<name> of an image this server (or, with replicas, another replica) holds? */
async function isOwnImage(app: AppContext, url: string): Promise<boolean> {
  if (metainfoUrlFor(url) === undefined) return false;
  let name: string;
  try { name = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? ''); } catch { return false; }
  return imageNameProblem(name) === undefined && (await app.images.exists(name) || await app.catalog?.elsewhere(name) !== undefined);
}

function carriesFiles(a: Action): boolean {
  return a.action === 'deploy' && Object.keys(a.post?.files ?? {}).length > 0;
}

/** post.files may hold secrets of the deployed system: that machine's agent and operators only. */
function mayReadFiles(p: Principal, mac: string): void {
  if (p.kind === 'operator') return;
  if (p.kind === 'anonymous') {
    throw new HttpError(401, `the action of ${mac} writes files (post.files), which are served only with that machine's credential: boot it through /ipxe/${mac} (booty.token=) or get it with GET /api/machines/${mac}/credential`);
  }
  refuseOtherMachine(p, mac);
}

/** BOOTy's file names: "<mac>" or "<mac>.bty". */
const servedByFileName = (r: AppRequest) => serveAction(r.app, r.res, r.params.machine.replace(/\.bty$/i, ''), r.principal);

/** Last in the table: GET /<anything> is a MAC unless an earlier route took it. */
export const actionRoutes: AppRoute[] = [
  { method: 'GET', path: '/booty/:machine', access: 'public', handle: servedByFileName },
  { method: 'GET', path: '/:machine', access: 'public', handle: servedByFileName },
];
