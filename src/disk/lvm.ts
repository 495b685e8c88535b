// The LVM steps of growing a deployed disk: find the PV's volume group, activate it, resize the
// PV to the grown partition, and extend the root LV over the free space. Always through the `lvm`
// multi-call binary (the initramfs ships only that) with udev switched off: there is no udevd in
// the initramfs, and lvm waiting for udev to create /dev nodes would hang forever.
import { growError } from './partition-table/types.ts';
import type { Content } from './fs-detect.ts';
import type { RunOptions, ToolRunner } from './tools.ts';

export const LVM_ENV: Record<string, string> = { DM_DISABLE_UDEV: '1', LVM_SUPPRESS_FD_WARNINGS: '1' };
/**
 * Devices files (lvm 2.03.12+, default on some distributions) list the PVs of the machine the
 * image was made on by serial number: on a new machine the PV would be ignored. udev is absent.
 * Older lvm versions warn about settings they do not know and carry on.
 */
export const LVM_CONFIG = 'devices { obtain_device_list_from_udev = 0 use_devicesfile = 0 } activation { udev_sync = 0 udev_rules = 0 }';

export interface LvInfo {
  path: string;
  name: string;
  vg: string;
  sizeBytes: number;
  attr: string;
}

/** Where to run lvm: inside a mounted root through chroot, or the initramfs's own. */
export type Where = Pick<RunOptions, 'root'>;

function lvmRun(tools: ToolRunner, sub: string, args: string[], where: Where = {}, okCodes?: number[]) {
  return tools.run('lvm', [sub, '--config', LVM_CONFIG, ...args], { ...where, env: LVM_ENV, okCodes });
}

/** The VG a PV belongs to. */
export async function vgOfPv(tools: ToolRunner, pv: string, where: Where = {}): Promise<string> {
  const r = await lvmRun(tools, 'pvs', ['--noheadings', '-o', 'vg_name', pv], where);
  const vg = r.stdout.trim().split('\n').map((l) => l.trim()).find((l) => l !== '');
  if (vg === undefined) throw growError('lvm-orphan-pv', `${pv} is an LVM physical volume that belongs to no volume group`);
  return vg;
}

export async function activateVg(tools: ToolRunner, vg: string, where: Where = {}): Promise<void> {
  await lvmRun(tools, 'vgchange', ['-ay', vg], where);
}

export async function deactivateVg(tools: ToolRunner, vg: string, where: Where = {}): Promise<void> {
  await lvmRun(tools, 'vgchange', ['-an', vg], where);
}

/** Parse `lvs --noheadings --separator '|' --units b --nosuffix -o lv_path,lv_name,vg_name,lv_size,lv_attr`. */
export function parseLvs(stdout: string): LvInfo[] {
  const out: LvInfo[] = [];
  for (const line of stdout.split('\n')) {
    const f = line.trim().split('|').map((s) => s.trim());
    if (f.length < 5 || f[0] === '') continue;
    out.push({ path: f[0], name: f[1], vg: f[2], sizeBytes: Number(f[3]), attr: f[4] });
  }
  return out;
}

export async function listLvs(tools: ToolRunner, vg: string, where: Where = {}): Promise<LvInfo[]> {
  const r = await lvmRun(tools, 'lvs',
    ['--noheadings', '--separator', '|', '--units', 'b', '--nosuffix', '-o', 'lv_path,lv_name,vg_name,lv_size,lv_attr', vg], where);
  return parseLvs(r.stdout);
}

export async function vgFreeBytes(tools: ToolRunner, vg: string, where: Where = {}): Promise<number> {
  const r = await lvmRun(tools, 'vgs', ['--noheadings', '--units', 'b', '--nosuffix', '-o', 'vg_free', vg], where);
  const n = Number(r.stdout.trim());
  if (!Number.isFinite(n)) throw growError('lvm-output', `could not read the free space of volume group ${vg} from "${r.stdout.trim()}"`);
  return n;
}

export async function pvresize(tools: ToolRunner, pv: string, where: Where = {}): Promise<void> {
  await lvmRun(tools, 'pvresize', [pv], where);
}

export async function lvextendAll(tools: ToolRunner, lvPath: string, where: Where = {}): Promise<void> {
  await lvmRun(tools, 'lvextend', ['-l', '+100%FREE', lvPath], where);
}

/** "/dev/mapper/ubuntu--vg-root" -> ["ubuntu-vg", "root"] (dashes in names are doubled there). */
export function splitMapperName(name: string): [string, string] | undefined {
  const m = /^((?:[^-]|--)+)-((?:[^-]|--)+)$/.exec(name);
  if (m === null) return undefined;
  return [m[1].replace(/--/g, '-'), m[2].replace(/--/g, '-')];
}

/** The LV a user named, in any of the spellings people use: /dev/vg/lv, vg/lv, /dev/mapper/vg-lv. */
export function findLv(lvs: LvInfo[], wanted: string): LvInfo | undefined {
  const w = wanted.trim();
  let vg: string | undefined;
  let lv: string | undefined;
  if (w.startsWith('/dev/mapper/')) {
    [vg, lv] = splitMapperName(w.slice('/dev/mapper/'.length)) ?? [];
  } else {
    const parts = w.replace(/^\/dev\//, '').split('/');
    if (parts.length === 2) [vg, lv] = parts;
    else if (parts.length === 1) lv = parts[0];
  }
  return lvs.find((l) => l.path === w || (l.name === lv && (vg === undefined || l.vg === vg)));
}

/**
 * The LV to extend: the one asked for, else the LV holding a filesystem that is named root,
 * else the largest LV holding a filesystem. `contents` says what each LV path holds.
 */
export function chooseRootLv(lvs: LvInfo[], wanted: string | undefined, contents: Map<string, Content>): LvInfo {
  const names = lvs.map((l) => `${l.vg}/${l.name}`).join(', ') || 'none';
  if (wanted !== undefined && wanted !== '') {
    const lv = findLv(lvs, wanted);
    if (lv === undefined) {
      throw growError('lvm-root-not-found', `logical volume ${wanted} is not in the deployed volume group (it has: ${names})`,
        'fix lvmRootName / grow.lvmRoot, or leave it empty to detect the root LV');
    }
    return lv;
  }
  const withFs = lvs.filter((l) => {
    const k = contents.get(l.path)?.kind;
    return k === 'ext' || k === 'xfs';
  });
  if (withFs.length === 0) {
    throw growError('lvm-root-not-found', `no logical volume of the deployed volume group holds an ext4 or XFS filesystem (LVs: ${names})`,
      'name the LV to extend with lvmRootName / grow.lvmRoot');
  }
  const named = withFs.find((l) => l.name === 'root') ?? withFs.find((l) => /root/i.test(l.name));
  return named ?? withFs.reduce((a, b) => (b.sizeBytes > a.sizeBytes ? b : a));
}
