// Step 3: load the kernel modules the hardware needs. Each round reads every `modalias` under
// /sys/devices, matches them against modules.alias and loads the matches with their
// dependencies (init_module/finit_module, see src/sys/kmod.ts); loading a bus driver (virtio_pci, a SCSI HBA) makes new devices
// appear, so it rescans until a round finds nothing new and the disks and NICs have settled,
// or the settle timeout says which of them never showed up.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../util/log.ts';
import { loadModuleFile } from '../sys/kmod.ts';
import { buildIndex, modulesForModalias, parseProcModules, planLoad, type ModuleIndex } from './modalias.ts';
import { sleep } from '../util/backoff.ts';

// Load first: virtio devices (disk, NIC) only appear on the virtio bus once virtio_pci drives
// the PCI functions under them.
const firstModules = ['virtio_pci'];

export interface ModuleLoaderOptions {
  log: Logger;
  moduleDir?: string;
  sysDevices?: string;
  blacklist?: string[];
  /** module -> parameters from the kernel command line (`virtio_net.napi_tx=1`) */
  moduleParams?: Map<string, string>;
}

export class ModuleLoader {
  readonly moduleDir: string;
  private index: ModuleIndex | undefined;
  private readonly failed = new Set<string>();
  /** bus device path -> its modalias, from earlier scans (readBusModaliases) */
  private readonly knownModaliases = new Map<string, string>();
  private readonly opts: ModuleLoaderOptions;

  constructor(opts: ModuleLoaderOptions) {
    this.opts = opts;
    this.moduleDir = opts.moduleDir ?? path.join('/lib/modules', os.release());
  }

  /** false when this kernel has no modules directory (all drivers built in, or a bad initramfs). */
  available(): boolean {
    return fs.existsSync(path.join(this.moduleDir, 'modules.dep'));
  }

  private getIndex(): ModuleIndex {
    if (this.index === undefined) {
      const read = (name: string) => { try { return fs.readFileSync(path.join(this.moduleDir, name), 'utf8'); } catch { return ''; } };
      this.index = buildIndex({ alias: read('modules.alias'), dep: read('modules.dep'), softdep: read('modules.softdep'), builtin: read('modules.builtin') });
    }
    return this.index;
  }

  /** Modules in the kernel now: /proc/modules plus /sys/module (which also lists built-ins with parameters). */
  loaded(): Set<string> {
    const names = new Set<string>();
    try { for (const n of parseProcModules(fs.readFileSync('/proc/modules', 'utf8'))) names.add(n); } catch { /* no /proc */ }
    try { for (const n of fs.readdirSync('/sys/module')) names.add(n); } catch { /* no /sys */ }
    return names;
  }

  /**
   * Loads `wanted` (module names or aliases) with their dependencies, skipping what is loaded.
   * Returns the names loaded now. `why` maps a name to the reason logged beside it.
   */
  load(wanted: string[], why: Map<string, string> = new Map(), quietMissing = false): string[] {
    if (!this.available()) return [];
    const index = this.getIndex();
    const plan = planLoad(index, wanted.filter((w) => !this.failed.has(w)), this.loaded());
    if (plan.missing.length > 0 && !quietMissing) this.opts.log.debug(`no module for: ${plan.missing.join(', ')}`);
    const done: string[] = [];
    for (const m of plan.order) {
      if (this.failed.has(m.name)) continue;
      const params = this.opts.moduleParams?.get(m.name) ?? '';
      try {
        const r = loadModuleFile(path.join(this.moduleDir, m.path), params);
        if (r === 'loaded') {
          done.push(m.name);
          // CPU modaliases list every feature flag: keep the log line readable
          let reason = why.get(m.name);
          if (reason !== undefined && reason.length > 72) reason = `${reason.slice(0, 69)}...`;
          this.opts.log.info(`loaded ${m.name}${params === '' ? '' : ` (${params})`}${reason === undefined ? '' : ` for ${reason}`}`);
        }
      } catch (e) {
        // ENODEV/ENXIO: a driver for hardware that is not there after all; not worth a warning.
        const code = (e as NodeJS.ErrnoException).code;
        this.failed.add(m.name);
        if (code === 'ENODEV' || code === 'ENXIO') this.opts.log.debug(`${m.name}: no device (${code})`);
        else this.opts.log.warn(`could not load module ${m.name}: ${(e as Error).message}`);
      }
    }
    return done;
  }

