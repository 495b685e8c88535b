// NVMe admin commands through the kernel's passthrough ioctl (NVME_IOCTL_ADMIN_CMD on the
// namespace's block device, root only): Identify Controller / Namespace and Format NVM with Secure
// Erase Settings, which is how the `secure` wipe makes the drive erase itself. The command block
// is struct nvme_passthru_cmd of <linux/nvme_ioctl.h> (72 bytes), built by hand in a Buffer; the
// data buffer's address goes into it. The decoding of what Identify returns is pure and
// unit-tested (test/unit/wipe-nvme.test.ts).
import { check, errno, fn, koffi, sysError } from './libc.ts';

// _IOWR('N', 0x41, struct nvme_passthru_cmd) and _IO('N', 0x40)
export const NVME_IOCTL_ADMIN_CMD = 0xc0484e41;
export const NVME_IOCTL_ID = 0x4e40;
export const PASSTHRU_CMD_SIZE = 72;

const OPC_IDENTIFY = 0x06;
const OPC_FORMAT_NVM = 0x80;

type IoctlCmd = ((fd: number, req: number, cmd: Buffer) => number) & {
  async(fd: number, req: number, cmd: Buffer, cb: (err: unknown, res: number) => void): void;
};
type IoctlNone = (fd: number, req: number, arg: number) => number;
const ioctlCmd = () => fn<IoctlCmd>('int ioctl(int fd, unsigned long req, void *cmd)');
const ioctlNone = () => fn<IoctlNone>('int ioctl(int fd, unsigned long req, unsigned long arg)');

export interface AdminCommand {
  opcode: number;
  nsid: number;
  cdw10?: number;
  cdw11?: number;
  /** data the device writes (Identify) */
  data?: Buffer;
  timeoutMs?: number;
}

/** struct nvme_passthru_cmd for `c`, with `dataAddress` where its data buffer lives. */
export function encodePassthru(c: AdminCommand, dataAddress: bigint): Buffer {
  const b = Buffer.alloc(PASSTHRU_CMD_SIZE);
  b.writeUInt8(c.opcode, 0);
  b.writeUInt32LE(c.nsid >>> 0, 4);
  b.writeBigUInt64LE(c.data === undefined ? 0n : dataAddress, 24);
  b.writeUInt32LE(c.data?.length ?? 0, 36);
  b.writeUInt32LE((c.cdw10 ?? 0) >>> 0, 40);
  b.writeUInt32LE((c.cdw11 ?? 0) >>> 0, 44);
  b.writeUInt32LE(c.timeoutMs ?? 0, 64);
  return b;
}

/** The controller's answer when it refused a command: an NVMe status (positive ioctl result). */
export class NvmeStatusError extends Error {
  readonly what: string;
  readonly status: number;
  constructor(what: string, status: number) {
    super(`${what}: the controller answered NVMe status 0x${status.toString(16)} (${describeStatus(status)})`);
    this.what = what;
    this.status = status;
  }
}

export function describeStatus(status: number): string {
  const sct = (status >> 8) & 0x7;
  const sc = status & 0xff;
  if (sct === 0 && sc === 0x01) return 'invalid command opcode: not supported';
  if (sct === 0 && sc === 0x02) return 'invalid field in command';
  if (sct === 1 && sc === 0x0a) return 'invalid format';
  if (sct === 0 && sc === 0x1d) return 'sanitize in progress';
  return `status code type ${sct}, status code 0x${sc.toString(16)}`;
}

function runCommand(fd: number, c: AdminCommand, what: string): Promise<void> {
  const cmd = encodePassthru(c, c.data === undefined ? 0n : koffi().address(c.data));
  // the data buffer must outlive the call on the worker thread: the closure holds it
  const data = c.data;
  return new Promise((resolve, reject) => {
    // on koffi's worker thread: a format may take minutes on a large drive
    ioctlCmd().async(fd, NVME_IOCTL_ADMIN_CMD, cmd, (err, res) => {
      if (err) reject(err instanceof Error ? err : new Error(String(err)));
      else if (res < 0) reject(sysError(`ioctl(NVME_IOCTL_ADMIN_CMD, ${what})`, errno() || 25));
      else if (res > 0) reject(new NvmeStatusError(what, res));
      else resolve();
      void data;
    });
  });
}

