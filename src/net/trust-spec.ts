// Reading `booty.ca=` / `--ca` (what tls-pin.ts then enforces). Apart from tls-pin.ts, which loads
// undici: the agent parses its command line before its first step, and undici is loaded later,
// while it waits for DHCP (src/agent/after-lease.ts).

export interface TrustSpec { pins: string[]; caUrls: string[]; problems: string[] }

/**
 * `booty.ca=` / `--ca` values (each may hold a comma-separated list): `sha256:<64 hex>` (colons
 * allowed, as `openssl x509 -fingerprint -sha256` prints them) or an https URL of PEM certificates.
 */
export function parseTrustSpec(values: string[]): TrustSpec {
  const out: TrustSpec = { pins: [], caUrls: [], problems: [] };
  for (const item of values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter((s) => s !== '')) {
    const m = /^sha256[:=](.+)$/i.exec(item);
    if (m !== null) {
      const hex = m[1].replace(/:/g, '').toLowerCase();
      if (/^[0-9a-f]{64}$/.test(hex)) out.pins.push(hex);
      else out.problems.push(`booty.ca=${item}: a pin is sha256: and 64 hex digits (the sha256 of the server certificate's DER)`);
      continue;
    }
    let u: URL | undefined;
    try { u = new URL(item); } catch { u = undefined; }
    if (u !== undefined && u.protocol === 'https:') out.caUrls.push(u.href);
    else out.problems.push(`booty.ca=${item}: expected sha256:<hex> or an https:// URL of CA certificates`);
  }
  if (out.caUrls.length > 0 && out.pins.length === 0) {
    out.problems.push('booty.ca: a CA URL is fetched over a pinned connection, so it needs a sha256: pin as well; the URL is ignored');
    out.caUrls = [];
  }
  return out;
}
