// Which kernel modules the hardware needs, and in which order to load them: the part of
// modprobe the agent needs, as pure functions over the text of modules.alias, modules.dep,
// modules.softdep and modules.builtin (written by depmod), so it is unit-tested with fixtures.
import { normalizeModuleName } from './boot-params.ts';

export interface AliasEntry {
  pattern: string;
  module: string;
  /** the literal text before the first wildcard: a cheap filter before the regex */
  prefix: string;
  re: RegExp | undefined;
}

export interface ModuleIndex {
  aliases: AliasEntry[];
  /** module name -> its .ko path (relative to /lib/modules/<release>) and direct dependencies */
  deps: Map<string, { path: string; deps: string[] }>;
  softdeps: Map<string, { pre: string[]; post: string[] }>;
  builtin: Set<string>;
  /** aliases by their literal prefix (built on first use by modulesForModalias) */
  byPrefix?: AliasLookup;
  /** modalias -> the modules matching it: every scan of step 3 asks again for the same devices */
  matched?: Map<string, readonly string[]>;
}

/** Positions in `aliases` by literal prefix, and the prefix lengths there are: a modalias is
 *  tried against the aliases whose prefix it starts with, found with one map lookup per
 *  length, instead of against every alias (a scan runs every round and every poll of step 3,
 *  over every device, with thousands of aliases on a real server's initramfs). */
interface AliasLookup { lengths: number[]; positions: Map<string, number[]> }

function aliasLookup(aliases: AliasEntry[]): AliasLookup {
  const positions = new Map<string, number[]>();
  aliases.forEach((a, i) => {
    const list = positions.get(a.prefix);
    if (list === undefined) positions.set(a.prefix, [i]); else list.push(i);
  });
  const lengths = [...new Set(aliases.map((a) => a.prefix.length))].sort((x, y) => x - y);
  return { lengths, positions };
}

/** `kernel/drivers/block/virtio_blk.ko` -> `virtio_blk` (dashes become underscores, as the kernel names modules). */
export function moduleNameFromPath(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return normalizeModuleName(base.replace(/\.ko(\.(xz|zst|gz))?$/, ''));
}

/** fnmatch(3) without flags, as kmod matches modaliases: `*`, `?`, `[a-z]`, `[!x]`, `[^x]`. */
export function globToRegExp(pattern: string): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else if (ch === '[') {
      // find the closing bracket; a `]` right after `[` or `[!` is a member, not the end
      let j = i + 1;
      if (pattern[j] === '!' || pattern[j] === '^') j++;
      if (pattern[j] === ']') j++;
      while (j < pattern.length && pattern[j] !== ']') j++;
      if (j >= pattern.length) { re += '\\['; continue; } // unterminated: a literal `[`
      let body = pattern.slice(i + 1, j);
      let neg = false;
      if (body.startsWith('!') || body.startsWith('^')) { neg = true; body = body.slice(1); }
      body = body.replace(/[\\\]^]/g, (c) => `\\${c}`);
      re += `[${neg ? '^' : ''}${body}]`;
      i = j;
    } else re += ch.replace(/[.+^${}()|\\\]]/g, (c) => `\\${c}`);
  }
  return new RegExp(re + '$', 's');
}

export function globMatch(pattern: string, text: string): boolean {
  return globToRegExp(pattern).test(text);
}

function literalPrefix(pattern: string): string {
  const m = /[*?[]/.exec(pattern);
  return m === null ? pattern : pattern.slice(0, m.index);
}

export function parseModulesAlias(text: string): AliasEntry[] {
  const out: AliasEntry[] = [];
  for (const line of text.split('\n')) {
    const parts = line.trim().split(/\s+/);
    if (parts.length !== 3 || parts[0] !== 'alias') continue;
    out.push({ pattern: parts[1], module: normalizeModuleName(parts[2]), prefix: literalPrefix(parts[1]), re: undefined });
  }
  return out;
}

export function parseModulesDep(text: string): Map<string, { path: string; deps: string[] }> {
  const out = new Map<string, { path: string; deps: string[] }>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const path = line.slice(0, colon).trim();
    const deps = line.slice(colon + 1).trim().split(/\s+/).filter((s) => s !== '').map(moduleNameFromPath);
    out.set(moduleNameFromPath(path), { path, deps });
  }
  return out;
}

