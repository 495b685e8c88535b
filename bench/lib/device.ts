// The bench's target disk: a loop device over a preallocated file on /work's disk, a little larger
// than the image (as a real disk is), filled with a non-zero pattern before each deploy run so a
// peer that skips writing zeros must still leave the disk bit-exact.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { must, q } from './shell.ts';

export const TAIL_BYTES = 16 << 20;

export type Target = { file: string; dev: string; bytes: number };

/** partscan: losetup -P, for rows that partition the device (the kernel then takes BLKRRPART and BLKPG on it). */
export async function attachTarget(file: string, bytes: number, opts: { partscan?: boolean } = {}): Promise<Target> {
  await must(`rm -f ${q(file)} && fallocate -l ${bytes} ${q(file)}`);
  const dev = (await must(`losetup -f --show${opts.partscan === true ? ' -P' : ''} ${q(file)}`)).trim();
  return { file, dev, bytes };
}

export async function detachTarget(t: Target): Promise<void> {
  await must(`losetup -d ${q(t.dev)}`);
  await must(`rm -f ${q(t.file)}`);
}

/** Overwrites the whole device with 0xA5 bytes, flushed, so no earlier image survives by chance. */
export async function dirty(t: Target): Promise<void> {
  // (process substitution: tr ends on SIGPIPE, which pipefail would count as a failure)
  await must(`dd if=<(tr '\\0' '\\245' < /dev/zero) of=${q(t.dev)} bs=4M iflag=fullblock,count_bytes count=${t.bytes} oflag=direct conv=fsync status=none`);
}

/** sha256 of the device's first `bytes` bytes, read around the page cache. */
export async function hashDevice(t: Target, bytes: number): Promise<string> {
  const out = await must(`dd if=${q(t.dev)} bs=4M iflag=direct,count_bytes count=${bytes} status=none | sha256sum`);
  return out.split(' ')[0]!;
}

/** What the device offers for zero runs and discards (the loop driver maps both onto the file). */
export function deviceQueueInfo(t: Target): Record<string, string> {
  const name = basename(t.dev);
  const info: Record<string, string> = {};
  for (const key of ['write_zeroes_max_bytes', 'discard_max_bytes', 'logical_block_size']) {
    try {
      info[key] = readFileSync(`/sys/block/${name}/queue/${key}`, 'utf8').trim();
    } catch {
      info[key] = '?';
    }
  }
  return info;
}
