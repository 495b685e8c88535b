// A captured disk's filesystem tree, mounted read-only the way its OS mounts it: the root (found
// as post-deploy finds it: disk-filesystems.ts), then every block filesystem its /etc/fstab puts
// below / (a /boot, an ESP at /boot/efi, an LV for /var), each matched to one of THIS disk's
// partitions or LVs by UUID, LABEL, PARTUUID, PARTLABEL or LV path. Entries naming a filesystem
// that is not on this disk, or marked nofail and not mountable, are left out, said in the log;
// any other filesystem that does not mount fails the capture (a tarball without it is not the OS). Nothing is written to the disk:
// ext2/3/4 mount with noload and XFS with norecovery, so a journal left dirty is not replayed
// (the tree is then what the last clean state plus committed metadata hold; the log says so).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BootyError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { realBlockIO, type BlockIO } from '../disk/block-io.ts';
import { findOsRoot, listDiskFilesystems, rootCandidates, type DiskFilesystem } from '../disk/disk-filesystems.ts';
import { deactivateVg, splitMapperName } from '../disk/lvm.ts';
import { resolveInRoot } from '../disk/root-path.ts';
import { spawnToolRunner, type ToolRunner } from '../disk/tools.ts';
import { mountsBelowRoot, parseFstab, specKey, type FstabEntry } from './fstab-read.ts';

export interface MountedFilesystem {
  device: string;
  /** where it is mounted in the captured OS: '/', '/boot', '/boot/efi' */
  mountPoint: string;
  type: string;
}

export interface MountedTree {
  /** the host directory holding the tree */
  dir: string;
  mounted: MountedFilesystem[];
  /** fstab entries not archived, with why */
  leftOut: string[];
}

export interface TreeMountOptions {
  log: Logger;
  tools?: ToolRunner;
  io?: BlockIO;
}

/** blkid's view of one device (-p: probed now, never from a cache that may be stale). */
type Probe = Record<string, string>;

function failure(code: string, message: string, hint: string, cause?: unknown): BootyError {
  return new BootyError({ stage: 'read', code, message: `capture: ${message}`, diskState: 'intact', hint, cause });
}

