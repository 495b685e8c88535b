// `booty deploy --rootfs URL --disk DEV [--layout FILE]`: lay out the disk, extract a rootfs
// tarball onto it and install the boot loader (src/rootfs/deploy-rootfs.ts), from any Linux shell.
// `booty deploy` hands its arguments here when --rootfs is among them.
import fs from 'node:fs';
import { BootyError } from '../util/errors.ts';
import { createLogger, stderrSink } from '../util/log.ts';
import { parseAction } from '../config/parse.ts';
import type { RootfsDeployAction } from '../config/action.ts';
import { deployRootfs } from '../rootfs/deploy-rootfs.ts';
import { createProgressPrinter, formatBytes } from '../image/progress.ts';
import { parseArgsOrExplain, parseHeaders } from './args.ts';
import { parseDuration } from '../util/duration.ts';

export const ROOTFS_HELP = `usage: booty deploy --rootfs URL --disk DEV [--layout FILE] [options]

Partitions DEV as the layout says, makes the filesystems, streams the rootfs tarball (tar, or
tar compressed by gzip, zstd, xz or bzip2: told apart by the first bytes) into them, writes
/etc/fstab by UUID and a fresh /etc/machine-id, and installs grub through chroot into the tree.
Without --layout: GPT, 1 MiB BIOS boot partition, 512 MiB ESP (vfat, /boot/efi), ext4 root on
the rest, grub for BIOS and UEFI.

options:
  --rootfs URL         http(s) URL, file:// URL or absolute path of the tarball
  --disk DEV           the whole disk (a block device); everything on it is replaced
  --layout FILE        JSON file: {"table": "gpt"|"msdos", "partitions": [{"size": "512MiB"|"rest",
                       "fs": "ext4"|"xfs"|"vfat"|"swap", "mountpoint": "/", "label": "root",
                       "type": "bios-boot"|"esp"|"linux"|"swap"}, ...]} (README: Rootfs tarballs)
  --bootloader B       grub-bios, grub-efi, both (default) or none
  --fstab keep         keep the tarball's /etc/fstab (default: generate it from the layout)
  --sha256 HEX         expected sha256 of the tarball as served
  --stall-timeout T    a connection with no byte for T is dropped and resumed (default 30s)
  --retry-for T        keep reconnecting for T without progress, then fail (default 10m)
  --header 'K: V'      extra request header (repeatable)
  -q, --quiet          no progress display

exit status: 0 only when the tree was extracted, verified, configured, the boot loader
installed and the disk synced; 2 config, 3 preflight (nothing written; a layout that does not
fit), 4 fetch, 5 decompress, 6 verify, 7 write. After a failure that came after partitioning,
the partition table is erased: the disk does not boot.`;

const TARBALL_NAME: Record<string, string> = { raw: 'tar', gzip: 'tar.gz', zstd: 'tar.zst', xz: 'tar.xz', bzip2: 'tar.bz2' };

export async function runRootfs(argv: string[]): Promise<number> {
  const { values } = parseArgsOrExplain({
    args: argv,
    options: {
      rootfs: { type: 'string' }, disk: { type: 'string' }, layout: { type: 'string' }, bootloader: { type: 'string' }, fstab: { type: 'string' },
      sha256: { type: 'string' }, 'stall-timeout': { type: 'string' }, 'retry-for': { type: 'string' },
      header: { type: 'string', multiple: true }, quiet: { type: 'boolean', short: 'q' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  }, 'deploy');
  if (values.help) { process.stdout.write(ROOTFS_HELP + '\n'); return 0; }
  const config = (message: string) => new BootyError({ stage: 'config', code: 'BAD_ARGUMENT', message, diskState: 'untouched', hint: 'see booty deploy --rootfs x --help' });
  if (values.rootfs === undefined) throw config('--rootfs is required');
  if (values.disk === undefined) throw config('--disk is required');
  let layout: unknown;
  if (values.layout !== undefined) {
    try { layout = JSON.parse(fs.readFileSync(values.layout, 'utf8')); } catch (e) {
      throw config(`--layout ${values.layout}: ${(e as Error).message}`);
    }
  }
  // The same validation as an action's (schema, then the rules across fields). The tarball may
  // be a local path here, which an action may not name, so a placeholder URL stands in for it.
  const action = parseAction({
    action: 'deploy-rootfs', rootfs: 'http://cli.invalid/rootfs.tar', disk: values.disk,
    ...(layout === undefined ? {} : { layout }), ...(values.bootloader === undefined ? {} : { bootloader: values.bootloader }),
    ...(values.fstab === undefined ? {} : { fstab: values.fstab }), ...(values.sha256 === undefined ? {} : { sha256: values.sha256 }),
  }) as RootfsDeployAction;
  const duration = (flag: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const ms = parseDuration(v);
    if (ms === undefined || ms <= 0) throw config(`--${flag} must be a duration like 30s, 10m or 45 (seconds), not ${JSON.stringify(v)}`);
    return ms;
  };
  const log = createLogger({ sinks: [stderrSink('booty')] });
  const printer = values.quiet ? undefined : createProgressPrinter({ prefix: 'booty deploy --rootfs: ' });
  const r = await deployRootfs({
    rootfs: values.rootfs, disk: values.disk, sha256: action.sha256, layout: action.layout, bootloader: action.bootloader, fstab: action.fstab,
    headers: parseHeaders(values.header ?? [], config), log,
    stallTimeoutMs: duration('stall-timeout', values['stall-timeout']), retryForMs: duration('retry-for', values['retry-for']),
    onProgress: (p) => printer?.update(p),
  });
  printer?.done({ bytes: r.bytesWritten, wireBytes: r.wireBytes, rate: r.bytesWritten / r.seconds, elapsed: r.seconds });
  const parts = r.partitions.map((p) => `${p.device}${p.fs === undefined ? '' : ` ${p.fs}`}${p.mountpoint === undefined ? '' : ` ${p.mountpoint}`}${p.uuid === undefined ? '' : ` UUID=${p.uuid}`}`).join(', ');
  process.stdout.write(`booty deploy --rootfs: OK: ${r.files} files, ${r.directories} directories, ${r.symlinks} symlinks, ${r.hardLinks} hard links, ${r.devices} devices, ${r.fifos} FIFOs; ` +
    `${r.bytesWritten} bytes of file data (${formatBytes(r.bytesWritten)}) from ${r.wireBytes} bytes served (${TARBALL_NAME[r.format]}) onto ${values.disk} in ${r.seconds.toFixed(1)} s; ` +
    `partitions: ${parts}; boot loader: ${r.bootloader.installed.join(' + ') || 'none'}; sha256 ${r.sha256}${r.resumes > 0 ? `; ${r.resumes} resumes after network faults` : ''}\n`);
  return 0;
}
