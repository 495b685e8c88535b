// Per-machine agent credentials: "<mac>.<hex HMAC-SHA256(server secret, mac)>", e.g.
// "52-54-00-12-34-56.9f2c...". The MAC in front lets the server tell which machine speaks
// without a lookup (a capture upload names no machine); the HMAC makes it unforgeable without
// the server's secret. Delivered the way firmware can: in that machine's iPXE script
// (booty.token=...), which the agent already sends as its bearer token.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { normalizeMac } from '../names.ts';

// a label in the MAC'd text: the same secret also signs dashboard sessions, which must never
// be mistaken for agent credentials
const PURPOSE = 'booty-agent-credential-v1:';

function mac256(secret: Buffer, mac: string): Buffer {
  return createHmac('sha256', secret).update(PURPOSE + mac).digest();
}

/** The credential of machine `mac` (any notation). */
export function agentCredential(secret: Buffer, mac: string): string {
  const m = normalizeMac(mac);
  if (m === undefined) throw new Error(`${JSON.stringify(mac)} is not a MAC address`);
  return `${m}.${mac256(secret, m).toString('hex')}`;
}

/** Does `text` look like an agent credential at all (so a wrong one is reported as such)? */
export function looksLikeAgentCredential(text: string): boolean {
  return /^[0-9a-f]{2}(-[0-9a-f]{2}){5}\.[0-9a-f]{64}$/i.test(text);
}

/** The machine `text` is the credential of, or undefined when it is not a valid one. */
export function agentCredentialMac(secret: Buffer, text: string): string | undefined {
  if (!looksLikeAgentCredential(text)) return undefined;
  const [macText, hex] = text.split('.');
  const mac = normalizeMac(macText);
  if (mac === undefined) return undefined;
  const given = Buffer.from(hex.toLowerCase(), 'hex');
  return timingSafeEqual(given, mac256(secret, mac)) ? mac : undefined;
}