/** The namespace id of an NVMe namespace block device. */
export function namespaceId(fd: number): number {
  return check(ioctlNone()(fd, NVME_IOCTL_ID, 0), 'ioctl(NVME_IOCTL_ID)');
}

export async function identifyController(fd: number): Promise<Buffer> {
  const data = Buffer.alloc(4096);
  await runCommand(fd, { opcode: OPC_IDENTIFY, nsid: 0, cdw10: 1, data }, 'Identify Controller');
  return data;
}

export async function identifyNamespace(fd: number, nsid: number): Promise<Buffer> {
  const data = Buffer.alloc(4096);
  await runCommand(fd, { opcode: OPC_IDENTIFY, nsid, cdw10: 0, data }, 'Identify Namespace');
  return data;
}

export interface ControllerCaps {
  model: string;
  serial: string;
  /** OACS bit 1 */
  formatSupported: boolean;
  /** FNA bit 0: a format applies to every namespace of the controller */
  formatAllNamespaces: boolean;
  /** FNA bit 1: a secure erase applies to every namespace */
  eraseAllNamespaces: boolean;
  /** FNA bit 2 */
  cryptoEraseSupported: boolean;
  /** SANICAP bits 0-2: crypto erase, block erase, overwrite */
  sanitize: { crypto: boolean; block: boolean; overwrite: boolean };
  /** NN: number of namespaces */
  namespaces: number;
}

export function parseIdentifyController(d: Buffer): ControllerCaps {
  const oacs = d.readUInt16LE(256);
  const fna = d[524];
  const sanicap = d.readUInt32LE(328);
  return {
    serial: d.subarray(4, 24).toString('latin1').trim(),
    model: d.subarray(24, 64).toString('latin1').trim(),
    formatSupported: (oacs & 0x2) !== 0,
    formatAllNamespaces: (fna & 0x1) !== 0,
    eraseAllNamespaces: (fna & 0x2) !== 0,
    cryptoEraseSupported: (fna & 0x4) !== 0,
    sanitize: { crypto: (sanicap & 1) !== 0, block: (sanicap & 2) !== 0, overwrite: (sanicap & 4) !== 0 },
    namespaces: d.readUInt32LE(516),
  };
}

export interface NamespaceFormat {
  /** the LBA format index in use (FLBAS bits 3:0, and 6:5 above 16 formats) */
  lbaf: number;
  /** FLBAS bit 4: metadata transferred at the end of the data LBA */
  metadataExtended: boolean;
  /** DPS bits 2:0 (protection information type) and bit 3 (PI first) */
  pi: number;
  pil: boolean;
  /** bytes per logical block of the format in use (LBADS) */
  blockSize: number;
}

export function parseIdentifyNamespace(d: Buffer): NamespaceFormat {
  const flbas = d[26];
  const dps = d[29];
  const lbaf = (flbas & 0xf) | (((flbas >> 5) & 0x3) << 4);
  const lbads = d[128 + lbaf * 4 + 2];
  return { lbaf, metadataExtended: (flbas & 0x10) !== 0, pi: dps & 0x7, pil: (dps & 0x8) !== 0, blockSize: 2 ** lbads };
}

/** Format NVM's CDW10: the same format as now (LBA format, metadata, protection), and `ses`
 *  (1 = user data erase, 2 = cryptographic erase). */
export function formatCdw10(f: NamespaceFormat, ses: 0 | 1 | 2): number {
  return (f.lbaf & 0xf) | ((f.metadataExtended ? 1 : 0) << 4) | ((f.pi & 0x7) << 5) | ((f.pil ? 1 : 0) << 8) | ((ses & 0x7) << 9) | (((f.lbaf >> 4) & 0x3) << 12);
}

/** Format NVM of namespace `nsid`, keeping its format, with Secure Erase Settings `ses`. */
export async function formatNvm(fd: number, nsid: number, f: NamespaceFormat, ses: 0 | 1 | 2, timeoutMs: number): Promise<void> {
  await runCommand(fd, { opcode: OPC_FORMAT_NVM, nsid, cdw10: formatCdw10(f, ses), timeoutMs }, `Format NVM (SES=${ses})`);
}
