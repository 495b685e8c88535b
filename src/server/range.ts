// HTTP Range and If-Range handling for image downloads (RFC 9110 section 14). booty serves a
// single range; a multi-range request is answered with the whole image (allowed by the RFC),
// which is what a resuming agent never asks for anyway.

export type RangeDecision =
  | { kind: 'full' }                                     // 200, the whole representation
  | { kind: 'partial'; start: number; end: number }      // 206, bytes start..end inclusive
  | { kind: 'unsatisfiable' };                           // 416

/**
 * Decide how to answer `Range: <header>` for a file of `size` bytes. Syntactically invalid or
 * multi-range headers are ignored (full answer), as the RFC allows.
 */
export function parseRange(header: string | undefined, size: number): RangeDecision {
  if (header === undefined) return { kind: 'full' };
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (m === null) return { kind: 'full' };
  const [, a, b] = m;
  if (a === '' && b === '') return { kind: 'full' };
  if (a === '') {
    // suffix range: the last N bytes
    const n = Number(b);
    if (!Number.isSafeInteger(n)) return { kind: 'full' };
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Number(b);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end)) return { kind: 'full' };
  if (b !== '' && end < start) return { kind: 'full' }; // invalid range-spec: ignore the header
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end: Math.min(end, size - 1) };
}

/**
 * If-Range: the Range applies only when the validator still matches the current image. A strong
 * ETag must match exactly (weak ones never match); an HTTP date must equal Last-Modified.
 */
export function ifRangeAllows(ifRange: string | undefined, etag: string, lastModified: string): boolean {
  if (ifRange === undefined) return true;
  const v = ifRange.trim();
  if (v.startsWith('W/')) return false;
  if (v.startsWith('"')) return v === etag;
  return v === lastModified;
}

/** A stable strong ETag from what changes when the file is replaced or rewritten. */
export function etagFor(st: { size: number; mtimeMs: number; ino: number }): string {
  return `"${st.size.toString(16)}-${Math.floor(st.mtimeMs * 1000).toString(16)}-${st.ino.toString(16)}"`;
}

/** If-None-Match: true when one of the listed tags (or `*`) matches, so 304 may be answered. */
export function noneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  return header.split(',').map((t) => t.trim().replace(/^W\//, '')).includes(etag);
}
