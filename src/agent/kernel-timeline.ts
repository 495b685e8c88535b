// When the kernel unpacked the initramfs and ran /init, in seconds since it started, read back
// from its own log (/dev/kmsg keeps every record, `quiet` or not: `quiet` only keeps them off the
// console). One agent line then tells where the time before booty's first line went (kernel,
// initramfs unpack, node's own start), in the guest's clock, on any boot.
import fs from 'node:fs';

export interface KernelTimeline {
  /** "Trying to unpack rootfs image as initramfs..." */
  unpackStart?: number;
  /** "Freeing initrd memory: NK": the archive was unpacked and its memory given back */
  unpackEnd?: number;
  freedKiB?: number;
  /** "Run /init as init process" */
  initRun?: number;
}

/** Reads the kernel's timestamps out of /dev/kmsg records ("6,339,5140900,-;Freeing initrd memory: 52640K"). */
export function parseKernelTimeline(records: Iterable<string>): KernelTimeline {
  const t: KernelTimeline = {};
  for (const rec of records) {
    const semi = rec.indexOf(';');
    if (semi < 0) continue;
    const usec = Number(rec.slice(0, semi).split(',')[2]);
    if (!Number.isFinite(usec)) continue;
    const s = usec / 1e6;
    const text = rec.slice(semi + 1);
    if (t.unpackStart === undefined && text.startsWith('Trying to unpack rootfs image as initramfs')) t.unpackStart = s;
    const freed = /^Freeing initrd memory: (\d+)K/.exec(text);
    if (freed !== null && t.unpackEnd === undefined) { t.unpackEnd = s; t.freedKiB = Number(freed[1]); }
    if (t.initRun === undefined && /^Run \S*init as init process/.test(text)) t.initRun = s;
  }
  return t;
}

/** The records /dev/kmsg holds now (non-blocking: stops at the newest), at most `max`. */
export function readKmsg(max = 4000, file = '/dev/kmsg'): string[] {
  const out: string[] = [];
  let fd: number;
  try { fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK); } catch { return out; }
  const buf = Buffer.alloc(8192);
  try {
    while (out.length < max) {
      let n: number;
      try {
        n = fs.readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        // EPIPE: records overwritten while reading (the next read goes on with the oldest kept)
        if ((e as NodeJS.ErrnoException).code === 'EPIPE') continue;
        break; // EAGAIN: no more records
      }
      if (n <= 0) break;
      out.push(buf.toString('utf8', 0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

/** One line for the agent's log, or undefined when the kernel's log had none of it. */
export function describeKernelTimeline(t: KernelTimeline): string | undefined {
  const parts: string[] = [];
  if (t.unpackStart !== undefined && t.unpackEnd !== undefined) {
    parts.push(`initramfs unpacked ${t.unpackStart.toFixed(3)} -> ${t.unpackEnd.toFixed(3)} s (${(t.unpackEnd - t.unpackStart).toFixed(2)} s${t.freedKiB === undefined ? '' : `, ${(t.freedKiB / 1024).toFixed(1)} MiB archive`})`);
  }
  if (t.initRun !== undefined) parts.push(`/init run at ${t.initRun.toFixed(3)} s`);
  return parts.length === 0 ? undefined : `kernel: ${parts.join('; ')}`;
}
