// Who may call a route: the three access levels routes declare, and the policy the router asks
// before a route runs. Today's policy is one optional operator token; a per-machine agent
// credential (the next step) is a new policy, checked where `agent` routes are decided below.

import type { IncomingMessage } from 'node:http';
import { timingSafeEqual } from 'node:crypto';

/**
 * Who may call a route.
 *   public:   anyone (firmware and agents fetch before they can authenticate: iPXE, boot files,
 *             images, an agent's own action; the dashboard and its read API)
 *   agent:    an agent reporting or uploading for a machine (events, capture uploads). Today the
 *             operator token (or nothing, when the server has none); `agentMac` names the machine
 *             so a per-machine credential can be checked here later
 *   operator: changes to the inventory, images and server state: the operator token
 */
export type Access = 'public' | 'agent' | 'operator';

/** Decides whether a request may call a route of a given access level. */
export interface AccessPolicy {
  allows(access: Access, req: IncomingMessage, mac: string | undefined): boolean;
  /** the refusal (401) when it does not */
  readonly refusal: string;
}

/**
 * Today's trust model: one optional operator token. Without one, everyone may do everything;
 * with one, agent and operator routes need `Authorization: Bearer <token>`.
 */
export function tokenPolicy(token: string | undefined): AccessPolicy {
  const expected = token === undefined ? undefined : Buffer.from(token);
  const hasToken = (req: IncomingMessage): boolean => {
    if (expected === undefined) return true;
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    if (m === null) return false;
    const given = Buffer.from(m[1].trim());
    return given.length === expected.length && timingSafeEqual(given, expected);
  };
  return {
    refusal: 'this server needs "Authorization: Bearer <token>" for uploads, actions and events',
    allows(access, req) {
      switch (access) {
        case 'public': return true;
        // a per-machine agent credential (checked against `mac`) would be accepted here too
        case 'agent': return hasToken(req);
        case 'operator': return hasToken(req);
      }
    },
  };
}