  /** One scan of sysfs: the modules matching devices' modaliases that are not loaded yet. */
  scan(): { wanted: string[]; why: Map<string, string> } {
    const index = this.getIndex();
    const loaded = this.loaded();
    const blacklist = new Set(this.opts.blacklist ?? []);
    const why = new Map<string, string>();
    const aliases = this.opts.sysDevices !== undefined ? readModaliases(this.opts.sysDevices) : readBusModaliases('/sys', this.knownModaliases) ?? readModaliases('/sys/devices');
    for (const alias of aliases) {
      for (const m of modulesForModalias(index, alias)) {
        if (loaded.has(m) || this.failed.has(m) || why.has(m)) continue;
        if (blacklist.has(m)) { this.opts.log.debug(`${m} matches ${alias} but is blacklisted`); continue; }
        why.set(m, alias);
      }
    }
    const wanted = [...why.keys()].sort((a, b) => rank(a, why.get(a)!) - rank(b, why.get(b)!) || (a < b ? -1 : a > b ? 1 : 0));
    return { wanted, why };
  }
}

/**
 * What one round loads of what its scan found: CPU feature modules (crc32c_intel, ...) wait for a
 * round with no device driver to load. A round that loads a bus driver (virtio_pci) is followed by
 * one that loads what appeared under it (the NIC, which the first DHCP DISCOVER waits for):
 * nothing waits for the CPU modules, which are tens of milliseconds each under QEMU's TCG.
 */
export function modulesForThisRound(wanted: string[], why: Map<string, string>): string[] {
  const devices = wanted.filter((m) => !(why.get(m) ?? '').startsWith('cpu:'));
  return devices.length > 0 ? devices : wanted;
}

/** Network devices: PCI class 02, virtio device 1. */
function isNetworkAlias(alias: string): boolean {
  return /^pci:.*bc02sc/.test(alias) || /^virtio:d00000001v/.test(alias);
}

/**
 * Load order within a round: firstModules; then network drivers, since step 4 waits for a NIC
 * and a DHCP server may take seconds to offer once asked (the disks are not needed before the
 * action arrives); then the rest; CPU feature modules (crc32c_intel, ...) last: nothing waits for
 * them at boot. Each load is a tenth of a second or more under QEMU's TCG.
 */
function rank(name: string, alias: string): number {
  const i = firstModules.indexOf(name);
  if (i !== -1) return i;
  if (isNetworkAlias(alias)) return firstModules.length;
  if (alias.startsWith('cpu:')) return firstModules.length + 2;
  return firstModules.length + 1;
}

/** Every distinct modalias under `root` (a sysfs devices tree), symlinks not followed. */
export function readModaliases(root: string): string[] {
  const found = new Set<string>();
  const walk = (dir: string) => {
    let entries: fs.Dirent[];
    try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      if (e.isDirectory()) walk(path.join(dir, e.name));
      else if (e.isFile() && e.name === 'modalias') {
        try {
          const v = fs.readFileSync(path.join(dir, e.name), 'utf8').trim();
          if (v !== '') found.add(v);
        } catch { /* some attributes refuse reads */ }
      }
    }
  };
  walk(root);
  return [...found].sort();
}

// Devices with a modalias that sit on no bus: the CPU (crc32c_intel, aesni_intel, ... match its
// feature flags) and the firmware's DMI table (platform quirk drivers).
const offBusModaliases = ['devices/system/cpu/modalias', 'devices/virtual/dmi/id/modalias'];

/**
 * The modaliases of every device on a bus (/sys/bus/X/devices/Y/modalias) plus the CPU's and
 * DMI's: what the full walk of /sys/devices finds that a driver can bind to, at a fraction of
 * its cost (a scan runs every round and every settle poll; the walk reads ~500 directories,
 * 0.2-0.5 s each time under QEMU's TCG). undefined when `sysRoot`/bus cannot be read.
 * `known` (device path -> modalias, kept by the caller across scans) spares re-reading a device
 * already seen with one (a device's modalias never changes); most bus devices (memory blocks,
 * ACPI objects) have none, and they are probed with access(2), not with a read that throws.
 * A device seen without one is looked at again next scan: its attribute may not exist yet.
 */
