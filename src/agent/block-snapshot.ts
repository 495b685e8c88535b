// Reads /sys/class/block into the snapshot disk-choice.ts decides on: for each whole disk also
// what disk hints match on (serial, model, vendor, WWN, rotational, SCSI address, by-path name).
// Tolerant: a file a driver does not provide (virtio has no model, NVMe no vendor, an old kernel
// no wwid) leaves that property undefined; nothing here throws. There is no udev in the
// initramfs, so /dev/disk/by-* does not exist: the by-path name is derived from the sysfs path
// the way udev's path_id derives it, for the transports booty meets (virtio, NVMe, SATA, SCSI).
import fs from 'node:fs';
import path from 'node:path';
import type { BlockEntry } from './disk-choice.ts';

function readTrim(p: string): string | undefined {
  try { return fs.readFileSync(p, 'utf8').trim(); } catch { return undefined; }
}

/** Printable ASCII, trimmed (SCSI pads with spaces, some firmware with NULs); undefined when empty. */
function printable(s: string | undefined): string | undefined {
  if (s === undefined) return undefined;
  const t = s.replace(/[^\x20-\x7e]/g, ' ').trim().replace(/\s+/g, ' ');
  return t === '' ? undefined : t;
}

/** SCSI VPD page 0x80 (unit serial number): 4-byte header, byte 3 = length, then ASCII. */
export function serialFromVpd80(buf: Buffer): string | undefined {
  if (buf.length < 4 || buf[1] !== 0x80) return undefined;
  const len = buf.readUInt16BE(2);
  return printable(buf.subarray(4, 4 + len).toString('latin1'));
}

function readVpd80(p: string): string | undefined {
  try { return serialFromVpd80(fs.readFileSync(p)); } catch { return undefined; }
}

function realpath(p: string): string | undefined {
  try { return fs.realpathSync(p); } catch { return undefined; }
}

const pciAddress = /^[0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]$/i;
const scsiAddress = /^(\d+):(\d+):(\d+):(\d+)$/;

/**
 * udev's /dev/disk/by-path names for a disk (current name first, then the compatibility name),
 * from its sysfs path: `pci-<nearest PCI function>` plus the transport's part. Empty where the
 * transport is one udev names differently (USB, SAS, FC, iSCSI, Hyper-V) or has no PCI parent.
 * `classDir` is the sysfs class directory (…/sys/class), for ata_port and nvme lookups.
 */
export function byPathNames(devPath: string, name: string, classDir: string, nsid: string | undefined): string[] {
  let segs = devPath.split('/');
  let transport: string[] = [''];
  const scsiIdx = segs.findIndex((s) => scsiAddress.test(s));
  if (scsiIdx >= 0) {
    if (segs.some((s) => /^(usb\d+|rport-|end_device-|session\d+|vmbus_|VMBUS)/.test(s))) return [];
    const [, host, bus, target, lun] = scsiAddress.exec(segs[scsiIdx])!.map(Number);
    const ataIdx = segs.findIndex((s, i) => i < scsiIdx && /^ata\d+$/.test(s));
    if (ataIdx >= 0) {
      const ata = segs[ataIdx];
      const port = readTrim(path.join(classDir, 'ata_port', ata, 'port_no'))
        ?? readTrim(path.join(segs.slice(0, ataIdx + 1).join('/'), 'ata_port', ata, 'port_no'));
      if (port === undefined || !/^\d+$/.test(port)) return [];
      // behind a port multiplier the bus is the PMP link; otherwise master/slave is the target
      transport = [bus !== 0 ? `-ata-${port}.${bus}.0` : `-ata-${port}.${target}`, `-ata-${port}`];
      segs = segs.slice(0, ataIdx);
    } else {
      const hostIdx = segs.findIndex((s, i) => i < scsiIdx && /^host\d+$/.test(s));
      if (hostIdx < 0) return [];
      // udev numbers hosts relative to the lowest host on the same controller
      let base = host;
      try {
        for (const d of fs.readdirSync(segs.slice(0, hostIdx).join('/'))) {
          const m = /^host(\d+)$/.exec(d);
          if (m !== null) base = Math.min(base, Number(m[1]));
        }
      } catch { /* keep the absolute number */ }
      transport = [`-scsi-${host - base}:${bus}:${target}:${lun}`];
      segs = segs.slice(0, hostIdx);
    }
  } else if (/^nvme\d+n\d+$/.test(name)) {
    const id = nsid ?? /n(\d+)$/.exec(name)![1];
    transport = [`-nvme-${id}`];
    // with native NVMe multipath the disk sits under a virtual nvme-subsystem: the controller
    // (nvme0 for nvme0n1) is where the PCI function is
    if (!segs.some((s) => pciAddress.test(s))) {
      const ctrl = realpath(path.join(classDir, 'nvme', /^(nvme\d+)/.exec(name)![1]));
      if (ctrl === undefined) return [];
      segs = ctrl.split('/');
    }
  } else if (!segs.some((s) => /^virtio\d+$/.test(s))) {
    return [];
  }
  const pci = segs.findLast((s) => pciAddress.test(s));
  if (pci === undefined) return [];
  const names = transport.map((t) => `pci-${pci}${t}`);
  // udev's storage rules add virtio-pci-… for virtio-blk disks (vda…)
  if (/^vd[a-z]+$/.test(name)) names.push(`virtio-pci-${pci}`);
  return names;
}

