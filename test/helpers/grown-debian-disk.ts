// Checks of a disk the agent deployed one of the Debian test images onto (msdos kinds: lvm,
// plain) and grew to the disk's size: on the host from the disk file (the partition table), and
// from the marker line the deployed Debian prints when the disk boots alone. Shared by the e2e
// files that deploy those images (deploy-debian, firmware-netboot).
import assert from 'node:assert/strict';
import { partitionsOfFile } from './disk-file-layout.ts';
import type { TestImage } from './test-image.ts';

const GiB = 1024 ** 3;

/** The last partition ends at the end of the disk (the MBR's, 1 MiB aligned); /boot did not move. */
export function assertPartitionGrown(disk: string, image: TestImage, diskBytes: number): { start: number; size: number } {
  const parts = partitionsOfFile(disk);
  assert.equal(parts.length, 2);
  assert.equal(parts[0].start, image.bootPartition.startSector, '/boot stays where it was');
  assert.equal(parts[0].size, image.bootPartition.sectors);
  const root = parts[1];
  assert.equal(root.start, image.rootPartition.startSector);
  assert.equal(root.start + root.size, diskBytes / 512, 'the last partition ends at the end of the disk');
  assert.ok(root.size > image.rootPartition.sectors);
  return root;
}

/** The fields of the marker line (`BOOTY-TEST-MARKER k=v ...`), from the text after the marker. */
export function markerFields(text: string): Record<string, string> {
  return Object.fromEntries(text.trim().split(/\s+/).map((kv) => kv.split('=') as [string, string]));
}

/** The marker of a deployed disk of `diskBytes` (4 GiB): a root filesystem of about the disk minus /boot. */
export function assertGrownMarker(fields: Record<string, string>, image: TestImage, bootDisk: string, diskBytes: number): void {
  assert.equal(fields.variant, image.kind);
  assert.equal(fields.boot_disk, bootDisk);
  assert.equal(Number(fields.disk_bytes), diskBytes);
  const rootfs = Number(fields.rootfs_bytes);
  const imageRootPartition = image.rootPartition.sectors * 512;
  assert.ok(imageRootPartition < 2 * GiB && rootfs > diskBytes - 0.6 * GiB && rootfs < diskBytes - 256 * 1024 ** 2,
    `root filesystem ${rootfs} bytes: not about ${diskBytes / GiB} GiB minus /boot (the image's root partition had ${imageRootPartition})`);
}
