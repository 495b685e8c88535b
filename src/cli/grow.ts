// `booty grow`: the agent's "deploy then grow" step on its own, for an operator's shell in the
// initramfs (or any Linux machine): grow a partition, its LVM and its filesystem to fill the disk.
import { parseArgs } from 'node:util';
import { BootyError } from '../util/errors.ts';
import { createLogger, stderrSink } from '../util/log.ts';
import { formatBytes } from '../disk/fs-detect.ts';
import { growDisk } from '../disk/grow.ts';

const help = `usage: booty grow --disk DEVICE [options]

Grows a partition of DEVICE to the end of the disk (MBR or GPT; the GPT backup moves to the new
end), then what it holds: an LVM PV (activate, pvresize, extend the root LV to 100% of the free
space) or an ext2/3/4 / XFS filesystem (ext4 offline: e2fsck -f, resize2fs; XFS mounted). The
tools on PATH do it; when they refuse the filesystem, the deployed OS's own run through chroot.
A volume group activated here is deactivated again at the end.

options:
  --disk DEVICE         the disk, e.g. /dev/sda, /dev/nvme0n1 (required)
  --partition N|last    partition number to grow (default: last, the physically last one)
  --lvm-root LV         LV to extend (/dev/vg/lv, vg/lv, /dev/mapper/vg-lv); default: detect
  --no-chroot           never fall back to the deployed OS's tools
  --debug               print every step
  -h, --help            this text`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      disk: { type: 'string' }, partition: { type: 'string', default: 'last' }, 'lvm-root': { type: 'string' },
      'no-chroot': { type: 'boolean', default: false }, debug: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) { process.stdout.write(help + '\n'); return 0; }
  const usageError = (m: string) => new BootyError({ stage: 'config', code: 'usage', message: `${m} (see booty grow --help)` });
  if (values.disk === undefined) throw usageError('--disk is required');
  let partition: number | 'last' = 'last';
  if (values.partition !== 'last') {
    partition = Number(values.partition);
    if (!Number.isInteger(partition) || partition < 1) throw usageError(`--partition must be a number or "last", not "${values.partition}"`);
  }
  const log = createLogger({ level: values.debug ? 'debug' : 'info', sinks: [stderrSink('booty')] });
  const r = await growDisk({ disk: values.disk, partition, lvmRoot: values['lvm-root'], log, chrootFallback: !values['no-chroot'] });
  const lines = [
    `partition ${r.partitionDevice}: ${formatBytes(r.partitionBytes.before)} -> ${formatBytes(r.partitionBytes.after)}${r.partitionGrown ? '' : ' (unchanged)'}`,
  ];
  if (r.lvm) lines.push(`LVM: ${r.lvm.vg}/${r.lvm.lv} ${r.lvm.lvExtended ? 'extended' : 'unchanged'}${r.lvm.active ? ' (volume group left active)' : ''}`);
  if (r.filesystem) {
    lines.push(`filesystem ${r.filesystem.kind} on ${r.filesystem.device}: ${formatBytes(r.filesystem.beforeBytes)} -> ${formatBytes(r.filesystem.afterBytes)} (${r.filesystem.mode}, ${r.filesystem.toolsFrom} tools)`);
  }
  for (const n of r.notes) lines.push(`note: ${n}`);
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}
