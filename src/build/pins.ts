// The pinned inputs of the initramfs (initramfs/inputs.json): the Debian kernel package and the
// Debian packages whose binaries and libraries go in, each at an exact version, so two builds
// from the same checkout pack the same bytes. `booty build-initramfs --update-pins` rewrites the
// versions to what apt offers now (Debian drops superseded versions from its mirrors).
import { readFile, writeFile } from 'node:fs/promises';
import { BootyError } from '../util/errors.ts';
import { runTool } from './run.ts';

export interface Pins {
  /** the kernel image package, e.g. linux-image-6.1.0-56-amd64, and its exact version */
  kernel: { package: string; version: string };
  /** Debian package name -> exact version (busybox-static, lvm2, libc6, ...) */
  packages: Record<string, string>;
}

export async function readPins(file: string): Promise<Pins> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new BootyError({ stage: 'build', code: 'pins-unreadable', cause: e, message: `cannot read ${file}: ${(e as Error).message}` });
  }
  return validatePins(parsed, file);
}

export function validatePins(v: unknown, file = 'inputs.json'): Pins {
  const bad = (why: string) => new BootyError({ stage: 'build', code: 'pins-invalid', message: `${file}: ${why}` });
  if (typeof v !== 'object' || v === null) throw bad('not a JSON object');
  const o = v as Record<string, unknown>;
  const k = o.kernel as Record<string, unknown> | undefined;
  if (typeof k !== 'object' || k === null || typeof k.package !== 'string' || typeof k.version !== 'string') {
    throw bad('"kernel" must be {"package": "linux-image-...-amd64", "version": "..."}');
  }
  if (!/^linux-image-[0-9][^ ]*-amd64$/.test(k.package)) throw bad(`kernel package '${k.package}' is not a linux-image-*-amd64 package`);
  const p = o.packages;
  if (typeof p !== 'object' || p === null || Array.isArray(p)) throw bad('"packages" must map package names to versions');
  const packages: Record<string, string> = {};
  for (const [name, ver] of Object.entries(p)) {
    if (typeof ver !== 'string' || ver === '') throw bad(`package ${name} has no version`);
    packages[name] = ver;
  }
  return { kernel: { package: k.package, version: k.version }, packages };
}

/** The kernel version directory under /lib/modules, from the package name (6.1.0-56-amd64). */
export function kernelRelease(pins: Pins): string {
  return pins.kernel.package.replace(/^linux-image-/, '');
}

export async function writePins(file: string, pins: Pins): Promise<void> {
  const sorted: Pins = {
    kernel: pins.kernel,
    packages: Object.fromEntries(Object.entries(pins.packages).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
  };
  await writeFile(file, JSON.stringify(sorted, null, 2) + '\n');
}

/** apt's candidate version of a package ("" when apt knows none). */
export async function candidateVersion(pkg: string): Promise<string> {
  const r = await runTool('apt-cache', ['policy', pkg]);
  const m = /^\s*Candidate:\s*(\S+)/m.exec(r.stdout);
  return m && m[1] !== '(none)' ? m[1] : '';
}

/** New pins: the newest bookworm kernel ABI package and every package at apt's candidate. */
export async function updatedPins(old: Pins): Promise<Pins> {
  const dep = await runTool('apt-cache', ['depends', 'linux-image-amd64']);
  const m = /Depends:\s*(linux-image-[0-9]\S*-amd64)/.exec(dep.stdout);
  if (!m) {
    throw new BootyError({ stage: 'build', code: 'pins-update', message: 'apt-cache depends linux-image-amd64 names no kernel package', hint: 'run apt-get update first' });
  }
  const kernel = { package: m[1], version: await candidateVersion(m[1]) };
  const packages: Record<string, string> = {};
  for (const name of Object.keys(old.packages)) {
    const v = await candidateVersion(name);
    if (v === '') throw new BootyError({ stage: 'build', code: 'pins-update', message: `apt offers no version of ${name}`, hint: 'run apt-get update, or remove it from initramfs/inputs.json' });
    packages[name] = v;
  }
  return { kernel, packages };
}