/** Mount DISK's tree read-only, run FN on it, unmount everything (whatever FN did). */
export async function withDiskTreeMounted<T>(disk: string, o: TreeMountOptions, fn: (tree: MountedTree) => Promise<T>): Promise<T> {
  const tools = o.tools ?? spawnToolRunner();
  const io = o.io ?? realBlockIO();
  const { log } = o;
  const activated: string[] = [];
  const stack: string[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-capture-tree-'));
  try {
    const filesystems = await listDiskFilesystems(disk, tools, io, log, activated, 'capture');
    const root = await findOsRoot(filesystems, tools, log);
    if (root === undefined) {
      throw failure('NO_OS_ROOT', `no filesystem on ${disk} holds an OS root (/etc/os-release or /etc/fstab); tried ${rootCandidates(filesystems).join(', ') || 'none'}`,
        'a rootfs capture needs an ext4 or XFS root; capture the whole disk with --format gzip or zstd instead');
    }
    await mountReadOnly(tools, root.device, root.fstype, dir);
    stack.push(dir);
    const tree: MountedTree = { dir, mounted: [{ device: root.device, mountPoint: '/', type: root.fstype }], leftOut: [] };
    log.info(`capture: root filesystem ${root.device} (${root.fstype}) mounted read-only`);

    let fstabText = '';
    try { fstabText = fs.readFileSync(resolveInRoot(dir, '/etc/fstab'), 'utf8'); } catch { log.warn('capture: the root has no /etc/fstab; archiving the root filesystem alone'); }
    const probes = new Map<string, Probe>();
    for (const f of filesystems) if (f.device !== root.device) probes.set(f.device, await probe(tools, f.device));
    const used = new Set([root.device]);
    for (const entry of mountsBelowRoot(parseFstab(fstabText))) {
      const device = matchDevice(entry, filesystems, probes);
      if (device === undefined) {
        tree.leftOut.push(`${entry.mountPoint} (${entry.spec}): not on ${disk}`);
        log.warn(`capture: fstab mounts ${entry.spec} at ${entry.mountPoint}, which is not on ${disk}; not archived`);
        continue;
      }
      if (used.has(device)) {
        tree.leftOut.push(`${entry.mountPoint} (${entry.spec}): ${device} is already mounted`);
        log.warn(`capture: fstab mounts ${device} a second time, at ${entry.mountPoint}; archived once`);
        continue;
      }
      const target = resolveInRoot(dir, entry.mountPoint);
      if (!target.startsWith(dir + path.sep) || !isDirectory(target)) {
        tree.leftOut.push(`${entry.mountPoint} (${entry.spec}): no directory there in the root`);
        log.warn(`capture: fstab mounts ${device} at ${entry.mountPoint}, which is no directory in the root; not archived`);
        continue;
      }
      const type = probes.get(device)?.TYPE ?? entry.type;
      try {
        await mountReadOnly(tools, device, type, target);
      } catch (e) {
        // the OS itself boots without a nofail filesystem: the capture may do without it too
        if (!entry.options.includes('nofail')) throw e;
        tree.leftOut.push(`${entry.mountPoint} (${entry.spec}): ${device} did not mount (nofail)`);
        log.warn(`capture: ${device} (${type}) for ${entry.mountPoint} did not mount and its fstab entry says nofail; not archived: ${(e as Error).message}`);
        continue;
      }
      stack.push(target);
      used.add(device);
      tree.mounted.push({ device, mountPoint: entry.mountPoint, type });
      log.info(`capture: ${device} (${type}) mounted read-only at ${entry.mountPoint}`);
    }
    return await fn(tree);
  } finally {
    for (const m of stack.reverse()) {
      await tools.run('umount', [m], { stage: 'read' }).catch(async (e: unknown) => {
        log.warn(`capture: umount ${m} failed (${(e as Error).message}); detaching lazily`);
        await tools.run('umount', ['-l', m], { stage: 'read' }).catch(() => undefined);
      });
    }
    try { fs.rmdirSync(dir); } catch { /* still mounted after a lazy detach: the kernel finishes it */ }
    for (const vg of activated) {
      await deactivateVg(tools, vg).catch((e: unknown) => log.warn(`capture: could not deactivate volume group ${vg}: ${(e as Error).message}`));
    }
  }
}

/** Read-only without touching the disk: no journal replay (ext*: noload, XFS: norecovery). */
async function mountReadOnly(tools: ToolRunner, device: string, type: string, dir: string): Promise<void> {
  const options = /^ext[234]$/.test(type) ? 'ro,noload' : type === 'xfs' ? 'ro,norecovery' : 'ro';
  try {
    await tools.run('mount', ['-t', type, '-o', options, device, dir], { stage: 'read' });
  } catch (e) {
    throw failure('MOUNT_FAILED', `cannot mount ${device} (${type}) read-only: ${(e as Error).message}`,
      `a tarball without it would not be the OS; check that this kernel has ${type} (the agent's initramfs does) and the filesystem (fsck on a copy)`, e);
  }
}

async function probe(tools: ToolRunner, device: string): Promise<Probe> {
  const out: Probe = {};
  // exit 2: nothing recognised on the device
  const r = await tools.run('blkid', ['-p', '-o', 'export', device], { stage: 'read', okCodes: [0, 2] }).catch(() => undefined);
  for (const line of r?.stdout.split('\n') ?? []) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** The device of FILESYSTEMS that ENTRY's spec names, if it is on this disk. */
function matchDevice(entry: FstabEntry, filesystems: readonly DiskFilesystem[], probes: Map<string, Probe>): string | undefined {
  const want = specKey(entry.spec);
  // blkid -p reports a partition's table entry as PART_ENTRY_UUID / PART_ENTRY_NAME
  const field = { UUID: 'UUID', LABEL: 'LABEL', PARTUUID: 'PART_ENTRY_UUID', PARTLABEL: 'PART_ENTRY_NAME', DEVICE: '' }[want.key];
  if (want.key !== 'DEVICE') {
    const hits = filesystems.filter((f) => {
      const v = probes.get(f.device)?.[field];
      return v !== undefined && (want.key === 'UUID' || want.key === 'PARTUUID' ? v.toLowerCase() === want.value.toLowerCase() : v === want.value);
    });
    return hits.length === 1 ? hits[0]!.device : undefined;
  }
  // A device path: an LV (/dev/mapper/vg-lv, /dev/vg/lv) can be matched by name; a kernel name
  // (/dev/sda2) belonged to the machine the OS ran on, not to this one.
  const p = want.value;
  let vg: string | undefined;
  let lv: string | undefined;
  if (p.startsWith('/dev/mapper/')) [vg, lv] = splitMapperName(p.slice('/dev/mapper/'.length)) ?? [];
  else {
    const parts = p.replace(/^\/dev\//, '').split('/');
    if (parts.length === 2) [vg, lv] = parts;
  }
  return lv === undefined ? undefined : filesystems.find((f) => f.lv === lv && f.vg === vg)?.device;
}

function isDirectory(p: string): boolean {
  try { return fs.lstatSync(p).isDirectory(); } catch { return false; }
}
