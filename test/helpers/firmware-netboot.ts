// Machines that boot the way servers do: QEMU with real firmware (SeaBIOS, or OVMF with a per-VM
// copy of its variable store), no -kernel: the NIC's own iPXE option ROM (Debian's ipxe-qemu)
// netboots, gets its DHCP answer from real dnsmasq configured with the project's recipe
// (kernel-cmdline/dnsmasq-pxe.conf), chains to `booty server`'s /ipxe and loads booty's kernel and
// initramfs over HTTP. Each start is one power-on: the disk image and the variable store persist
// between starts, -no-reboot ends QEMU at the guest's reboot or power-off.
import fs from 'node:fs';
import path from 'node:path';
import { detectAccel, logDir, repoRoot, TEST_DISK_CACHE, Vm, type AfterHook } from './qemu.ts';

export type Firmware = 'bios' | 'uefi';
export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
export const IPXE_ROM_E1000 = '/usr/lib/ipxe/qemu/efi-e1000.rom';

/** The dhcp-match and dhcp-boot lines of the README's dnsmasq recipe, pointed at `serverUrl`, as dnsmasq options. */
export function dnsmasqPxeRecipe(serverUrl: string): string[] {
  const conf = fs.readFileSync(path.join(repoRoot, 'kernel-cmdline', 'dnsmasq-pxe.conf'), 'utf8');
  const lines = conf.split('\n').map((l) => l.trim()).filter((l) => /^(dhcp-match|dhcp-boot)=/.test(l));
  if (!lines.some((l) => l.includes('http://10.0.0.1:3000/ipxe'))) throw new Error('dnsmasq-pxe.conf no longer chains to http://10.0.0.1:3000/ipxe');
  return lines.map((l) => `--${l.replaceAll('http://10.0.0.1:3000', serverUrl)}`);
}

export interface FirmwareVmOptions {
  name: string;
  firmware: Firmware;
  /** the machine's NVRAM (OVMF_VARS copy); made by newVarsFile */
  varsFile?: string;
  disk: string;
  diskBus: 'virtio' | 'sata';
  netns: string;
  tap: string;
  mac: string;
  memMiB?: number;
}

/** A fresh copy of OVMF's empty variable store for one machine. */
export function newVarsFile(dir: string, name: string): string {
  const p = path.join(dir, `${name}-OVMF_VARS.fd`);
  fs.copyFileSync(OVMF_VARS, p);
  return p;
}

/**
 * The QEMU arguments. SeaBIOS: bootindex puts the NIC first, then the disk (SeaBIOS goes on to the
 * disk when iPXE exits). OVMF: no bootindex at all, so BootOrder in the variable store decides as
 * on a real server: with QEMU's bootindex, OVMF rewrites BootOrder at every boot to match it and
 * deletes boot options that start with HD() and match none of it, which would erase any entry an
 * OS installer (or booty) writes (OvmfPkg QemuBootOrderLib, BootOrderComplete/PruneBootVariables).
 * A fresh variable store tries the blank disk first, which fails, then the NIC's iPXE.
 */
export function firmwareVmArgs(o: FirmwareVmOptions, accel: 'kvm' | 'tcg'): string[] {
  const bios = o.firmware === 'bios';
  const a = [
    '-nodefaults', '-no-reboot', '-display', 'none', '-monitor', 'none', '-serial', 'stdio',
    '-m', String(o.memMiB ?? 1024), '-smp', '1',
    ...(accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg', '-cpu', 'max']),
  ];
  // graphics=off: SeaBIOS (and so iPXE's BIOS build) writes its screen to the serial port too
  if (bios) a.push('-machine', 'graphics=off');
  if (!bios) {
    if (o.varsFile === undefined) throw new Error('an OVMF machine needs its variable store (varsFile)');
    a.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`, '-drive', `if=pflash,format=raw,unit=1,file=${o.varsFile}`);
  }
  const diskIndex = bios ? ',bootindex=2' : '';
  a.push('-drive', `if=none,id=d0,file=${o.disk},format=raw,cache=${TEST_DISK_CACHE}`);
  if (o.diskBus === 'sata') a.push('-device', 'ahci,id=ahci', '-device', `ide-hd,drive=d0,bus=ahci.0${diskIndex}`);
  else a.push('-device', `virtio-blk-pci,drive=d0${diskIndex}`);
  a.push('-netdev', `tap,id=n0,ifname=${o.tap},script=no,downscript=no`,
    '-device', `e1000,netdev=n0,mac=${o.mac},romfile=${IPXE_ROM_E1000}${bios ? ',bootindex=1' : ''}`);
  return a;
}

/** Powers the machine on; with t, it is killed when the test ends. */
export async function powerOn(o: FirmwareVmOptions, t?: AfterHook): Promise<Vm> {
  const accel = await detectAccel();
  const vm = new Vm(o.name, 'ip', ['netns', 'exec', o.netns, 'qemu-system-x86_64', ...firmwareVmArgs(o, accel)]);
  t?.after(() => vm.kill());
  return vm;
}

/** Seconds from QEMU's start until each pattern first appeared on the console (undefined: never). */
export class ConsoleClock {
  readonly #vm: Vm;
  readonly #t0 = Date.now();
  readonly seen = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;
  readonly marks: Record<string, RegExp>;
  constructor(vm: Vm, marks: Record<string, RegExp>) {
    this.#vm = vm;
    this.marks = marks;
    this.#timer = setInterval(() => this.#poll(), 250);
    void vm.exited.then(() => { this.#poll(); clearInterval(this.#timer); });
  }
  #poll(): void {
    for (const [k, re] of Object.entries(this.marks)) {
      if (!this.seen.has(k) && re.test(this.#vm.output)) this.seen.set(k, (Date.now() - this.#t0) / 1000);
    }
  }
  now(): number { return (Date.now() - this.#t0) / 1000; }
  stop(): Record<string, number> {
    this.#poll();
    clearInterval(this.#timer);
    return Object.fromEntries(this.seen);
  }
}

/** A sparse, empty disk image of `bytes`. */
export function blankDisk(file: string, bytes: number): string {
  fs.writeFileSync(file, '');
  fs.truncateSync(file, bytes);
  return file;
}

/** Adds `timings` (seconds since power-on, per mark) under `name` to .cache/test-logs/<file>.json. */
export function saveTimings(file: string, name: string, timings: Record<string, number>): void {
  fs.mkdirSync(logDir, { recursive: true });
  const p = path.join(logDir, file);
  let earlier: Record<string, unknown> = {};
  try { earlier = JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, unknown>; } catch { /* first run */ }
  fs.writeFileSync(p, JSON.stringify({ ...earlier, [name]: timings }, null, 2));
}
