// BIOS or UEFI, and Secure Boot: the kernel creates /sys/firmware/efi only when it was started by
// UEFI firmware; the SecureBoot variable (EFI global variable GUID) holds 4 bytes of attributes
// and then one byte, 1 = enabled. The variable is read through efivarfs, which the agent mounts
// on /sys/firmware/efi/efivars when nothing did (mountEfivars); without it the state is unknown.
import fs from 'node:fs';
import path from 'node:path';
import type { MachineInventory } from '../config/inventory.ts';

export const EFI_GLOBAL_GUID = '8be4df61-93ca-11d2-aa0d-e088029e4a8c';

export function readFirmware(sysRoot = '/sys'): MachineInventory['firmware'] {
  const efi = path.join(sysRoot, 'firmware', 'efi');
  if (!fs.existsSync(efi)) return { mode: 'bios' };
  let secureBoot: boolean | undefined;
  try {
    const b = fs.readFileSync(path.join(efi, 'efivars', `SecureBoot-${EFI_GLOBAL_GUID}`));
    if (b.length >= 5) secureBoot = b[4] === 1;
  } catch { /* efivarfs not mounted, or firmware without the variable: unknown */ }
  return secureBoot === undefined ? { mode: 'uefi' } : { mode: 'uefi', secureBoot };
}