/**
 * How a disk is attached, from its kernel name and resolved sysfs path: NVMe namespaces, libata
 * (SATA/PATA through AHCI and friends: an ataN segment), USB, MMC, SCSI (SAS HBAs, virtio-scsi,
 * any sd behind a SCSI host), virtio-blk (vdX under virtioN). undefined when none of these.
 */
export function transportOf(realPath: string, name: string): BlockEntry['transport'] {
  const segs = realPath.split('/');
  if (/^nvme\d+(c\d+)?n\d+$/.test(name)) return 'nvme';
  if (segs.some((s) => /^usb\d+$/.test(s))) return 'usb';
  if (/^mmcblk\d+$/.test(name)) return 'mmc';
  if (segs.some((s) => /^ata\d+$/.test(s))) return 'sata';
  if (segs.some((s) => scsiAddress.test(s))) return 'scsi';
  if (segs.some((s) => /^virtio\d+$/.test(s))) return 'virtio';
  return undefined;
}

function blockSize(s: string | undefined): number | undefined {
  const n = Number(s);
  return Number.isInteger(n) && n >= 512 ? n : undefined;
}

/** What disk hints match on, for a whole disk. */
function identity(dir: string, name: string, classDir: string): Partial<BlockEntry> {
  const dev = path.join(dir, 'device');
  const rot = readTrim(path.join(dir, 'queue', 'rotational'));
  const devLink = realpath(dev);
  const hctl = devLink === undefined ? undefined : path.basename(devLink);
  const real = realpath(dir);
  return {
    // virtio-blk: <disk>/serial; NVMe: the controller's serial; SCSI/SATA: VPD page 0x80
    serial: printable(readTrim(path.join(dir, 'serial'))) ?? printable(readTrim(path.join(dev, 'serial'))) ?? readVpd80(path.join(dev, 'vpd_pg80')),
    model: printable(readTrim(path.join(dev, 'model'))),
    vendor: printable(readTrim(path.join(dev, 'vendor'))),
    // NVMe namespaces: <disk>/wwid; SCSI/SATA: device/wwid
    wwn: printable(readTrim(path.join(dir, 'wwid'))) ?? printable(readTrim(path.join(dev, 'wwid'))) ?? printable(readTrim(path.join(dev, 'wwn'))),
    rotational: rot === '1' ? true : rot === '0' ? false : undefined,
    hctl: hctl !== undefined && scsiAddress.test(hctl) ? hctl : undefined,
    byPath: real === undefined ? [] : byPathNames(real, name, classDir, readTrim(path.join(dir, 'nsid'))),
    transport: real === undefined ? undefined : transportOf(real, name),
    logicalBlockSize: blockSize(readTrim(path.join(dir, 'queue', 'logical_block_size'))),
    physicalBlockSize: blockSize(readTrim(path.join(dir, 'queue', 'physical_block_size'))),
  };
}

function sectors(s: string | undefined): number {
  const n = Number(s ?? '0');
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

export function readBlockSnapshot(sysClassBlock = '/sys/class/block'): BlockEntry[] {
  let names: string[];
  try { names = fs.readdirSync(sysClassBlock); } catch { return []; }
  const classDir = path.dirname(sysClassBlock);
  return names.map((name) => {
    const dir = path.join(sysClassBlock, name);
    const partition = fs.existsSync(path.join(dir, 'partition'));
    let parent: string | undefined;
    if (partition) {
      // the entry is a symlink into .../<disk>/<partition>
      try { parent = path.basename(path.dirname(fs.realpathSync(dir))); } catch { parent = undefined; }
    }
    const entry: BlockEntry = {
      name,
      partition,
      parent,
      removable: readTrim(path.join(dir, 'removable')) === '1',
      readOnly: readTrim(path.join(dir, 'ro')) === '1',
      sizeSectors: sectors(readTrim(path.join(dir, 'size'))),
    };
    // NVMe multipath: the per-path nodes (nvme0c0n1) are hidden and have no /dev node
    if (readTrim(path.join(dir, 'hidden')) === '1') entry.hidden = true;
    if (partition) return entry;
    const id = identity(dir, name, classDir);
    for (const [k, v] of Object.entries(id)) {
      if (v !== undefined && !(Array.isArray(v) && v.length === 0)) (entry as unknown as Record<string, unknown>)[k] = v;
    }
    return entry;
  });
}
