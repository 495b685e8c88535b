// Where the deploy rows fetch their images from. Every deploy row runs once per origin: booty
// server (with what only it sends: X-Image-Sha256, the gzip access-point index) and Debian's
// nginx (bench/vm/nginx-origin.ts), a plain static web server as operators often use. Rows of one
// origin get the id suffix "@<slug>" and are compared with the peers of the same origin.
// An opt-in origin serves only the rows that name it (Row.origins): Debian's docker-registry
// (registry-origin.ts) for the OCI rows.
import type { Context, Row } from './peers.ts';

/** One image blob in the bench's registry: what booty deploys, what curl fetches, what is warmed. */
export type OciBlob = { ref: string; url: string; file: string };
export type OriginUrls = { gzUrl: string; zstUrl: string; xzUrl?: string; bz2Url?: string; oci?: { gzip: OciBlob; zstd: OciBlob } };
export type OriginSpec = { slug: string; name: string; optIn?: boolean };

export const ORIGINS: OriginSpec[] = [
  { slug: 'booty', name: 'booty server' },
  { slug: 'nginx', name: 'nginx' },
  { slug: 'registry', name: 'docker-registry', optIn: true },
];

/** 'deploy-pigz@nginx' -> 'nginx'; undefined for rows that fetch nothing. */
export function originOf(id: string): string | undefined {
  const i = id.indexOf('@');
  return i < 0 ? undefined : id.slice(i + 1);
}

/** 'deploy-pigz@nginx' -> 'deploy-pigz'. */
export function baseId(id: string): string {
  const i = id.indexOf('@');
  return i < 0 ? id : id.slice(0, i);
}

/** Each deploy row once per origin it runs from (every origin but the opt-in ones, or those its
 *  `origins` names); its command and warm-up see that origin's URLs. Other rows as they are. */
export function perOrigin(rows: Row[], origins: OriginSpec[] = ORIGINS): Row[] {
  const out: Row[] = [];
  for (const r of rows) {
    if (r.section !== 'deploy') { out.push(r); continue; }
    for (const o of origins.filter((x) => (r.origins === undefined ? x.optIn !== true : r.origins.includes(x.slug)))) {
      out.push({
        ...r,
        id: `${r.id}@${o.slug}`,
        label: `${r.label} [${o.name}]`,
        command: (c: Context) => {
          const urls = c.origins[o.slug];
          return urls === undefined ? { na: `no ${o.name} origin in this run` } : r.command({ ...c, ...urls });
        },
        warm: (c: Context) => {
          const urls = c.origins[o.slug];
          return urls === undefined ? [] : r.warm({ ...c, ...urls });
        },
      });
    }
  }
  return out;
}

/** Whether BENCH_ONLY's list (ids or id prefixes; empty: everything) selects this row id. */
export function selects(only: string[], id: string): boolean {
  return only.length === 0 || only.some((o) => id === o || id.startsWith(o));
}
