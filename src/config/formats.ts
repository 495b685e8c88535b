// The string formats the action schemas (schema.ts) name, as plain functions. Both ways of
// validating use exactly these: ajv at run time (schema-compile.ts, from the sources) and the
// validators ajv generates at build time for the bundle (src/build/schema-standalone.ts), whose
// code requires this module by name.
import { isIP } from 'node:net';
import { parseSize } from './disk-size.ts';
import { parseOciUrl } from './oci-reference.ts';

export const MAX_URL_LENGTH = 4096;
export const MAX_DEV_PATH_LENGTH = 255;

/** Absolute http(s) URL with a host, no whitespace or control characters. */
export function isHttpUrl(s: string): boolean {
  if (s.length === 0 || s.length > MAX_URL_LENGTH) return false;
  // new URL() silently trims and re-encodes; refuse anything it would have to repair.
  if (/[\s\u0000-\u001f\u007f\\]/.test(s)) return false;
  if (!/^https?:\/\/[^/?#]/i.test(s)) return false;
  let u: URL;
  try { u = new URL(s); } catch { return false; }
  return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
}

/** /dev/<name>[/<name>...]: no `..` or `.` segments, no empty segments, a sane alphabet. */
export function isDevPath(s: string): boolean {
  if (s.length > MAX_DEV_PATH_LENGTH || !/^\/dev\/[A-Za-z0-9._+:@=,/-]+$/.test(s)) return false;
  return s.slice(5).split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

/** Absolute path inside the deployed root filesystem (for post.files). */
export function isAbsPath(s: string): boolean {
  if (s.length > 1024 || !s.startsWith('/') || s.includes('\0')) return false;
  return s.slice(1).split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

export function isCidr(s: string): boolean {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s);
  if (m === null) return false;
  const family = isIP(m[1]);
  const bits = Number(m[2]);
  return family !== 0 && bits <= (family === 4 ? 32 : 128);
}

export function isHostname(s: string): boolean {
  return s.length <= 253 && s.split('.').every((l) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l));
}

/** Format name (the schemas' `format`) -> check. */
export const schemaFormats: Record<string, (s: string) => boolean> = {
  'http-url': isHttpUrl,
  'image-url': (s: string) => isHttpUrl(s) || (s.length <= MAX_URL_LENGTH && parseOciUrl(s) !== undefined),
  'dev-path': isDevPath,
  cidr: isCidr,
  ip: (s: string) => isIP(s) !== 0,
  hostname: isHostname,
  mountpoint: (s: string) => s === '/' || isAbsPath(s),
  'disk-size': (s: string) => parseSize(s) !== undefined,
};
