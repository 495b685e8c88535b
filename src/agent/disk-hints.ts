// Whether a disk matches the action's disk hints, and in words why not: the no-match error lists
// every disk with what it has and what it lacks, so the operator can fix the hint from the
// console alone. Pure: works on BlockEntry values (see block-snapshot.ts for where they come from).
import type { DiskHints } from '../config/action.ts';
import { formatSize } from '../config/disk-size.ts';
import type { BlockEntry } from './disk-choice.ts';

/** Serial numbers and WWNs compare without case or padding; WWN prefixes are only notation. */
function normalizeId(s: string): string {
  return s.trim().replace(/\s+/g, ' ').toLowerCase();
}

/** "0x5000C500A1B2C3D4", "naa.5000c500a1b2c3d4", "wwn-0x5000c500a1b2c3d4" are the same WWN. */
export function normalizeWwn(s: string): string {
  return normalizeId(s).replace(/^wwn-/, '').replace(/^(0x|naa\.|eui\.)/, '');
}

function stripPrefix(s: string, prefix: string): string {
  return s.startsWith(prefix) ? s.slice(prefix.length) : s;
}

const q = (s: string) => JSON.stringify(s);

/** Every given hint the disk fails, in words; empty when it matches them all. */
export function hintMismatches(e: BlockEntry, h: DiskHints): string[] {
  const out: string[] = [];
  const bytes = e.sizeSectors * 512;
  if (h.name !== undefined) {
    const want = stripPrefix(h.name, '/dev/');
    if (e.name !== want) out.push(`name is ${e.name}, not ${want}`);
  }
  if (h.minSize !== undefined && bytes < h.minSize) out.push(`size ${formatSize(bytes)} is below minSize ${formatSize(h.minSize)}`);
  if (h.maxSize !== undefined && bytes > h.maxSize) out.push(`size ${formatSize(bytes)} is above maxSize ${formatSize(h.maxSize)}`);
  if (h.serial !== undefined) {
    if (e.serial === undefined) out.push(`no serial number readable (wanted ${q(h.serial)})`);
    else if (normalizeId(e.serial) !== normalizeId(h.serial)) out.push(`serial is ${q(e.serial)}, not ${q(h.serial)}`);
  }
  if (h.model !== undefined) {
    if (e.model === undefined) out.push(`no model readable (wanted ${q(h.model)})`);
    else if (!normalizeId(e.model).includes(normalizeId(h.model))) out.push(`model ${q(e.model)} does not contain ${q(h.model)}`);
  }
  if (h.vendor !== undefined) {
    if (e.vendor === undefined) out.push(`no vendor readable (wanted ${q(h.vendor)})`);
    else if (!normalizeId(e.vendor).includes(normalizeId(h.vendor))) out.push(`vendor ${q(e.vendor)} does not contain ${q(h.vendor)}`);
  }
  if (h.wwn !== undefined) {
    if (e.wwn === undefined) out.push(`no WWN readable (wanted ${q(h.wwn)})`);
    else if (normalizeWwn(e.wwn) !== normalizeWwn(h.wwn)) out.push(`WWN is ${q(e.wwn)}, not ${q(h.wwn)}`);
  }
  if (h.rotational !== undefined) {
    if (e.rotational === undefined) out.push('the kernel does not say whether it is rotational');
    else if (e.rotational !== h.rotational) out.push(e.rotational ? 'rotational (a spinning disk), wanted an SSD' : 'not rotational (an SSD), wanted a spinning disk');
  }
  if (h.hctl !== undefined) {
    if (e.hctl === undefined) out.push(`no SCSI address (not a SCSI/SATA disk; wanted hctl ${h.hctl})`);
    else if (e.hctl !== h.hctl) out.push(`hctl is ${e.hctl}, not ${h.hctl}`);
  }
  if (h.byPath !== undefined) {
    const want = stripPrefix(h.byPath, '/dev/disk/by-path/');
    const have = e.byPath ?? [];
    if (have.length === 0) out.push(`by-path name unknown (wanted ${want})`);
    else if (!have.includes(want)) out.push(`by-path is ${have.join(' or ')}, not ${want}`);
  }
  if (h.transport !== undefined) {
    if (e.transport === undefined) out.push(`transport unknown (wanted ${h.transport})`);
    else if (e.transport !== h.transport) out.push(`transport is ${e.transport}, not ${h.transport}`);
  }
  return out;
}

/** One disk with everything a hint can match on, e.g. for the no-match error. */
export function describeDisk(e: BlockEntry): string {
  const parts = [formatSize(e.sizeSectors * 512)];
  if (e.model !== undefined) parts.push(`model ${q(e.model)}`);
  if (e.vendor !== undefined) parts.push(`vendor ${q(e.vendor)}`);
  parts.push(e.serial === undefined ? 'no serial' : `serial ${q(e.serial)}`);
  if (e.wwn !== undefined) parts.push(`wwn ${q(e.wwn)}`);
  if (e.rotational !== undefined) parts.push(e.rotational ? 'rotational' : 'non-rotational');
  if (e.transport !== undefined) parts.push(e.transport);
  if (e.hctl !== undefined) parts.push(`hctl ${e.hctl}`);
  if (e.byPath !== undefined && e.byPath.length > 0) parts.push(`by-path ${e.byPath[0]}`);
  return `/dev/${e.name}: ${parts.join(', ')}`;
}
