// The rootfs block of `npm run bench` (BENCH_IMAGES=rootfs): a rootfs tarball laid onto a fresh
// ext4 by what an operator would script, `sfdisk; partx -a; mkfs.ext4; mount; curl | zstd -dc |
// tar -x; umount; sync`, against `booty deploy --rootfs` (one GPT partition, ext4 on the rest, no
// boot loader), which does the same steps plus its checks (sha256 when the origin sends one, the
// extraction's safety rules, fstab and machine-id). Same tarball (the Debian 12 tree of the rootfs
// e2e, scripts/build-test-rootfs.sh), same loop device, same origins (booty server and nginx, as
// the deploy rows), interleaved runs, page cache dropped and the tarball read once before each run.
// MB/s = 10^6 bytes of the uncompressed tar stream per second.
import { existsSync, linkSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { ensureTestRootfs } from '../../test/helpers/test-rootfs.ts';
import { nginxBinary, startNginx, type NginxOrigin } from '../vm/nginx-origin.ts';
import { attachTarget, detachTarget, type Target } from './device.ts';
import { measure } from './measure.ts';
import { ORIGINS } from './origins.ts';
import { ratios, stats, table, type RowResult, type RunRecord } from './report.ts';
import { stopServers, tryBootyServer } from './servers.ts';
import { must, q, run } from './shell.ts';

const GiB = 2 ** 30;

export type RootfsContext = {
  node: string;
  bundle: string;
  url: string;
  dev: string;
  mnt: string;
  layout: string;
};

export type RootfsRow = {
  id: string;
  section: 'rootfs';
  label: string;
  booty: boolean;
  command: (c: RootfsContext) => string;
};

const GNU_TAR = `tar --xattrs --xattrs-include='*' --numeric-owner -xpf -`;

const base: RootfsRow[] = [
  {
    id: 'rootfs-curl-tar', section: 'rootfs', booty: false,
    label: 'sfdisk + mkfs.ext4 + curl | zstd -dc | tar -x',
    command: (c) => [
      `printf 'start=2048, type=L\\n' | sfdisk -q --wipe always --label gpt ${q(c.dev)} 2>/dev/null`,
      `partx -a ${q(c.dev)}`,
      `mkfs.ext4 -F -q ${q(`${c.dev}p1`)}`,
      `mount -t ext4 ${q(`${c.dev}p1`)} ${q(c.mnt)}`,
      `curl -sSf ${q(c.url)} | zstd -dc | ${GNU_TAR} -C ${q(c.mnt)}`,
      `umount ${q(c.mnt)}`,
      `sync ${q(c.dev)}`,
    ].join(' && '),
  },
  {
    id: 'rootfs-booty', section: 'rootfs', booty: true,
    label: 'booty deploy --rootfs (--bootloader none)',
    command: (c) => `${q(c.node)} ${q(c.bundle)} deploy --rootfs ${q(c.url)} --disk ${q(c.dev)} --layout ${q(c.layout)} --bootloader none -q`,
  },
];

/** Each row once per origin ("<id>@booty", "<id>@nginx"), as the deploy rows. */
export const rootfsRows: RootfsRow[] = base.flatMap((r) => ORIGINS.map((o) => ({ ...r, id: `${r.id}@${o.slug}`, label: `${r.label} [${o.name}]` })));

/** Back to a blank disk between runs (not timed): nothing mounted, no partitions, no signatures. */
async function reset(dev: string, mnt: string): Promise<void> {
  await run(`umount -q ${q(mnt)}`);
  // another process probing block devices (the machine is shared) can hold the device for a
  // moment: wipefs opens it exclusively, so it is retried
  for (let i = 0; ; i++) {
    await run(`partx -d ${q(dev)}`);
    const r = await run(`wipefs -a -q ${q(dev)}`);
    if (r.code === 0) return;
    if (i >= 10) throw new Error(`bench: wipefs -a ${dev} failed: ${r.stderr.trim()}`);
    await new Promise((done) => setTimeout(done, 1000));
  }
}

/** The last run's check: the tree is there (every tar entry), ping kept its capability. */
async function check(dev: string, mnt: string, entries: number, pingCap: string): Promise<{ ok: boolean; note?: string }> {
  // both rows leave the kernel knowing partition 1 (partx -a, booty's BLKPG)
  if (!existsSync(`/sys/class/block/${basename(dev)}p1`)) await must(`partx -a ${q(dev)}`);
  await must(`mount -t ext4 -o ro ${q(`${dev}p1`)} ${q(mnt)}`);
  try {
    const found = Number((await must(`find ${q(mnt)} -xdev | wc -l`)).trim());
    const cap = (await must(`getcap ${q(join(mnt, 'usr/bin/ping'))}`)).trim().replace(/^\S+\s+/, '');
    if (found < entries) return { ok: false, note: `${found} entries on the disk, ${entries} in the tarball` };
    if (cap !== pingCap) return { ok: false, note: `getcap /usr/bin/ping: "${cap}", expected "${pingCap}"` };
    return { ok: true };
  } finally {
    await run(`umount ${q(mnt)}`);
  }
}

export async function benchRootfs(o: {
  root: string; node: string; bundle: string; cacheDir: string; runs: number; only: string[]; log: (s: string) => void;
  dropCaches: () => Promise<void>; setTarget: (t: Target | null) => void;
}): Promise<{ block: object; text: string; bad: boolean }> {
  const load0 = loadavg();
  const rows = o.only.length ? rootfsRows.filter((r) => o.only.some((x) => r.id === x || r.id.startsWith(x))) : rootfsRows;
  const rootfs = await ensureTestRootfs();
  const dir = join(o.cacheDir, 'rootfs');
  const dataDir = join(dir, 'data');
  mkdirSync(join(dataDir, 'images'), { recursive: true });
  const name = 'rootfs.tar.zst';
  rmSync(join(dataDir, 'images', name), { force: true });
  linkSync(rootfs.tarball, join(dataDir, 'images', name));
  const tarBytes = Number((await must(`zstd -dc ${q(rootfs.tarball)} | wc -c`)).trim());
  const entries = Number((await must(`zstd -dc ${q(rootfs.tarball)} | tar -t | wc -l`)).trim());

  const booty = await tryBootyServer(o.root, dataDir, `/images/${name}`, rootfs.tarball, (why) => o.log(`bench: rootfs: no booty server origin: ${why}`));
  let nginx: NginxOrigin | null = nginxBinary() === undefined ? null : await startNginx({ serve: join(dataDir, 'images') });
  const urls: Record<string, string | undefined> = {
    booty: booty === null ? undefined : `${booty.base}/images/${name}`,
    nginx: nginx === null ? undefined : `${nginx.url}/${name}`,
  };
  const mnt = mkdtempSync(join(tmpdir(), 'booty-bench-rootfs-'));
  const layout = join(dir, 'layout.json');
  writeFileSync(layout, JSON.stringify({ table: 'gpt', partitions: [{ size: 'rest', fs: 'ext4', mountpoint: '/' }] }));
  const target = await attachTarget(join(dir, 'target.img'), 3 * GiB, { partscan: true });
  o.setTarget(target);

  const results = new Map<string, RowResult>(rows.map((r) => [r.id, { id: r.id, section: r.section, label: r.label, booty: r.booty, bytes: tarBytes, runs: [] }]));
  try {
    for (let n = 0; n < o.runs; n++) {
      o.log(`bench: rootfs rows, round ${n + 1}/${o.runs}`);
      const k = rows.length ? n % rows.length : 0;
      for (const row of [...rows.slice(k), ...rows.slice(0, k)]) {
        const res = results.get(row.id)!;
        const url = urls[row.id.slice(row.id.indexOf('@') + 1)];
        if (url === undefined) { res.na = 'origin not running'; continue; }
        await reset(target.dev, mnt);
        await o.dropCaches();
        await must(`cat ${q(rootfs.tarball)} > /dev/null`);
        const s = await measure(row.command({ node: o.node, bundle: o.bundle, url, dev: target.dev, mnt, layout }), o.root);
        const rec: RunRecord = { run: n + 1, ok: s.code === 0, wallS: s.wallS, userS: s.userS, sysS: s.sysS, maxRssKiB: s.maxRssKiB };
        if (!rec.ok) rec.error = `exit ${s.code}: ${(s.stderr.trim() || s.stdout.trim()).slice(-300)}`;
        if (rec.ok && n === o.runs - 1) {
          const c = await check(target.dev, mnt, entries, rootfs.pingCapability);
          rec.verified = c.ok;
          if (c.note !== undefined) rec.verifyNote = c.note;
        }
        res.runs.push(rec);
        o.log(`  [${n + 1}/${o.runs}] ${row.label.padEnd(60)} ` + (rec.ok
          ? `${rec.wallS.toFixed(2)} s  ${(tarBytes / 1e6 / rec.wallS).toFixed(0)} MB/s  cpu ${(rec.userS + rec.sysS).toFixed(1)} s  rss ${(rec.maxRssKiB / 1024).toFixed(0)} MiB`
          : `FAILED ${rec.error}`) + (rec.verified === undefined ? '' : rec.verified ? '  verified' : `  VERIFY FAILED: ${rec.verifyNote}`));
      }
    }
  } finally {
    await reset(target.dev, mnt).catch(() => undefined);
    await nginx?.close();
    nginx = null;
    stopServers();
    await detachTarget(target);
    o.setTarget(null);
    rmSync(mnt, { recursive: true, force: true });
  }

  const load1 = loadavg();
  const list = rows.map((r) => results.get(r.id)!);
  const text = [
    `== ROOTFS: the Debian 12 tree of the rootfs e2e (scripts/build-test-rootfs.sh), ${(rootfs.bytes / 1e6).toFixed(0)} MB tar.zst, ${(tarBytes / 1e6).toFixed(0)} MB of tar, ${entries} entries`,
    `load average ${load0.map((x) => x.toFixed(2)).join(' ')} at the start, ${load1.map((x) => x.toFixed(2)).join(' ')} at the end (the machine is shared: figures are noisy)`,
    `target: ${target.dev} (losetup -P) over a 3 GiB file on ${o.root}'s disk, wiped before each run (each row partitions it, makes the ext4 and fsyncs); ` +
      `origins: ${booty === null ? 'no booty server' : `booty server (${booty.base}, sends the sha256: booty verifies it)`} and ${urls.nginx === undefined ? 'no nginx (missing)' : 'Debian\'s nginx'}; ` +
      `${o.runs} run(s) per row, interleaved; page cache dropped, then the tarball read once, before each run; last run checked: every tar entry on the disk, getcap /usr/bin/ping`,
    table(list, rows),
  ].join('\n');
  const block = {
    kind: 'rootfs', loadavg: { start: load0, end: load1 }, tarball: { file: rootfs.tarball, bytes: rootfs.bytes, tarBytes, entries },
    rows: list.map((r) => ({ ...r, stats: stats(r) })), ratios: ratios(list, rows),
  };
  return { block, text, bad: list.some((r) => r.runs.some((x) => x.verified === false)) };
}
