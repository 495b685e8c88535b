// Disk sizes as operators write them in disk hints: a byte count, or a number with a unit.
// A bare letter or an "iB" unit is binary (G = GiB = 2^30, as lsblk and Ironic count); a unit
// ending in "B" alone is decimal (GB = 10^9, as disk labels count), because a "1TB" disk holds
// 10^12 bytes, which is less than 1 TiB.

// Exabytes would not fit: sizes are JavaScript numbers, exact up to 2^53 bytes (8 PiB).
const POWERS: Record<string, number> = { k: 1, m: 2, g: 3, t: 4, p: 5 };

/** Bytes for "100G", "1.5TiB", "500GB", "4096", 4096; undefined when it is not a size. */
export function parseSize(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*(?:(b)|([kmgtp])(i?b)?)?$/i.exec(v.trim());
  if (m === null) return undefined;
  const n = Number(m[1]);
  if (m[3] === undefined) return Number.isInteger(n) && Number.isSafeInteger(n) ? n : undefined;
  const unit = m[4]?.toLowerCase() === 'b' ? 1000 : 1024;
  const bytes = Math.round(n * unit ** POWERS[m[3].toLowerCase()]);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** "8.0 GiB (8589934592 bytes)": both, so the operator can compare with any tool's figure. */
export function formatSize(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = bytes;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${bytes} bytes` : `${v.toFixed(1)} ${units[i]} (${bytes} bytes)`;
}
