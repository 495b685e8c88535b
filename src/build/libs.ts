// The shared-library closure of the programs in the initramfs: follow DT_NEEDED from each ELF
// file, resolving sonames the way ld.so does without a cache (RUNPATH, then Debian's multiarch
// system directories), but inside the pinned packages instead of the host.
import { BootyError } from '../util/errors.ts';
import type { PackageRoot } from './debs.ts';
import { readElfDeps } from './elf.ts';

/** ld.so's built-in search path on Debian x86-64 (see `ld.so --help`). */
export const SYSTEM_LIB_DIRS = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu', 'lib', 'usr/lib'];

export interface ResolvedLib { soname: string; path: string; pkg: string; neededBy: string }

export interface LibClosure {
  /** soname -> where it was found (the real file behind any symlink) */
  libs: Map<string, ResolvedLib>;
  /** the program interpreter every dynamic program named, e.g. /lib64/ld-linux-x86-64.so.2 */
  interpreters: Map<string, { path: string; pkg: string }>;
}

/**
 * programs: host paths of ELF files (anything else is skipped) with a label for messages.
 * Throws a build error naming the soname and who needs it when a library is in no package.
 */
export async function libraryClosure(programs: { path: string; label: string }[], root: PackageRoot): Promise<LibClosure> {
  const libs = new Map<string, ResolvedLib>();
  const interpreters = new Map<string, { path: string; pkg: string }>();
  const queue = programs.map((p) => ({ path: p.path, label: p.label }));
  const missing: string[] = [];
  while (queue.length > 0) {
    const item = queue.shift()!;
    const deps = readElfDeps(item.path);
    if (deps === undefined) continue;
    if (deps.interp !== undefined && !interpreters.has(deps.interp)) {
      const f = await root.findFile(deps.interp);
      if (f === undefined) missing.push(`${deps.interp} (interpreter of ${item.label})`);
      else interpreters.set(deps.interp, { path: f.path, pkg: f.pkg.name });
    }
    for (const soname of deps.needed) {
      if (libs.has(soname)) continue;
      const dirs = [...deps.runpath.filter((d) => d.startsWith('/')), ...SYSTEM_LIB_DIRS];
      let found: ResolvedLib | undefined;
      for (const d of dirs) {
        const f = await root.findFile(`${d}/${soname}`);
        if (f !== undefined) { found = { soname, path: f.path, pkg: f.pkg.name, neededBy: item.label }; break; }
      }
      if (found === undefined) { missing.push(`${soname} (needed by ${item.label})`); continue; }
      libs.set(soname, found);
      queue.push({ path: found.path, label: soname });
    }
  }
  if (missing.length > 0) {
    throw new BootyError({
      stage: 'build', code: 'library-missing',
      message: `shared libraries in none of the pinned packages: ${missing.join(', ')}`,
      hint: "add the package that ships each one (on Debian: 'dpkg -S <soname>') to initramfs/inputs.json, then run 'booty build-initramfs --update-pins'",
    });
  }
  return { libs, interpreters };
}
