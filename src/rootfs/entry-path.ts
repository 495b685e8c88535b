// Tar entry names, normalized and judged before anything touches the target. Pure: no file system.
//
// Names are byte strings: one JS char per byte (latin1), exactly the bytes the tarball recorded,
// since a name need not be UTF-8 and a re-encoded name would be a different file. They become
// Buffers at the file-system boundary (toFsPath) and UTF-8 text only in messages (displayName).

export type EntryPath =
  | { ok: true; components: string[] }
  | { ok: false; why: string };

/**
 * The components of NAME below the target root (`./a//b/` is [a, b]; `.` or `./` is [], the
 * root itself), or why NAME is refused: absolute, a ".." anywhere (even one that would stay
 * inside, like `a/../b`: no archive writer makes those, and refusing them keeps the rule simple
 * to check), empty, or holding a NUL.
 */
export function normalizeEntryPath(name: string): EntryPath {
  if (name.length === 0) return { ok: false, why: 'has an empty name' };
  if (name.includes('\0')) return { ok: false, why: 'has a NUL byte in its name' };
  if (name.startsWith('/')) return { ok: false, why: 'leaves the target (an absolute path)' };
  const components: string[] = [];
  for (const c of name.split('/')) {
    if (c === '..') return { ok: false, why: 'leaves the target (a ".." component)' };
    if (c !== '' && c !== '.') components.push(c);
  }
  return { ok: true, components };
}

/** The relative path of COMPONENTS, as a byte string (`a/b`; '' for the root). */
export function joinComponents(components: readonly string[]): string {
  return components.join('/');
}

/** A byte string as the Buffer the kernel gets: ROOT (a path as given) + '/' + the relative bytes. */
export function toFsPath(root: string, relative: string): Buffer {
  const rootBytes = Buffer.from(root, 'utf8');
  return relative === '' ? rootBytes : Buffer.concat([rootBytes, Buffer.from('/' + relative, 'latin1')]);
}

/** A byte string as text for a message (invalid UTF-8 shows as U+FFFD there, and only there). */
export function displayName(bytes: string): string {
  return Buffer.from(bytes, 'latin1').toString('utf8');
}
