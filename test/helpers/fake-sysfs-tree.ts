// Builds a small sysfs look-alike in a temporary directory: devices/… with the real kernel's
// layout (PCI function, transport, block/<name>), class/block/<name> symlinks into it, and the
// `device` link a block directory has. readBlockSnapshot(<root>/class/block) reads it exactly as
// it reads /sys, so disk choice is tested on trees shaped like virtio, SATA, SCSI and NVMe ones.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface FakeDisk {
  name: string;
  /** below <root>/devices, up to and including the disk's own directory */
  devPath: string;
  /** size in bytes (written as 512-byte sectors) */
  bytes: number;
  /** files relative to the disk directory, e.g. 'queue/rotational', 'device/model' (string or raw bytes) */
  files?: Record<string, string | Buffer>;
  /** partition names to create below the disk */
  partitions?: string[];
}

export class FakeSysfs {
  readonly root: string;
  constructor() { this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-sysfs-')); }

  get classBlock(): string { return path.join(this.root, 'class', 'block'); }

  private write(p: string, content: string | Buffer): void {
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  }

  private link(classDir: string, name: string, target: string): void {
    const dir = path.join(this.root, 'class', classDir);
    fs.mkdirSync(dir, { recursive: true });
    fs.symlinkSync(path.relative(dir, target), path.join(dir, name));
  }

  addDisk(d: FakeDisk): this {
    const dir = path.join(this.root, 'devices', d.devPath);
    fs.mkdirSync(dir, { recursive: true });
    // the kernel's `device` link: the parent device (…/0:0:0:0 for …/0:0:0:0/block/sda,
    // …/nvme0 for …/nvme0/nvme0n1); virtual devices (loop, ram) have none
    if (!d.devPath.startsWith('virtual/')) {
      const parent = path.basename(path.dirname(dir)) === 'block' ? path.dirname(path.dirname(dir)) : path.dirname(dir);
      fs.symlinkSync(path.relative(dir, parent), path.join(dir, 'device'));
    }
    this.write(path.join(dir, 'size'), `${d.bytes / 512}\n`);
    for (const [rel, content] of Object.entries(d.files ?? {})) this.write(path.join(dir, rel), content);
    this.link('block', d.name, dir);
    for (const p of d.partitions ?? []) {
      const pdir = path.join(dir, p);
      this.write(path.join(pdir, 'partition'), '1\n');
      this.write(path.join(pdir, 'size'), '2048\n');
      this.link('block', p, pdir);
    }
    return this;
  }

  /** class/<cls>/<name> pointing at devices/<devPath>, with extra files in the target */
  addClassDevice(cls: string, name: string, devPath: string, files: Record<string, string> = {}): this {
    const dir = path.join(this.root, 'devices', devPath);
    fs.mkdirSync(dir, { recursive: true });
    for (const [rel, content] of Object.entries(files)) this.write(path.join(dir, rel), content);
    this.link(cls, name, dir);
    return this;
  }

  /**
   * A NIC as the kernel has it: devices/<pciPath>/net/<name> with `address`, `carrier`, `speed`
   * (absent: the read fails, as on a link that is down), `device` -> the PCI function, whose
   * `driver` links to bus/pci/drivers/<driver>; class/net/<name> -> it. No pciPath: a virtual NIC.
   */
  addNic(name: string, o: { pciPath?: string; mac: string; driver?: string; carrier?: '0' | '1'; speed?: string }): this {
    const dir = path.join(this.root, 'devices', o.pciPath === undefined ? `virtual/net/${name}` : `${o.pciPath}/net/${name}`);
    fs.mkdirSync(dir, { recursive: true });
    this.write(path.join(dir, 'address'), `${o.mac}\n`);
    if (o.carrier !== undefined) this.write(path.join(dir, 'carrier'), `${o.carrier}\n`);
    if (o.speed !== undefined) this.write(path.join(dir, 'speed'), `${o.speed}\n`);
    if (o.pciPath !== undefined) {
      const pci = path.join(this.root, 'devices', o.pciPath);
      fs.symlinkSync(path.relative(dir, pci), path.join(dir, 'device'));
      if (o.driver !== undefined) {
        const drv = path.join(this.root, 'bus', 'pci', 'drivers', o.driver);
        fs.mkdirSync(drv, { recursive: true });
        fs.symlinkSync(path.relative(pci, drv), path.join(pci, 'driver'));
      }
    }
    this.link('net', name, dir);
    return this;
  }

  /** a file anywhere below the root (class/dmi/id/..., firmware/efi/...) */
  addFile(rel: string, content: string | Buffer): this {
    this.write(path.join(this.root, rel), content);
    return this;
  }

  /** an empty directory below devices (e.g. a second SCSI host next to the one in use) */
  addDir(devPath: string): this {
    fs.mkdirSync(path.join(this.root, 'devices', devPath), { recursive: true });
    return this;
  }

  remove(): void { fs.rmSync(this.root, { recursive: true, force: true }); }
}

/** SCSI VPD page 0x80 as the kernel exposes it in device/vpd_pg80. */
export function vpd80(serial: string): Buffer {
  const s = Buffer.from(serial, 'latin1');
  const b = Buffer.alloc(4 + s.length);
  b[1] = 0x80;
  b.writeUInt16BE(s.length, 2);
  s.copy(b, 4);
  return b;
}

export const GiB = 2 ** 30;