export function readBusModaliases(sysRoot: string, known: Map<string, string> = new Map()): string[] | undefined {
  let buses: string[];
  try { buses = fs.readdirSync(`${sysRoot}/bus`); } catch { return undefined; }
  const found = new Set<string>();
  const add = (file: string): string | undefined => {
    if (!fs.existsSync(file)) return undefined;
    try {
      const v = fs.readFileSync(file, 'utf8').trim();
      if (v !== '') found.add(v);
      return v;
    } catch { return undefined; /* the attribute refuses reads */ }
  };
  for (const bus of buses) {
    const dir = `${sysRoot}/bus/${bus}/devices`;
    let devices: string[];
    try { devices = fs.readdirSync(dir); } catch { continue; }
    for (const d of devices) {
      const device = `${dir}/${d}`;
      const seen = known.get(device);
      if (seen !== undefined) {
        if (seen !== '') found.add(seen);
        continue;
      }
      const v = add(`${device}/modalias`);
      if (v !== undefined) known.set(device, v);
    }
  }
  for (const f of offBusModaliases) add(`${sysRoot}/${f}`);
  return [...found].sort();
}

const virtualBlock = /^(loop|ram|zram|dm-|md|sr|fd|nbd)\d*/;

/** Whole disks the kernel has now (partitions and virtual devices left out). */
export function presentDisks(sysClassBlock = '/sys/class/block'): string[] {
  let names: string[] = [];
  try { names = fs.readdirSync(sysClassBlock); } catch { return []; }
  return names.filter((n) => !virtualBlock.test(n) && !fs.existsSync(path.join(sysClassBlock, n, 'partition'))).sort();
}

/** Network interfaces backed by a device (lo, bridges and tunnels left out). */
export function presentNics(sysClassNet = '/sys/class/net'): string[] {
  let names: string[] = [];
  try { names = fs.readdirSync(sysClassNet); } catch { return []; }
  return names.filter((n) => fs.existsSync(path.join(sysClassNet, n, 'device'))).sort();
}

export interface HardwareResult { loaded: string[]; disks: string[]; nics: string[]; missing: string[]; seconds: number }

/**
 * Rounds of scan + load until a round loads nothing, at least one disk and one NIC are present,
 * and their lists stay the same for `stableMs`; or until `timeoutMs`, which logs what is missing.
 */
export async function loadHardwareModules(loader: ModuleLoader, opts: { log: Logger; timeoutMs: number; extra?: string[]; stableMs?: number; pollMs?: number }): Promise<HardwareResult> {
  const start = performance.now();
  const log = opts.log;
  // Long enough for a driver's asynchronous probe (NVMe, a SCSI scan) to add what it found
  // right after init_module returned; every extra millisecond is boot time.
  const stableMs = opts.stableMs ?? 500;
  const pollMs = opts.pollMs ?? 200;
  const loadedNow: string[] = [];
  if (!loader.available()) {
    log.warn(`no kernel modules for this kernel (${loader.moduleDir}/modules.dep missing): relying on built-in drivers`);
  } else if (opts.extra !== undefined && opts.extra.length > 0) {
    loadedNow.push(...loader.load(opts.extra, new Map(opts.extra.map((m) => [m, 'booty.modules=']))));
  }
  let last = '';
  let stableSince = performance.now();
  for (let round = 1; ; round++) {
    let loadedThisRound: string[] = [];
    if (loader.available()) {
      const scanned = loader.scan();
      const why = scanned.why;
      const wanted = modulesForThisRound(scanned.wanted, why);
      if (wanted.length > 0) {
        log.debug(`module round ${round}: ${wanted.join(', ')}`);
        loadedThisRound = loader.load(wanted, why);
        loadedNow.push(...loadedThisRound);
      }
    }
    const disks = presentDisks();
    const nics = presentNics();
    const now = performance.now();
    const state = `${disks.join(',')}|${nics.join(',')}`;
    if (state !== last || loadedThisRound.length > 0) { last = state; stableSince = now; }
    const settled = disks.length > 0 && nics.length > 0 && now - stableSince >= stableMs;
    if (settled) return { loaded: loadedNow, disks, nics, missing: [], seconds: (now - start) / 1000 };
    if (now - start >= opts.timeoutMs) {
      const missing: string[] = [];
      if (disks.length === 0) missing.push('disk');
      if (nics.length === 0) missing.push('network interface');
      if (missing.length > 0) log.warn(`after ${Math.round(opts.timeoutMs / 1000)} s still no ${missing.join(' and no ')}: the driver may be missing from the initramfs (booty.settle= waits longer)`);
      return { loaded: loadedNow, disks, nics, missing, seconds: (now - start) / 1000 };
    }
    await sleep(loadedThisRound.length > 0 ? 50 : pollMs);
  }
}
