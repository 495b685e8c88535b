// Where the deploy rows fetch their images from. Every deploy row runs once per origin: booty
// server (with what only it sends: X-Image-Sha256, the gzip access-point index) and Debian's
// nginx (bench/vm/nginx-origin.ts), a plain static web server as operators often use. Rows of one
// origin get the id suffix "@<slug>" and are compared with the peers of the same origin.
import type { Context, Row } from './peers.ts';

export type OriginUrls = { gzUrl: string; zstUrl: string; xzUrl?: string; bz2Url?: string };
export type OriginSpec = { slug: string; name: string };

export const ORIGINS: OriginSpec[] = [
  { slug: 'booty', name: 'booty server' },
  { slug: 'nginx', name: 'nginx' },
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

/** Each deploy row once per origin (its command sees that origin's URLs); other rows as they are. */
export function perOrigin(rows: Row[], origins: OriginSpec[] = ORIGINS): Row[] {
  const out: Row[] = [];
  for (const r of rows) {
    if (r.section !== 'deploy') { out.push(r); continue; }
    for (const o of origins) {
      out.push({
        ...r,
        id: `${r.id}@${o.slug}`,
        label: `${r.label} [${o.name}]`,
        command: (c: Context) => {
          const urls = c.origins[o.slug];
          return urls === undefined ? { na: `no ${o.name} origin in this run` } : r.command({ ...c, ...urls });
        },
      });
    }
  }
  return out;
}
