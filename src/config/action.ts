// The action a machine runs, in booty's own normalized form. Both the server (which stores and
// serves actions) and the agent (which validates and runs them) use these types. BOOTy's JSON
// (see README, "BOOTy compatibility") is accepted and normalized into the same shape.
//
// parseAction() validates with a JSON schema (ajv) and returns either a normalized Action or a
// BootyError (stage 'config') whose message names the offending field. It never touches a disk.

import type { Bootloader, RootfsLayout } from './rootfs-layout.ts';

export type ImageFormat = 'auto' | 'gzip' | 'zstd' | 'xz' | 'bzip2' | 'qcow2' | 'raw';
/** gzip/zstd/raw: the disk, byte for byte; tar, tar.gz, tar.zst: the files of its OS (a rootfs capture). */
export const CAPTURE_FORMATS = ['gzip', 'zstd', 'raw', 'tar', 'tar.gz', 'tar.zst'] as const;
export type CaptureFormat = typeof CAPTURE_FORMATS[number];
export type AfterAction = 'reboot' | 'poweroff' | 'shell';

export interface NetworkSettings {
  /** CIDR, e.g. 172.16.1.126/24 */
  address?: string;
  gateway?: string;
  nameservers?: string[];
  /** interface name in the deployed OS; default: the NIC the agent used */
  interface?: string;
}

export interface PostDeploy {
  hostname?: string;
  network?: NetworkSettings;
  /** files written into the deployed root filesystem: absolute path -> content */
  files?: Record<string, string>;
}

/** What runs when a trial boot was not confirmed in time: the same deploy again, a capture of
 *  the disk for forensics (to `trialCaptureUpload`), or booty's shell on the console. */
export type TrialFailureAction = 'redeploy' | 'capture' | 'shell';
export const DEFAULT_CONFIRM_WITHIN = 900;

export interface GrowSettings {
  /** partition number to grow to the end of the disk, or 'last' */
  partition: number | 'last';
  /** LV to extend to 100% of free space, e.g. /dev/ubuntu-vg/root; undefined = detect or skip */
  lvmRoot?: string;
}

/**
 * Which disk to use when the action names none (like Ironic's root device hints). Every given
 * hint must match; among the eligible disks (never partitions, loop/ram/zram/dm/md/optical,
 * removable, read-only or empty ones) that match all, the smallest is used. Sizes are bytes.
 */
export interface DiskHints {
  /** kernel name, with or without /dev/ (e.g. sda, /dev/nvme0n1) */
  name?: string;
  minSize?: number;
  maxSize?: number;
  /** exact, case-insensitive (virtio serial, SCSI/SATA VPD page 0x80, NVMe controller serial) */
  serial?: string;
  /** case-insensitive substring of the model, e.g. "SAMSUNG MZ7" */
  model?: string;
  /** case-insensitive substring of the vendor, e.g. "ATA" */
  vendor?: string;
  /** the disk's World Wide Name; "0x", "naa.", "eui.", "wwn-" prefixes and case are ignored */
  wwn?: string;
  /** false = SSD/NVMe only, true = spinning disks only */
  rotational?: boolean;
  /** SCSI host:channel:target:lun, e.g. 0:0:0:0 */
  hctl?: string;
  /** the /dev/disk/by-path name udev gives it, e.g. pci-0000:00:1f.2-ata-1.0 */
  byPath?: string;
  /** how it is attached (the inventory's transport): nvme, sata, scsi, virtio, usb, mmc */
  transport?: 'nvme' | 'sata' | 'scsi' | 'virtio' | 'usb' | 'mmc';
}

interface Common {
  /** what the agent does after success */
  after: AfterAction;
  /** what the agent does on failure */
  onError: AfterAction;
  /** on failure, zero the first 100 MiB of the target disk (BOOTy's wipeDevice) */
  wipeOnError: boolean;
  /** BOOTy's dryRun: validate and report, write nothing */
  dryRun: boolean;
}

