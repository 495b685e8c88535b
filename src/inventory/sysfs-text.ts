// Reading the small text files of sysfs and procfs: a file a driver or firmware does not provide
// (or that the kernel refuses to read, like `speed` on a link that is down) is simply unknown.
import fs from 'node:fs';

export function readText(p: string): string | undefined {
  try { return fs.readFileSync(p, 'utf8').trim(); } catch { return undefined; }
}

/** Printable ASCII, whitespace collapsed (DMI and SCSI strings are padded); undefined when empty. */
export function printable(s: string | undefined): string | undefined {
  if (s === undefined) return undefined;
  const t = s.replace(/[^\x20-\x7e]/g, ' ').trim().replace(/\s+/g, ' ');
  return t === '' ? undefined : t;
}

export function readInt(p: string): number | undefined {
  const s = readText(p);
  if (s === undefined || !/^-?\d+$/.test(s)) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}
