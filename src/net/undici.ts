// booty's HTTP client: undici's Agent, request() and TLS connector, taken from undici's own
// modules rather than its index. The index loads all of undici at import (fetch, WebSocket,
// EventSource, mock, proxy and retry agents, cache stores): more peak RSS in every deploy,
// capture and agent (README, Performance, has the figure), and more code to compile at boot, for nothing booty calls.
// undici is pinned (package-lock.json); test/unit/net-undici.test.ts checks that these modules
// still export what is used here. Everything else imports HTTP from this module, never 'undici'.
import type * as Undici from 'undici';
import AgentModule from 'undici/lib/dispatcher/agent.js';
import DispatcherModule from 'undici/lib/dispatcher/dispatcher.js';
import api from 'undici/lib/api/index.js';
import buildConnectorModule from 'undici/lib/core/connect.js';
import redirect from 'undici/lib/interceptor/redirect.js';

// What undici's index does to every dispatcher: the request/stream/pipeline/... methods
Object.assign(DispatcherModule.prototype, api);

export const Agent = AgentModule;
export type Agent = Undici.Agent;
export type { Dispatcher } from 'undici';
export const buildConnector = buildConnectorModule;
export const interceptors = { redirect };

let fallback: Undici.Dispatcher | undefined;

/** undici's request(url, options): the dispatcher in `options`, else one shared Agent. */
export const request = ((url: string | URL, opts: { dispatcher?: Undici.Dispatcher; method?: string; body?: unknown } & Record<string, unknown> = {}) => {
  const u = typeof url === 'string' ? new URL(url) : url;
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`invalid url ${u.href}: not http(s)`);
  const { dispatcher, ...rest } = opts;
  const d = dispatcher ?? (fallback ??= new AgentModule());
  return d.request({
    ...rest,
    origin: u.origin,
    path: u.search ? `${u.pathname}${u.search}` : u.pathname,
    method: rest.method ?? (rest.body ? 'PUT' : 'GET'),
  } as Undici.Dispatcher.RequestOptions);
}) as typeof Undici.request;
