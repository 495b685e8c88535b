// The Boot#### entry booty writes after a deploy on a UEFI machine, and the BootOrder around it.
// Pure decisions over an EfiVarStore: which number, which old entries go, where the new one
// stands. register.ts finds the facts (ESP, loader) and calls planBootEntry/applyBootEntry.
import {
  bootVarName, encodeBootOrder, parseBootOrder, type EfiVarStore,
} from './efivars.ts';
import {
  decodeLoadOption, describePath, encodeLoadOption, filePathNode, hardDriveNode, isNetworkOption,
  LOAD_OPTION_ACTIVE, parseHardDrive, type HardDriveNode, type LoadOption,
} from './load-option.ts';

/** trial: BootOrder as network-first, and BootNext names the new entry for the next boot only */
export type BootOrderPolicy = 'network-first' | 'disk-first' | 'trial';

export interface BootEntryRequest {
  /** the disk's kernel name (sda, nvme0n1): part of the description, so booty's entries for it are found again */
  diskName: string;
  esp: HardDriveNode;
  /** the loader's path on the ESP, backslash-separated (\EFI\debian\shimx64.efi) */
  loader: string;
  /** names the OS in the description */
  osName: string;
  /** unique GUIDs of every partition on the disk now: an old booty entry naming one of them is this disk's */
  diskPartitionGuids: string[];
  order: BootOrderPolicy;
}

export interface BootEntryPlan {
  number: number;
  description: string;
  data: Buffer;
  /** booty's earlier entries for this disk, deleted (the new one may reuse the first number) */
  replaced: number[];
  orderBefore: number[];
  orderAfter: number[];
  /** entries the order counted as network boot (PXE/HTTP), in their order */
  network: number[];
  /** BootCurrent when it is one of them: the entry that netbooted booty, which stays first */
  via?: number;
  /** trial: BootNext, the new entry, for one boot (the firmware deletes BootNext when it uses it) */
  bootNext?: number;
}

const bootyTag = (disk: string) => `(booty, ${disk})`;

export function bootEntryDescription(osName: string, diskName: string): string {
  return `${osName} ${bootyTag(diskName)}`;
}

/** Is this an entry booty wrote for this disk (its tag for the disk, or its ESP's GUID with booty's tag)? */
function isOurs(o: LoadOption, req: BootEntryRequest): boolean {
  if (!/\(booty, [^)]+\)$/.test(o.description)) return false;
  if (o.description.endsWith(bootyTag(req.diskName))) return true;
  const guids = new Set(req.diskPartitionGuids.map((g) => g.toUpperCase()));
  return o.filePath.some((n) => {
    const hd = parseHardDrive(n);
    return hd !== undefined && guids.has(hd.partitionGuid.toUpperCase());
  });
}

function readOptions(store: EfiVarStore): Map<number, LoadOption | undefined> {
  const out = new Map<number, LoadOption | undefined>();
  for (const name of store.names()) {
    const m = /^Boot([0-9A-Fa-f]{4})$/.exec(name);
    if (m === null) continue;
    const data = store.get(name);
    let o: LoadOption | undefined;
    try { o = data === undefined ? undefined : decodeLoadOption(data); } catch { o = undefined; /* not ours to judge; left alone */ }
    out.set(parseInt(m[1], 16), o);
  }
  return out;
}

export function planBootEntry(store: EfiVarStore, req: BootEntryRequest): BootEntryPlan {
  const options = readOptions(store);
  const orderBefore = parseBootOrder(store.get('BootOrder'));
  const replaced = [...options].filter(([, o]) => o !== undefined && isOurs(o, req)).map(([n]) => n).sort((a, b) => a - b);
  let number = replaced[0];
  if (number === undefined) {
    number = 0;
    while (options.has(number)) number++;
    if (number > 0xffff) throw new Error('every Boot#### number from 0000 to FFFF is taken');
  }
  const description = bootEntryDescription(req.osName, req.diskName);
  const data = encodeLoadOption({
    attributes: LOAD_OPTION_ACTIVE, description,
    filePath: [hardDriveNode(req.esp), filePathNode(req.loader)], optionalData: Buffer.alloc(0),
  });
  const gone = new Set([...replaced, number]);
  const rest = orderBefore.filter((n) => !gone.has(n));
  const network = rest.filter((n) => { const o = options.get(n); return o !== undefined && isNetworkOption(o); });
  const others = rest.filter((n) => !network.includes(n));
  // The network entry the firmware booted booty through (BootCurrent) leads, and the new entry
  // follows it directly: when /ipxe answers `exit`, the firmware goes to the disk at once instead
  // of trying every other network entry first (OVMF: PXEv4, PXEv6, HTTPv4, HTTPv6, each waiting
  // for its timeout). The other network entries follow the new one.
  const current = store.get('BootCurrent');
  const via = current !== undefined && current.length >= 2 ? current.readUInt16LE(0) : undefined;
  let orderAfter: number[];
  if (req.order === 'disk-first') orderAfter = [number, ...rest];
  else if (via !== undefined && network.includes(via)) orderAfter = [via, number, ...network.filter((n) => n !== via), ...others];
  else orderAfter = [...network, number, ...others];
  return {
    number, description, data, replaced, orderBefore, orderAfter, network,
    ...(via !== undefined && network.includes(via) ? { via } : {}), ...(req.order === 'trial' ? { bootNext: number } : {}),
  };
}

