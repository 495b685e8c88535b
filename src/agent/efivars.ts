// efivarfs on /sys/firmware/efi/efivars, so the inventory can read the Secure Boot state. Only on
// UEFI machines, only when nothing mounted it yet; a failure leaves that state unknown.
import fs from 'node:fs';
import { mount, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY } from '../sys/mount.ts';

const dir = '/sys/firmware/efi/efivars';

/** undefined when mounted or not needed; else why not (for the log). */
export function mountEfivars(loadModule: (name: string) => void = () => {}): string | undefined {
  if (!fs.existsSync('/sys/firmware/efi')) return undefined;
  // efivarfs is a module in Debian's kernel, not one a modalias asks for
  loadModule('efivarfs');
  try { if (fs.readdirSync(dir).length > 0) return undefined; } catch { return `${dir} is missing`; }
  try {
    // read-only: the inventory only reads; whoever writes boot entries remounts or mounts its own
    mount('efivarfs', dir, 'efivarfs', MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY);
    return undefined;
  } catch (e) {
    return `cannot mount efivarfs (${(e as Error).message})`;
  }
}
