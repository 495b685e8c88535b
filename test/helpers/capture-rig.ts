// What the capture round-trip tests start from: an ext4 disk image on a loop device (the source),
// a bigger empty file on another loop device (the deploy target) and a booty server, in one
// temporary directory; close() takes it all down. Needs root.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startBootyServer, type BootyServerProcess } from './booty-server-process.ts';
import { makeExt4DiskImage } from './ext4-disk-image.ts';
import { attachLoop, detachAllLoops } from './loop-device.ts';

export interface CaptureRig {
  dir: string;
  /** the source's backing file */
  img: string;
  /** loop device over `img` */
  source: string;
  /** the target's backing file */
  targetFile: string;
  /** loop device over `targetFile` */
  target: string;
  server: BootyServerProcess;
  close(): Promise<void>;
}

export async function startCaptureRig(name: string, o: { sourceMiB: number; randomMiB?: number; targetMiB: number }): Promise<CaptureRig> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `booty-${name}-`));
  const img = path.join(dir, 'source.img');
  makeExt4DiskImage(img, { sizeMiB: o.sourceMiB, ...(o.randomMiB !== undefined ? { randomMiB: o.randomMiB } : {}) });
  const source = attachLoop(img);
  const targetFile = path.join(dir, 'target.img');
  execFileSync('truncate', ['-s', `${o.targetMiB}M`, targetFile]);
  const target = attachLoop(targetFile);
  const server = await startBootyServer();
  return {
    dir, img, source, targetFile, target, server,
    async close() {
      detachAllLoops();
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