/** Writes the plan: old entries deleted, the new Boot#### written, then BootOrder. */
export function applyBootEntry(store: EfiVarStore, plan: BootEntryPlan): void {
  for (const n of plan.replaced) if (n !== plan.number) store.delete(bootVarName(n));
  store.set(bootVarName(plan.number), plan.data);
  store.set('BootOrder', encodeBootOrder(plan.orderAfter));
  // written last: an interrupted write leaves at worst the network-first order, never a BootNext
  // naming an entry that does not exist
  if (plan.bootNext !== undefined) store.set('BootNext', encodeBootOrder([plan.bootNext]));
}

/** One line per entry, as the log shows the result: `Boot0004* Debian (booty, sda) HD(...)/File(...)`. */
export function describeEntries(store: EfiVarStore): string[] {
  const order = parseBootOrder(store.get('BootOrder'));
  const lines = [`BootOrder: ${order.map((n) => bootVarName(n).slice(4)).join(',')}`];
  for (const [n, o] of [...readOptions(store)].sort((a, b) => a[0] - b[0])) {
    lines.push(o === undefined ? `${bootVarName(n)} (unreadable)` : `${bootVarName(n)}${o.attributes & LOAD_OPTION_ACTIVE ? '*' : ' '} ${o.description} ${describePath(o)}`);
  }
  return lines;
}

// --- finding the loader on a mounted ESP ------------------------------------------------------

export interface EspListing {
  /** directory names under \EFI (as on the disk) */
  vendorDirs: string[];
  /** does this file exist (path relative to the ESP root, forward slashes, any case)? */
  exists(rel: string): boolean;
}

export interface FoundLoader { path: string; kind: 'shim' | 'grub' | 'systemd-boot' | 'fallback'; vendor: string }

/**
 * The loader a Boot#### entry should start, in the order distributions install them: shim (it
 * loads grub, and is the one signed for Secure Boot), grub, systemd-boot, then the removable
 * fallback \EFI\BOOT\BOOTX64.EFI. Vendor directories are taken in name order.
 */
export function findLoader(esp: EspListing): FoundLoader | undefined {
  const vendors = esp.vendorDirs.filter((d) => !/^(boot|systemd|linux|tools)$/i.test(d)).sort();
  for (const [file, kind] of [['shimx64.efi', 'shim'], ['grubx64.efi', 'grub']] as const) {
    for (const v of vendors) if (esp.exists(`EFI/${v}/${file}`)) return { path: `\\EFI\\${v}\\${file}`, kind, vendor: v };
  }
  const sd = esp.vendorDirs.find((d) => /^systemd$/i.test(d));
  if (sd !== undefined && esp.exists(`EFI/${sd}/systemd-bootx64.efi`)) return { path: `\\EFI\\${sd}\\systemd-bootx64.efi`, kind: 'systemd-boot', vendor: sd };
  const boot = esp.vendorDirs.find((d) => /^boot$/i.test(d));
  if (boot !== undefined && esp.exists(`EFI/${boot}/BOOTX64.EFI`)) return { path: `\\EFI\\${boot}\\BOOTX64.EFI`, kind: 'fallback', vendor: '' };
  return undefined;
}

const osNames: Record<string, string> = {
  debian: 'Debian', ubuntu: 'Ubuntu', fedora: 'Fedora', centos: 'CentOS', redhat: 'Red Hat Enterprise Linux',
  rocky: 'Rocky Linux', almalinux: 'AlmaLinux', opensuse: 'openSUSE', sles: 'SUSE Linux Enterprise',
  microsoft: 'Windows', arch: 'Arch Linux', nixos: 'NixOS', gentoo: 'Gentoo',
};

/** The OS's name from its vendor directory (\EFI\debian -> Debian); the fallback loader says "OS". */
export function osNameOf(loader: FoundLoader): string {
  if (loader.kind === 'systemd-boot') return 'Linux';
  if (loader.vendor === '') return 'OS';
  return osNames[loader.vendor.toLowerCase()] ?? loader.vendor;
}