/** `softdep ext4 pre: crc32c post: foo` lines (depmod writes them from the modules' MODULE_SOFTDEP). */
export function parseModulesSoftdep(text: string): Map<string, { pre: string[]; post: string[] }> {
  const out = new Map<string, { pre: string[]; post: string[] }>();
  for (const line of text.split('\n')) {
    const parts = line.trim().split(/\s+/);
    if (parts.length < 3 || parts[0] !== 'softdep') continue;
    const entry = { pre: [] as string[], post: [] as string[] };
    let into: string[] | undefined;
    for (const p of parts.slice(2)) {
      if (p === 'pre:') into = entry.pre;
      else if (p === 'post:') into = entry.post;
      else into?.push(p); // a module name or an alias: resolveName() tells
    }
    out.set(normalizeModuleName(parts[1]), entry);
  }
  return out;
}

export function parseModulesBuiltin(text: string): Set<string> {
  return new Set(text.split('\n').map((l) => l.trim()).filter((l) => l !== '').map(moduleNameFromPath));
}

export function buildIndex(files: { alias: string; dep: string; softdep?: string; builtin?: string }): ModuleIndex {
  return {
    aliases: parseModulesAlias(files.alias),
    deps: parseModulesDep(files.dep),
    softdeps: parseModulesSoftdep(files.softdep ?? ''),
    builtin: parseModulesBuiltin(files.builtin ?? ''),
  };
}

/** Every module whose alias pattern matches this modalias (usually one; none for most devices). */
export function modulesForModalias(index: ModuleIndex, modalias: string): readonly string[] {
  const matched = index.matched ??= new Map();
  const known = matched.get(modalias);
  if (known !== undefined) return known;
  const lookup = index.byPrefix ??= aliasLookup(index.aliases);
  const candidates: number[] = [];
  for (const len of lookup.lengths) {
    if (len > modalias.length) break;
    const at = lookup.positions.get(modalias.slice(0, len));
    if (at !== undefined) candidates.push(...at);
  }
  // in the order of modules.alias, as modprobe lists them
  candidates.sort((x, y) => x - y);
  const found: string[] = [];
  for (const i of candidates) {
    const a = index.aliases[i];
    a.re ??= globToRegExp(a.pattern);
    if (a.re.test(modalias) && !found.includes(a.module)) found.push(a.module);
  }
  matched.set(modalias, found);
  return found;
}

/** A module name or an alias (`crc32c`, `fs-ext4`) -> module names; built-ins resolve to none. */
export function resolveName(index: ModuleIndex, name: string): string[] {
  const n = normalizeModuleName(name);
  if (index.deps.has(n)) return [n];
  if (index.builtin.has(n)) return [];
  return modulesForModalias(index, name).filter((m) => index.deps.has(m));
}

export interface LoadPlan {
  /** modules to load, dependencies first */
  order: { name: string; path: string }[];
  /** names asked for that are neither a module, an alias nor built in */
  missing: string[];
}

/**
 * The load order for `wanted`: each module after its dependencies (modules.dep, transitively)
 * and its soft `pre:` dependencies, before its `post:` ones; modules in `loaded` are skipped.
 */
export function planLoad(index: ModuleIndex, wanted: string[], loaded: ReadonlySet<string>): LoadPlan {
  const order: { name: string; path: string }[] = [];
  const missing: string[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();

  const visit = (name: string, optional: boolean): void => {
    if (done.has(name) || visiting.has(name) || loaded.has(name)) return;
    const entry = index.deps.get(name);
    if (entry === undefined) {
      if (!index.builtin.has(name) && !optional) missing.push(name);
      done.add(name);
      return;
    }
    visiting.add(name);
    const soft = index.softdeps.get(name);
    for (const p of soft?.pre ?? []) for (const m of resolveName(index, p)) visit(m, true);
    for (const d of entry.deps) visit(d, false);
    visiting.delete(name);
    done.add(name);
    order.push({ name, path: entry.path });
    for (const p of soft?.post ?? []) for (const m of resolveName(index, p)) visit(m, true);
  };

  for (const w of wanted) {
    const names = resolveName(index, w);
    if (names.length === 0) {
      if (!index.builtin.has(normalizeModuleName(w))) missing.push(w);
      continue;
    }
    for (const n of names) visit(n, false);
  }
  return { order, missing };
}

/** Module names in /proc/modules (the first word of each line). */
export function parseProcModules(text: string): Set<string> {
  return new Set(text.split('\n').map((l) => l.split(' ')[0]).filter((n) => n !== ''));
}
