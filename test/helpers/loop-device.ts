// Loop devices for integration tests (root): attach a file, find its partitions, and always
// detach what was attached, also when a test fails (call detachAllLoops() in an after() hook).
import { execFileSync } from 'node:child_process';

const attached = new Set<string>();

/** Attaches `file` to a free loop device and returns its path (/dev/loopN). */
export function attachLoop(file: string): string {
  const dev = execFileSync('losetup', ['-f', '--show', file], { encoding: 'utf8' }).trim();
  attached.add(dev);
  return dev;
}

/** Makes the kernel create /dev/loopNpM nodes for the partition table on `dev`. Uses partx
 *  (BLKPG): some kernels (this CI host's) have no GPT/MBR parser, so BLKRRPART finds nothing. */
export function addPartitions(dev: string): void {
  execFileSync('partx', ['-a', dev], { stdio: ['ignore', 'ignore', 'pipe'] });
}

export function detachLoop(dev: string): void {
  try { execFileSync('partx', ['-d', dev], { stdio: 'ignore' }); } catch { /* none */ }
  try { execFileSync('losetup', ['-d', dev], { stdio: 'ignore' }); } catch { /* already gone */ }
  attached.delete(dev);
}

export function detachAllLoops(): void {
  for (const dev of [...attached]) detachLoop(dev);
}
