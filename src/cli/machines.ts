// `booty machines add|set|list|show|rm`: the machine inventory of a booty server, through its
// REST API (POST/PUT/DELETE /api/machines[/<mac>]). The server validates; this command builds
// the action from flags (or a JSON file) and prints what the server answered.

import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { request } from '../net/undici.ts';
import type { MachineDetail, MachineSummary } from '../server/machines/machine-summary.ts';

const HELP = `usage: booty machines <command> [options]

commands:
  list [--json]            every machine: phase, progress, action, last seen, hardware (its inventory)
  show MAC                 one machine: settings, last state, recent log
  add MAC [settings]       create a machine (refused if it exists)
  set MAC [settings]       change a machine (created if missing); action flags are merged
                           into its current action
  rm MAC [--history]       remove a machine (and its action file); --history also its runs and log

settings:
  --action A               deploy, capture, wipe, shell, none or inspect
  --image URL              image to deploy (implies --action deploy)
  --disk DEV               target disk (e.g. /dev/sda; default: the agent picks)
  --disk-serial S          disk hints (instead of --disk): the agent uses the smallest disk
  --disk-model S             matching every hint given; model and vendor match a part,
  --disk-vendor S            serial and WWN the whole (case-insensitive); sizes in bytes or
  --disk-wwn W               with a unit (100G = 100 GiB, 100GB = 10^9 bytes)
  --disk-min-size SIZE
  --disk-max-size SIZE
  --disk-rotational B      true: spinning disks only; false: SSD/NVMe only
  --disk-name NAME         kernel name (sda, nvme0n1)
  --disk-hctl H:C:T:L      SCSI address
  --disk-by-path NAME      /dev/disk/by-path name (e.g. pci-0000:00:1f.2-ata-1.0)
  --disk-transport T       nvme, sata, scsi, virtio, usb or mmc
  --clear-disk-hints       drop the machine's disk hints (the agent picks the first disk)
  --sha256 HEX             expected sha256 of the image as served
  --format F               deploy: auto|gzip|zstd|raw; capture: gzip|zstd|raw
  --upload URL             capture: where to upload (implies --action capture)
  --wipe-method M          wipe: quick (default), discard, zero or secure (implies --action wipe)
  --wipe-fallback F        wipe: zero (when the method cannot run on the disk) or none (fail; default)
  --hostname NAME          post-deploy: hostname written into the deployed system
  --after A                after success: reboot, poweroff or shell
  --on-error A             after failure: reboot, poweroff or shell
  --action-file FILE       the whole action as JSON (booty's or BOOTy's form)
  --persistent             run the action at every boot
  --one-shot               after a successful deploy/capture/wipe, boot from disk (the default)
  --rearm                  run the one-shot action once more
  --name NAME              a label shown in the dashboard

  --server URL             booty server (default: $BOOTY_SERVER or http://127.0.0.1:3000)
  --token TOKEN            bearer token (default: $BOOTY_TOKEN)
  --json                   print the server's JSON answer
`;

type Json = Record<string, unknown>;

class CliError extends Error {}

// flag -> diskHints field; the server validates the values (the CLI only shapes them)
const hintFlags = [
  ['disk-name', 'name'], ['disk-min-size', 'minSize'], ['disk-max-size', 'maxSize'], ['disk-serial', 'serial'],
  ['disk-model', 'model'], ['disk-vendor', 'vendor'], ['disk-wwn', 'wwn'], ['disk-rotational', 'rotational'],
  ['disk-hctl', 'hctl'], ['disk-by-path', 'byPath'], ['disk-transport', 'transport'],
] as const;

function rotationalOf(v: string): boolean {
  if (/^(true|yes|1|hdd)$/i.test(v)) return true;
  if (/^(false|no|0|ssd|nvme)$/i.test(v)) return false;
  throw new CliError(`--disk-rotational must be true (spinning disks) or false (SSD/NVMe), got "${v}"`);
}

/** The hint flags as a diskHints object; undefined when none was given. */
export function diskHintsFromFlags(v: Record<string, string | boolean | undefined>): Json | undefined {
  const h: Json = {};
  for (const [flag, field] of hintFlags) {
    const x = v[flag];
    if (typeof x !== 'string') continue;
    if (field === 'rotational') h[field] = rotationalOf(x);
    else if (field === 'minSize' || field === 'maxSize') h[field] = /^\d+$/.test(x) ? Number(x) : x;
    else h[field] = x;
  }
  return Object.keys(h).length === 0 ? undefined : h;
}