export interface DeployAction extends Common {
  action: 'deploy';
  /** absolute http(s) URL of the image */
  image: string;
  /** target block device, e.g. /dev/sda; undefined = agent picks (diskHints, else first eligible disk) */
  disk?: string;
  /** how the agent picks the disk when `disk` is not given */
  diskHints?: DiskHints;
  sha256?: string;
  format: ImageFormat;
  /** uncompressed size in bytes, if known: checked against the disk before the first write */
  imageSize?: number;
  /** if the image changes on the server mid-deploy (ETag differs), start over from byte 0;
   *  default: fail, naming the change */
  restartOnChange?: boolean;
  /** credentials for an oci:// image's registry */
  registryAuth?: { username: string; password: string };
  /** refuse (before the first write) an image whose sha256 is unknown: no "sha256" here and no
   *  X-Image-Sha256 from the server */
  requireChecksum?: boolean;
  /** false: ignore the gzip access-point index the server announces (inflate as one stream);
   *  a string: the index's URL, for images hosted elsewhere (booty index writes one) */
  gzipIndex?: false | string;
  /** seconds without a byte before a connection is dropped and resumed (default 30) */
  stallTimeout?: number;
  /** seconds to keep reconnecting without progress before failing (default 600) */
  retryFor?: number;
  /** fetch the image from the peers of this machine's rack (BitTorrent) instead of the origin */
  p2p?: P2pSettings;
  /** on a UEFI machine, where the Boot#### entry booty writes for the deployed OS goes in BootOrder
   *  (default network-first: right after the PXE/HTTP entries); BIOS machines are left alone.
   *  trial: placed as network-first, plus BootNext for one boot of the new OS, which must confirm
   *  it booted within `confirmWithin` seconds (README "Trial boot") */
  bootOrder?: 'network-first' | 'disk-first' | 'trial';
  /** bootOrder trial: seconds from the deploy's result until the deployed OS must have confirmed
   *  (default 900) */
  confirmWithin?: number;
  /** bootOrder trial: what the next netboot after an unconfirmed trial runs (default redeploy) */
  onTrialFailure?: TrialFailureAction;
  /** onTrialFailure capture: where the disk goes (an upload URL, as a capture action's `upload`) */
  trialCaptureUpload?: string;
  /** false = leave partitions as the image has them */
  grow: GrowSettings | false;
  post?: PostDeploy;
}

export interface CaptureAction extends Common {
  action: 'capture';
  disk?: string;
  diskHints?: DiskHints;
  /** upload URL: booty server's PUT /images/<name>, or a BOOTy-style multipart POST endpoint */
  upload: string;
  format: CaptureFormat;
  level?: number;
  /** 'put' = booty's streaming PUT with sha256 check; 'multipart' = BOOTy's POST form field BootyImage */
  protocol: 'put' | 'multipart';
}

/**
 * Deploy a rootfs tarball (tar, tar.gz/.zst/.xz/.bz2): booty lays out the disk (`layout`), makes
 * the filesystems, extracts the tree, writes fstab and installs the boot loader through chroot.
 */
export interface RootfsDeployAction extends Common {
  action: 'deploy-rootfs';
  /** absolute http(s) URL of the tarball */
  rootfs: string;
  disk?: string;
  diskHints?: DiskHints;
  /** sha256 of the tarball as served */
  sha256?: string;
  /** default: GPT, 1 MiB BIOS boot, 512 MiB ESP, ext4 root filling the disk (defaultLayout()) */
  layout: RootfsLayout;
  bootloader: Bootloader;
  /** 'generate': fstab from the layout by UUID; 'keep': the tarball's own /etc/fstab */
  fstab: 'generate' | 'keep';
  /** on a UEFI machine, where the Boot#### entry for the installed grub goes (as for deploy) */
  bootOrder?: 'network-first' | 'disk-first';
  stallTimeout?: number;
  retryFor?: number;
  post?: PostDeploy;
}

/**
 * quick: zero the first 100 MiB and the last MiB (partition tables, boot loaders, signatures);
 * discard: BLKDISCARD of the whole disk; zero: the whole disk zeroed (BLKZEROOUT or written);
 * secure: the device's own erase (NVMe Format NVM, user data erase). Each ends with reads that
 * verify it (src/agent/wipe/). See README "Wiping a disk".
 */
export type WipeMethod = 'quick' | 'discard' | 'zero' | 'secure';

export interface WipeAction extends Common {
  action: 'wipe'; disk?: string; diskHints?: DiskHints;
  method: WipeMethod;
  /** when `method` cannot run on this disk: `zero` instead, or fail (`none`, the default) */
  fallback: 'zero' | 'none';
}
/** Report the hardware (as every boot does) and wait for an operator: the agent polls for its
 *  action every `pollSeconds` (default 10) and runs the first one that is not `inspect`. */
export interface InspectAction extends Common { action: 'inspect'; pollSeconds?: number }
export interface ShellAction extends Common { action: 'shell' }
/** Nothing to do: boot from the local disk (the agent reboots or powers off per `after`). */
export interface NoneAction extends Common { action: 'none' }

export type Action = DeployAction | RootfsDeployAction | CaptureAction | WipeAction | ShellAction | NoneAction | InspectAction;

/** Peer to peer inside a rack (README "Peer to peer inside a rack"). */
export interface P2pSettings {
  /** the rack: the tracker's announce scope (default "auto": the machine's subnet, as the tracker sees it) */
  rack?: string;
  /** the image's metainfo URL (default: booty server's /image-torrent/<name> beside /images/<name>) */
  metainfo?: string;
  /** seconds without a piece before the rest comes from the origin by HTTP Range (default 20) */
  stallTimeout?: number;
  /** MiB of RAM for pieces arriving out of order (default 64) */
  windowMiB?: number;
  /** MiB of RAM of written pieces kept for peers (default 64) */
  cacheMiB?: number;
}
