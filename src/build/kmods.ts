// Kernel module selection: the modules named in initramfs/modules.txt plus everything they
// need (modules.dep) and their soft pre/post dependencies (modules.softdep, e.g. ext4 -> crc32c),
// computed from depmod's files for the full kernel package. The packed subset then gets its own
// modules.dep/modules.alias from depmod, so the agent's modalias matching sees exactly what exists.

/** Module name as the kernel spells it: '-' and '_' are the same character there. */
export function moduleName(pathOrName: string): string {
  const base = pathOrName.slice(pathOrName.lastIndexOf('/') + 1);
  return base.replace(/\.ko(\.(xz|gz|zst))?$/, '').replace(/-/g, '_');
}

/** modules.dep: 'kernel/a.ko: kernel/b.ko kernel/c.ko' -> name -> { path, deps (paths) }. */
export function parseModulesDep(text: string): Map<string, { path: string; deps: string[] }> {
  const out = new Map<string, { path: string; deps: string[] }>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const path = line.slice(0, colon).trim();
    const deps = line.slice(colon + 1).trim().split(/\s+/).filter((s) => s !== '');
    out.set(moduleName(path), { path, deps });
  }
  return out;
}

/** modules.softdep: 'softdep ext4 pre: crc32c' -> ext4 -> ['crc32c'] (pre and post alike). */
export function parseSoftdeps(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] !== 'softdep' || words.length < 3) continue;
    const names = words.slice(2).filter((w) => w !== 'pre:' && w !== 'post:');
    out.set(moduleName(words[1]), [...(out.get(moduleName(words[1])) ?? []), ...names]);
  }
  return out;
}

/** modules.alias lines without wildcards: alias -> module names ('crc32c' -> crc32c_intel, ...). */
export function parseExactAliases(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^alias\s+(\S+)\s+(\S+)$/.exec(line.trim());
    if (!m || /[*?[]/.test(m[1])) continue;
    out.set(m[1], [...(out.get(m[1]) ?? []), moduleName(m[2])]);
  }
  return out;
}

/** Names in modules.builtin (compiled into the kernel: nothing to pack). */
export function parseBuiltin(text: string): Set<string> {
  return new Set(text.split('\n').filter((l) => l.trim() !== '').map(moduleName));
}

export interface ModuleSelection {
  /** module paths relative to /lib/modules/<release>, sorted */
  paths: string[];
  /** requested names that are built into the kernel */
  builtin: string[];
}

/**
 * The closure of the wanted modules. Unknown names are an error (a typo in modules.txt must not
 * silently drop a driver); soft dependencies that exist nowhere are skipped (they are optional).
 */
export function selectModules(
  wanted: string[],
  db: { dep: Map<string, { path: string; deps: string[] }>; softdeps: Map<string, string[]>; aliases: Map<string, string[]>; builtin: Set<string> },
): ModuleSelection {
  const paths = new Set<string>();
  const builtin: string[] = [];
  const missing: string[] = [];
  const byPath = new Map([...db.dep.values()].map((e) => [e.path, e]));
  const seen = new Set<string>();
  const visit = (name: string, required: boolean) => {
    const n = moduleName(name);
    if (seen.has(n)) return;
    seen.add(n);
    const entry = db.dep.get(n);
    if (entry === undefined) {
      if (db.builtin.has(n)) { if (required) builtin.push(n); return; }
      const viaAlias = db.aliases.get(name) ?? db.aliases.get(n);
      if (viaAlias !== undefined) { for (const a of viaAlias) visit(a, false); return; }
      if (required) missing.push(name);
      return;
    }
    paths.add(entry.path);
    for (const d of entry.deps) {
      const de = byPath.get(d);
      if (de !== undefined) visit(moduleName(de.path), true);
      else paths.add(d);
    }
    for (const s of db.softdeps.get(n) ?? []) visit(s, false);
  };
  for (const w of wanted) visit(w, true);
  if (missing.length > 0) throw new Error(`kernel modules not found in the kernel package: ${missing.join(', ')}`);
  return { paths: [...paths].sort(), builtin: builtin.sort() };
}

/** initramfs/modules.txt and tools.txt style lists: one item per line, '#' comments. */
export function parseList(text: string): string[][] {
  return text.split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter((l) => l !== '')
    .map((l) => l.split(/\s+/));
}
