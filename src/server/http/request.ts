// Reading requests: the JSON body, path segments, and the small parameter checks every route
// shares (image names, MACs, sizes, sha256). Each refusal is an HttpError naming what was wrong.

import type { IncomingMessage } from 'node:http';
import { imageNameProblem, normalizeMac } from '../names.ts';
import { HttpError } from './http-error.ts';

const JSON_LIMIT = 4 << 20;

/** The JSON body; only with Content-Type application/json (or +json): a web page cannot send that cross-site without a preflight (CSRF). */
export async function readJson(req: IncomingMessage, limit = JSON_LIMIT): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json' && !/^application\/[a-z0-9.+-]+\+json$/.test(type)) {
    throw new HttpError(415, `send the body with "Content-Type: application/json" (got ${type === '' ? 'none' : JSON.stringify(type.slice(0, 60))}); other types are refused so a web page cannot post to booty from an operator's browser`);
  }
  const chunks: Buffer[] = [];
  let len = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    len += c.length;
    if (len > limit) throw new HttpError(413, `request body larger than ${limit} bytes`);
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try { return JSON.parse(text); } catch (e) { throw new HttpError(400, `request body is not valid JSON (${(e as Error).message})`); }
}

/** "/a/b%2Fc" -> ["a", "b/c"]: split first, so an encoded slash stays inside its segment. */
export function decodeSegments(pathname: string): string[] {
  return pathname.split('/').slice(1).map((seg) => {
    try { return decodeURIComponent(seg); } catch { throw new HttpError(400, `malformed percent-encoding in ${JSON.stringify(seg)}`); }
  });
}

export function checkedImageName(name: string): string {
  const problem = imageNameProblem(name);
  if (problem !== undefined) throw new HttpError(400, `refused image name ${JSON.stringify(name.slice(0, 100))}: ${problem}`);
  return name;
}

export function macOrThrow(s: string): string {
  const mac = normalizeMac(s);
  if (mac === undefined) throw new HttpError(400, `${JSON.stringify(s.slice(0, 40))} is not a MAC address (expected e.g. aa-bb-cc-dd-ee-ff)`);
  return mac;
}

export function flag(url: URL, name: string): boolean {
  const v = url.searchParams.get(name);
  return v !== null && v !== '0' && v !== 'false';
}

export function optionalSize(v: string | null | undefined, what: string): number | undefined {
  if (v === null || v === undefined || v === '') return undefined;
  if (!/^\d{1,16}$/.test(v.trim())) throw new HttpError(400, `${what} must be a size in bytes, got ${JSON.stringify(v.slice(0, 40))}`);
  return Number(v.trim());
}

export function sha256Param(v: unknown, what: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string' || !/^[0-9a-fA-F]{64}$/.test(v.trim())) throw new HttpError(400, `${what} must be a sha256 in hex (64 characters)`);
  return v.trim().toLowerCase();
}
