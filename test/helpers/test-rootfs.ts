// The Debian 12 rootfs tarball of the rootfs-deploy end-to-end test (scripts/build-test-rootfs.sh),
// built on first use and cached like the disk images (test-image.ts).
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './qemu.ts';
import { testImageDir } from './test-image.ts';

export interface TestRootfs {
  tarball: string;
  sha256: string;
  bytes: number;
  treeBytes: number;
  kernel: string;
  /** what getcap prints for /usr/bin/ping in the tree, e.g. cap_net_raw=ep */
  pingCapability: string;
}

export async function ensureTestRootfs(): Promise<TestRootfs> {
  try {
    await promisify(execFile)('bash', [path.join(repoRoot, 'scripts', 'build-test-rootfs.sh')], { maxBuffer: 1 << 20 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`test rootfs: scripts/build-test-rootfs.sh failed: ${err.stderr?.slice(-4000) ?? err.message}`);
  }
  const dir = testImageDir();
  const m = JSON.parse(await readFile(path.join(dir, 'debian-rootfs.json'), 'utf8')) as {
    file: string; sha256: string; bytes: number; treeBytes: number; kernel: string; pingCapability: string;
  };
  return { tarball: path.join(dir, m.file), sha256: m.sha256, bytes: m.bytes, treeBytes: m.treeBytes, kernel: m.kernel, pingCapability: m.pingCapability };
}
