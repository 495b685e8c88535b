// Which initramfs file of --boot-dir the iPXE scripts name and /boot/ serves. `booty
// build-initramfs` names its output by compression (booty.cpio.zst, .lz4 for machines without
// KVM, .gz, or plain booty.cpio), so a server that only knew booty.cpio.zst would 404 the
// build the README recommends for VMs. Without --initrd the server takes the newest of those
// files (the one built last: a rebuild with another compression leaves the old file behind),
// looked up at each request, since the operator may build while the server runs.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';

/** The kernel's file name in --boot-dir (`booty build-initramfs` writes it so). */
export const BOOT_KERNEL = 'vmlinuz';
/** The agent kernel's console arguments unless --console says otherwise. */
export const DEFAULT_CONSOLE = 'console=tty0 console=ttyS0,115200';

/** What `booty build-initramfs --compression zstd|lz4|gzip|none` writes, in that order. */
export const INITRD_NAMES = ['booty.cpio.zst', 'booty.cpio.lz4', 'booty.cpio.gz', 'booty.cpio'] as const;

/** The name when none of them exists yet (the /boot/ request then says how to build it). */
export const DEFAULT_INITRD = INITRD_NAMES[0];

/** When the regular file `name` in `dir` was last written; undefined when there is none. */
async function fileMtimeMs(dir: string, name: string): Promise<number | undefined> {
  try {
    const st = await stat(join(dir, name));
    return st.isFile() ? st.mtimeMs : undefined;
  } catch {
    return undefined;
  }
}

/** The initramfs to serve from `dir`: `explicit` when given, else the newest of INITRD_NAMES present. */
export async function chooseInitrd(dir: string, explicit?: string): Promise<string> {
  if (explicit !== undefined) return explicit;
  let best: { name: string; mtimeMs: number } | undefined;
  for (const name of INITRD_NAMES) {
    const mtimeMs = await fileMtimeMs(dir, name);
    if (mtimeMs !== undefined && (best === undefined || mtimeMs > best.mtimeMs)) best = { name, mtimeMs };
  }
  return best?.name ?? DEFAULT_INITRD;
}

/** An --initrd value: a file name inside --boot-dir, nothing that leaves it or needs quoting in iPXE. */
export function initrdNameProblem(name: string): string | undefined {
  if (!/^[A-Za-z0-9._-]+$/.test(name) || name === '.' || name === '..') return `--initrd must be a file name inside --boot-dir (letters, digits, '.', '_', '-'), not ${JSON.stringify(name)}`;
  return undefined;
}

/** What the server says at start about the files iPXE scripts will load: which ones, or which
 *  are missing (netbooting machines would get 404s) and how to make them. */
export async function describeBootFiles(dir: string, kernel: string, explicit?: string): Promise<{ ok: boolean; message: string }> {
  const initrd = await chooseInitrd(dir, explicit);
  const present = async (name: string) => await fileMtimeMs(dir, name) !== undefined;
  const missing = [
    ...(await present(kernel) ? [] : [kernel]),
    ...(await present(initrd) ? [] : [explicit !== undefined ? initrd : `initramfs (${INITRD_NAMES.join(', ')})`]),
  ];
  if (missing.length === 0) return { ok: true, message: `netbooting machines load ${kernel} and ${initrd} from ${dir}` };
  return { ok: false, message: `${dir} has no ${missing.join(' and no ')}: machines that netboot through /ipxe will fail to load them; build them with "booty build-initramfs" or point --boot-dir at them` };
}