async function api(server: string, token: string | undefined, method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const headers: Record<string, string> = { 'user-agent': 'booty-machines' };
  if (token !== undefined && token !== '') headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await request(`${server.replace(/\/+$/, '')}${path}`, { method: method as 'GET', headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new CliError(`cannot reach the booty server at ${server} (${(e as { code?: string }).code ?? (e as Error).message}); start it or pass --server URL`);
  }
  const text = await res.body.text();
  let json: Json = {};
  try { json = JSON.parse(text) as Json; } catch { json = { text }; }
  if (res.statusCode >= 400) throw new CliError(`server answered ${res.statusCode}: ${String(json.error ?? text).trim()}`);
  return { status: res.statusCode, json };
}

function mb(n: number): string { return `${(n / 1e6).toFixed(n >= 1e9 ? 0 : 1)} MB`; }

export function progressText(m: Pick<MachineSummary, 'phase' | 'progress'>): string {
  const p = m.progress;
  if (p === undefined || (m.phase !== 'writing' && m.phase !== 'capturing' && m.phase !== 'uploading')) return '';
  const pct = p.total ? `${Math.floor((p.bytes / p.total) * 100)}% ` : '';
  return `${pct}${mb(p.bytes)} ${(p.rate / 1e6).toFixed(1)} MB/s${p.etaSeconds === undefined ? '' : ` ETA ${Math.round(p.etaSeconds)}s`}`;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n') + '\n';
}

/** The action flags as a partial action; undefined when none was given. */
async function actionFromFlags(v: Record<string, string | boolean | undefined>): Promise<Json | undefined> {
  if (typeof v['action-file'] === 'string') {
    try { return JSON.parse(await readFile(v['action-file'], 'utf8')) as Json; } catch (e) {
      throw new CliError(`--action-file ${v['action-file']}: ${(e as Error).message}`);
    }
  }
  const a: Json = {};
  const kind = v.action ?? (v.image !== undefined ? 'deploy' : v.upload !== undefined ? 'capture' : v['wipe-method'] !== undefined || v['wipe-fallback'] !== undefined ? 'wipe' : undefined);
  if (kind !== undefined) a.action = kind;
  for (const [flag, field] of [['image', 'image'], ['disk', 'disk'], ['sha256', 'sha256'], ['format', 'format'], ['upload', 'upload'], ['after', 'after'], ['on-error', 'onError'], ['wipe-method', 'method'], ['wipe-fallback', 'fallback']] as const) {
    if (v[flag] !== undefined) a[field] = v[flag];
  }
  if (v.hostname !== undefined) a.post = { hostname: v.hostname };
  const hints = diskHintsFromFlags(v);
  if (hints !== undefined && v['clear-disk-hints'] === true) throw new CliError('--clear-disk-hints contradicts the --disk-* hint flags');
  if (hints !== undefined && v.disk !== undefined) throw new CliError('--disk names the disk; the --disk-* hint flags find one: give one or the other');
  if (hints !== undefined) a.diskHints = hints;
  // null: "remove the hints" (never sent as such: see merged())
  if (v['clear-disk-hints'] === true) a.diskHints = null;
  return Object.keys(a).length === 0 ? undefined : a;
}

/**
 * Merge flag fields into the machine's current action (booty form); a new kind starts afresh.
 * Hints merge hint by hint; a disk replaces the hints and hints replace the disk (an action has
 * one or the other).
 */
export function merged(current: Json | undefined, change: Json): Json {
  const base = current === undefined || (change.action !== undefined && change.action !== current.action) ? {} : current;
  const out: Json = { ...base, ...change };
  if (change.post !== undefined) out.post = { ...(base.post as Json | undefined), ...(change.post as Json) };
  if (change.disk !== undefined) delete out.diskHints;
  if (change.diskHints === null) delete out.diskHints;
  else if (change.diskHints !== undefined) {
    delete out.disk;
    out.diskHints = { ...(base.diskHints as Json | undefined), ...(change.diskHints as Json) };
  }
  return out;
}

/** "QEMU Standard PC, serial S1, 2 CPUs, 1.0 GiB, disks: nvme0n1 nvme 64 MiB, ..." or "-". */
function hardwareText(h: MachineSummary['hardware']): string {
  if (h === undefined) return '-';
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
  return [
    [h.vendor, h.product].filter((x) => x !== undefined).join(' ') || 'unknown system',
    ...(h.serial === undefined ? [] : [`serial ${h.serial}`]),
    `${h.firmware}${h.secureBoot === true ? ' secure boot' : ''}`,
    `${h.cpus} CPU${h.cpus === 1 ? '' : 's'}`, `${gib(h.memoryBytes)} RAM`,
    `disks: ${h.disks.join(', ') || 'none'}`,
  ].join(', ');
}

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, strict: true, allowPositionals: true,
      options: {
        server: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
        action: { type: 'string' }, image: { type: 'string' }, disk: { type: 'string' }, sha256: { type: 'string' }, format: { type: 'string' },
        upload: { type: 'string' }, hostname: { type: 'string' }, after: { type: 'string' }, 'on-error': { type: 'string' },
        'action-file': { type: 'string' }, persistent: { type: 'boolean' }, 'one-shot': { type: 'boolean' }, rearm: { type: 'boolean' },
        name: { type: 'string' }, history: { type: 'boolean' },
        ...Object.fromEntries(hintFlags.map(([flag]) => [flag, { type: 'string' as const }])),
        'clear-disk-hints': { type: 'boolean' }, 'wipe-method': { type: 'string' }, 'wipe-fallback': { type: 'string' },
      },
    });
  } catch (e) {
    process.stderr.write(`booty machines: ${(e as Error).message}\n${HELP}`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  if (v.help === true) { process.stdout.write(HELP); return 0; }
  const [cmd, macArg, ...rest] = positionals;
  if (cmd === undefined || rest.length > 0) { process.stderr.write(HELP); return 2; }
  const server = v.server ?? process.env.BOOTY_SERVER ?? 'http://127.0.0.1:3000';
  const token = v.token ?? process.env.BOOTY_TOKEN;
  const needMac = () => {
    if (macArg === undefined) throw new CliError(`"booty machines ${cmd}" needs a MAC address (e.g. 52:54:00:12:34:56)`);
    return encodeURIComponent(macArg);
  };
  try {
    switch (cmd) {
      case 'list': {
        if (macArg !== undefined) throw new CliError('"booty machines list" takes no MAC');
        const { json } = await api(server, token, 'GET', '/api/machines');
        const ms = json.machines as MachineSummary[];
        if (v.json === true) { process.stdout.write(JSON.stringify(ms, null, 2) + '\n'); return 0; }
        const rows = [['MAC', 'NAME', 'PHASE', 'PROGRESS', 'NEXT BOOT', 'LAST SEEN', 'HARDWARE']];
        for (const m of ms) {
          const trial = m.trial === undefined ? '' : m.trial.state === 'pending' ? ` (trial pending until ${m.trial.deadline})`
            : m.trial.state === 'failed' || m.trial.state === 'handled' ? ` (TRIAL FAILED: not confirmed within ${m.trial.confirmWithin} s; ${m.trial.onFailure})` : ' (trial confirmed)';
          const next = m.actionError !== undefined ? 'INVALID ACTION' : (m.next ?? '-') + (m.persistent ? ' (persistent)' : '') + trial;
          rows.push([m.mac, m.name ?? '', m.phase ?? '-', progressText(m), next, m.lastSeen ?? 'never', hardwareText(m.hardware)]);
        }
        process.stdout.write(table(rows));
        return 0;
      }
      case 'show': {
        const { json } = await api(server, token, 'GET', `/api/machines/${needMac()}?lines=20`);
        process.stdout.write(JSON.stringify(json, null, 2) + '\n');
        return 0;
      }
      case 'add':
      case 'set': {
        const mac = needMac();
        const change = await actionFromFlags(v);
        if (v.persistent === true && v['one-shot'] === true) throw new CliError('--persistent and --one-shot contradict each other');
        const body: Json = {};
        if (v.persistent === true) body.persistent = true;
        if (v['one-shot'] === true) body.persistent = false;
        if (v.rearm === true) body.rearm = true;
        if (v.name !== undefined) body.name = v.name;
        if (cmd === 'add') {
          const action = change === undefined ? undefined : merged(undefined, change);
          if (action !== undefined && Object.keys(action).length > 0) body.action = action;
          body.mac = macArg;
          const { json } = await api(server, token, 'POST', '/api/machines', body);
          const m = json as Partial<MachineSummary>;
          process.stdout.write(v.json === true ? JSON.stringify(json, null, 2) + '\n' : `added ${String(m.mac)}: ${m.next ?? 'no action'}\n`);
          return 0;
        }
        if (change !== undefined) {
          let current: Json | undefined;
          try { current = ((await api(server, token, 'GET', `/api/machines/${mac}`)).json as Partial<MachineDetail>).configuredAction as Json | undefined; } catch { current = undefined; }
          body.action = typeof v['action-file'] === 'string' ? change : merged(current, change);
        }
        if (Object.keys(body).length === 0) throw new CliError('nothing to change: give an action flag, --persistent, --one-shot, --rearm or --name');
        const { json } = await api(server, token, 'PUT', `/api/machines/${mac}`, body);
        const m = json as Partial<MachineSummary>;
        process.stdout.write(v.json === true ? JSON.stringify(json, null, 2) + '\n' : `${String(m.mac)}: next boot: ${m.next ?? 'no action'}${m.persistent === true ? ' (persistent)' : ''}\n`);
        return 0;
      }
      case 'rm': {
        await api(server, token, 'DELETE', `/api/machines/${needMac()}${v.history === true ? '?history=1' : ''}`);
        process.stdout.write(`removed ${macArg}\n`);
        return 0;
      }
      default:
        process.stderr.write(`booty machines: unknown command "${cmd}"\n${HELP}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof CliError) { process.stderr.write(`booty machines: ${e.message}\n`); return 1; }
    throw e;
  }
}
