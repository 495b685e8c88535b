// The codecs' SectorSource over an open file descriptor (a block device or an image file), and
// the matching way to apply a plan's writes. Synchronous on purpose: a table is a few KiB and the
// writes must land in order (GPT backup before primary).
import fs from 'node:fs';
import type { SectorSource, Write } from './types.ts';

export function fdSectorSource(fd: number, sizeBytes: number, sectorSize: number): SectorSource {
  return {
    sectorSize,
    sectors: Math.floor(sizeBytes / sectorSize),
    read(lba, count) {
      const buf = Buffer.alloc(count * sectorSize);
      let done = 0;
      while (done < buf.length) {
        const n = fs.readSync(fd, buf, done, buf.length - done, lba * sectorSize + done);
        if (n === 0) break; // past the end: the rest stays zero
        done += n;
      }
      return buf;
    },
  };
}

/** Write each change in order, then fsync so the kernel re-reads what we wrote. */
export function applyWritesToFd(fd: number, writes: Write[]): void {
  for (const w of writes) {
    let done = 0;
    while (done < w.data.length) done += fs.writeSync(fd, w.data, done, w.data.length - done, w.offset + done);
  }
  fs.fsyncSync(fd);
}
