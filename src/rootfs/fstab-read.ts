// Reading a captured OS's /etc/fstab (fstab(5)): which of its filesystems belong under which
// mount point, so a rootfs capture archives /boot and the ESP with the root, where they belong.
// Pure: no file system.

export interface FstabEntry {
  /** first field as written: UUID=..., LABEL=..., PARTUUID=..., PARTLABEL=..., or a device path */
  spec: string;
  /** mount point, absolute, octal escapes (\040 for a space) decoded */
  mountPoint: string;
  type: string;
  options: string[];
}

/** Types that are no block filesystem of the disk: nothing to archive from them. */
const VIRTUAL_TYPES = new Set(['swap', 'none', 'proc', 'sysfs', 'tmpfs', 'devpts', 'devtmpfs', 'cgroup', 'cgroup2', 'securityfs',
  'debugfs', 'tracefs', 'efivarfs', 'configfs', 'fusectl', 'mqueue', 'hugetlbfs', 'pstore', 'bpf', 'autofs', 'binfmt_misc',
  'nfs', 'nfs4', 'cifs', 'smb3', 'sshfs', 'fuse', 'fuse.sshfs', '9p', 'virtiofs', 'overlay', 'squashfs', 'iso9660', 'udf']);

/** Every entry of FSTAB's text, comments and malformed lines skipped. */
export function parseFstab(text: string): FstabEntry[] {
  const out: FstabEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    if (fields.length < 3) continue;
    const [spec, file, type, opts] = fields as [string, string, string, string | undefined];
    out.push({ spec: unescape(spec), mountPoint: unescape(file), type, options: (opts ?? 'defaults').split(',') });
  }
  return out;
}

/**
 * The entries a capture mounts below the root: block filesystems at absolute mount points other
 * than /, no bind mounts; parents before children (a /boot before a /boot/efi).
 */
export function mountsBelowRoot(entries: readonly FstabEntry[]): FstabEntry[] {
  return entries
    .filter((e) => e.mountPoint.startsWith('/') && normalize(e.mountPoint) !== '/' && !VIRTUAL_TYPES.has(e.type)
      && !e.options.includes('bind') && !e.options.includes('rbind'))
    .map((e) => ({ ...e, mountPoint: normalize(e.mountPoint) }))
    .sort((a, b) => depth(a.mountPoint) - depth(b.mountPoint));
}

/** What a spec asks for, as the key blkid reports it under. */
export function specKey(spec: string): { key: 'UUID' | 'LABEL' | 'PARTUUID' | 'PARTLABEL'; value: string } | { key: 'DEVICE'; value: string } {
  const m = /^(UUID|LABEL|PARTUUID|PARTLABEL)=(.*)$/.exec(spec);
  if (m !== null) return { key: m[1] as 'UUID' | 'LABEL' | 'PARTUUID' | 'PARTLABEL', value: stripQuotes(m[2]!) };
  const byLink = /^\/dev\/disk\/by-(uuid|label|partuuid|partlabel)\/(.+)$/.exec(spec);
  if (byLink !== null) {
    const key = byLink[1]!.toUpperCase() as 'UUID' | 'LABEL' | 'PARTUUID' | 'PARTLABEL';
    return { key, value: key === 'LABEL' || key === 'PARTLABEL' ? decodeUdevEscapes(byLink[2]!) : byLink[2]! };
  }
  return { key: 'DEVICE', value: spec };
}

function stripQuotes(s: string): string {
  return s.length >= 2 && (s.startsWith('"') && s.endsWith('"') || s.startsWith("'") && s.endsWith("'")) ? s.slice(1, -1) : s;
}

/** udev writes unsafe label bytes as \xNN in by-label link names. */
function decodeUdevEscapes(s: string): string {
  return s.replace(/\\x([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** fstab's octal escapes: \040 space, \011 tab, \012 newline, \134 backslash. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

function normalize(p: string): string {
  const parts = p.split('/').filter((c) => c !== '' && c !== '.');
  return '/' + parts.join('/');
}

function depth(p: string): number {
  return p === '/' ? 0 : p.split('/').length - 1;
}
