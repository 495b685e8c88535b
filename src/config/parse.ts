// parseAction(): the one door through which an action (from a file, the server, or the network)
// becomes a normalized Action. It accepts booty's form, BOOTy's form and the combined form that
// `booty server` serves (see schema.ts), fills in defaults, and refuses anything else with a
// BootyError (stage 'config') whose message names the field, e.g.
//   field "destinationDevice" must be an absolute /dev path (e.g. /dev/sda), got "sda"
// toBootyJson() is the inverse for the wire: BOOTy's fields at the top level (an unmodified BOOTy
// agent acts on them) plus booty's normalized action under "booty" (which booty prefers).
// Pure: never touches a disk or the network.

import { BootyError } from '../util/errors.ts';
import type {
  Action, AfterAction, CaptureAction, RootfsDeployAction, CaptureFormat, DeployAction, DiskHints, GrowSettings, ImageFormat, NetworkSettings,
  PostDeploy, TrialFailureAction, WipeMethod,
} from './action.ts';
import { DEFAULT_CONFIRM_WITHIN } from './action.ts';
import { formatSize, parseSize } from './disk-size.ts';
import { checkBootloaderFits, normalizeLayout, type Bootloader } from './rootfs-layout.ts';
import { DISK_HINT_NAMES, isAbsPath, validators } from './schema.ts';
import type { SchemaError, ValidatorName } from './schema.ts';

const BOOTY_ACTIONS = ['deploy', 'deploy-rootfs', 'capture', 'wipe', 'shell', 'none', 'inspect'] as const;
const BOOTY_LEGACY_ACTIONS = ['writeImage', 'readImage'] as const;

type Json = Record<string, unknown>;

/** Defaults of booty's form (documented in README "BOOTy compatibility"). */
export const DEFAULTS = {
  after: 'reboot' as AfterAction,
  // On failure keep the failure screen on the console instead of PXE-looping into a re-image.
  onError: 'shell' as AfterAction,
  wipeOnError: false,
  dryRun: false,
  deployFormat: 'auto' as ImageFormat,
  captureFormat: 'gzip' as CaptureFormat,
};

function configError(message: string, field?: string): BootyError {
  return new BootyError({ stage: 'config', code: field === undefined ? 'CONFIG_INVALID' : 'CONFIG_FIELD', message, diskState: 'untouched' });
}

/** A value as an operator would recognise it in their file, shortened. */
export function showValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  let s: string;
  try { s = JSON.stringify(v) ?? String(v); } catch { s = String(v); }
  return s.length > 80 ? `${s.slice(0, 77)}… (${s.length} characters)` : s;
}

function pathToField(instancePath: string, prefix: string): string {
  let out = prefix;
  for (const raw of instancePath.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(seg)) out += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

function join(field: string, key: string): string {
  return field === '' ? key : /^[A-Za-z_$][\w$]*$/.test(key) ? `${field}.${key}` : `${field}[${JSON.stringify(key)}]`;
}

/** Turn ajv's first error into a sentence that names the field. */
function describeSchemaError(errors: SchemaError[], prefix: string): BootyError {
  // anyOf reports each branch's failure first; the anyOf error itself carries the description.
  const err = errors.find((e) => e.keyword === 'anyOf') ?? errors.find((e) => e.keyword !== 'if') ?? errors[0];
  const field = pathToField(err.instancePath, prefix);
  const parent = (err.parentSchema ?? {}) as { description?: string; properties?: Json };
  switch (err.keyword) {
    case 'required': {
      const missing = join(field, String((err.params as { missingProperty: string }).missingProperty));
      return configError(`field "${missing}" is required`, missing);
    }
    case 'additionalProperties': {
      const extra = join(field, String((err.params as { additionalProperty: string }).additionalProperty));
      const known = Object.keys(parent.properties ?? {});
      const hint = known.length > 0 ? ` (known fields: ${known.join(', ')})` : '';
      return configError(`field "${extra}" is not a known field${hint}`, extra);
    }
    case 'maxLength':
    case 'maxItems':
    case 'maxProperties': {
      const limit = (err.params as { limit: number }).limit;
      const unit = err.keyword === 'maxLength' ? 'characters' : err.keyword === 'maxItems' ? 'items' : 'entries';
      return configError(`field "${field}" is too long (at most ${limit} ${unit}), got ${showValue(err.data)}`, field);
    }
    default: {
      const expected = parent.description ?? err.message ?? 'valid';
      return configError(`field "${field || 'action'}" must be ${expected}, got ${showValue(err.data)}`, field);
    }
  }
}

function validate(name: ValidatorName, input: Json, prefix: string): void {
  const v = validators[name];
  if (!v(input)) throw describeSchemaError(v.errors ?? [], prefix);
}

function requireObject(input: unknown, field: string): Json {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    const what = field === '' ? 'the action' : `field "${field}"`;
    throw configError(`${what} must be a JSON object like {"action": "deploy", ...}, got ${showValue(input)}`, field || 'action');
  }
  return input as Json;
}

function withoutUndefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

// ---------------------------------------------------------------------------------------------
// booty's own form

function commonOf(j: Json) {
  return {
    after: (j.after as AfterAction | undefined) ?? DEFAULTS.after,
    onError: (j.onError as AfterAction | undefined) ?? DEFAULTS.onError,
    wipeOnError: (j.wipeOnError as boolean | undefined) ?? DEFAULTS.wipeOnError,
    dryRun: (j.dryRun as boolean | undefined) ?? DEFAULTS.dryRun,
  };
}

function growOf(g: unknown): GrowSettings | false {
  if (g === undefined || g === false) return false;
  if (g === true) return { partition: 'last' };
  const o = g as { partition: number | 'last'; lvmRoot?: string };
  return withoutUndefined({ partition: o.partition, lvmRoot: o.lvmRoot });
}

function postOf(p: unknown, prefix: string): PostDeploy | undefined {
  if (p === undefined) return undefined;
  const o = p as { hostname?: string; network?: NetworkSettings; files?: Record<string, string> };
  if (o.files !== undefined) {
    for (const path of Object.keys(o.files)) {
      if (!isAbsPath(path)) {
        const field = join(join(join(prefix, 'post'), 'files'), path);
        throw configError(`field "${field}" must be named by an absolute path without "." or ".." segments`, field);
      }
    }
  }
  const network = o.network === undefined ? undefined : withoutUndefined({
    address: o.network.address, gateway: o.network.gateway,
    nameservers: o.network.nameservers === undefined ? undefined : [...o.network.nameservers],
    interface: o.network.interface,
  });
  return withoutUndefined({ hostname: o.hostname, network, files: o.files === undefined ? undefined : { ...o.files } });
}

/** Hints with sizes in bytes; `disk` and `diskHints` together are refused (which would win?). */
function diskHintsOf(j: Json, prefix: string): DiskHints | undefined {
  const h = j.diskHints as Json | undefined;
  if (h === undefined) return undefined;
  const field = join(prefix, 'diskHints');
  if (j.disk !== undefined) {
    throw configError(`field "${field}" cannot be combined with "${join(prefix, 'disk')}": give either the disk or hints to find it (a kernel name goes in diskHints.name)`, field);
  }
  const out: Json = {};
  for (const k of DISK_HINT_NAMES) {
    const v = h[k];
    if (v === undefined) continue;
    out[k] = k === 'minSize' || k === 'maxSize' ? parseSize(v) : v;
  }
  const { minSize, maxSize } = out as DiskHints;
  if (minSize !== undefined && maxSize !== undefined && minSize > maxSize) {
    const f = join(field, 'minSize');
    throw configError(`field "${f}" (${formatSize(minSize)}) must not be above "${join(field, 'maxSize')}" (${formatSize(maxSize)}): no disk could match`, f);
  }
  return out as DiskHints;
}

/** "serial=S4X, minSize=100.0 GiB (...)": the hints as one line, for logs and listings. */
export function summarizeDiskHints(h: DiskHints): string {
  return DISK_HINT_NAMES.filter((k) => h[k] !== undefined).map((k) => {
    const v = h[k];
    return `${k}=${typeof v === 'number' ? formatSize(v) : typeof v === 'string' ? JSON.stringify(v) : String(v)}`;
  }).join(', ');
}

/** The trial boot's settings: only with bootOrder "trial" (elsewhere they would be ignored
 *  silently), with their defaults; capture needs its upload and only capture takes one. */
function trialOf(j: Json, prefix: string): Pick<DeployAction, 'confirmWithin' | 'onTrialFailure' | 'trialCaptureUpload'> {
  const fields = ['confirmWithin', 'onTrialFailure', 'trialCaptureUpload'] as const;
  if (j.bootOrder !== 'trial') {
    const given = fields.find((f) => j[f] !== undefined);
    if (given !== undefined) {
      const field = join(prefix, given);
      throw configError(`field "${field}" needs "${join(prefix, 'bootOrder')}": "trial" (it is about the trial boot), got bootOrder ${showValue(j.bootOrder)}`, field);
    }
    return {};
  }
  const onTrialFailure = (j.onTrialFailure as TrialFailureAction | undefined) ?? 'redeploy';
  const upload = j.trialCaptureUpload as string | undefined;
  if (onTrialFailure === 'capture' && upload === undefined) {
    const field = join(prefix, 'trialCaptureUpload');
    throw configError(`field "${field}" is required when "${join(prefix, 'onTrialFailure')}" is "capture": the URL the disk is uploaded to (e.g. http://SERVER:3000/images/<name>.img.gz)`, field);
  }
  if (onTrialFailure !== 'capture' && upload !== undefined) {
    const field = join(prefix, 'trialCaptureUpload');
    throw configError(`field "${field}" is only used when "${join(prefix, 'onTrialFailure')}" is "capture", got onTrialFailure ${showValue(onTrialFailure)}`, field);
  }
  return withoutUndefined({ confirmWithin: (j.confirmWithin as number | undefined) ?? DEFAULT_CONFIRM_WITHIN, onTrialFailure, trialCaptureUpload: upload });
}

function checkLevel(format: CaptureFormat, level: number | undefined, prefix: string): void {
  if (level === undefined) return;
  const field = join(prefix, 'level');
  if (format === 'raw' || format === 'tar') throw configError(`field "${field}" must be absent for format "${format}", got ${level}`, field);
  // the levels capture() takes (src/image/capture.ts): refused here, before the agent reads a byte
  if ((format === 'gzip' || format === 'tar.gz') && level > 9) throw configError(`field "${field}" must be a gzip level 1-9, got ${level}`, field);
}

function parseBootyForm(j: Json, prefix: string): Action {
  const action = j.action;
  if (typeof action !== 'string' || !(BOOTY_ACTIONS as readonly string[]).includes(action)) {
    const field = join(prefix, 'action');
    throw configError(`field "${field}" must be one of ${[...BOOTY_ACTIONS, ...(prefix === '' ? BOOTY_LEGACY_ACTIONS : [])].map((a) => `"${a}"`).join(', ')}, got ${showValue(action)}`, field);
  }
  validate(action as ValidatorName, j, prefix);
  const common = commonOf(j);
  switch (action as Action['action']) {
    case 'deploy': {
      const d: DeployAction = withoutUndefined({
        action: 'deploy', image: j.image as string, disk: j.disk as string | undefined,
        diskHints: diskHintsOf(j, prefix),
        sha256: (j.sha256 as string | undefined)?.toLowerCase(),
        format: (j.format as ImageFormat | undefined) ?? DEFAULTS.deployFormat,
        imageSize: j.imageSize as number | undefined,
        restartOnChange: j.restartOnChange as boolean | undefined,
        requireChecksum: j.requireChecksum as boolean | undefined,
        registryAuth: j.registryAuth as { username: string; password: string } | undefined,
        gzipIndex: j.gzipIndex as false | string | undefined,
        stallTimeout: j.stallTimeout as number | undefined, retryFor: j.retryFor as number | undefined,
        p2p: j.p2p === undefined ? undefined : withoutUndefined({ ...(j.p2p as DeployAction['p2p']) }),
        bootOrder: j.bootOrder as DeployAction['bootOrder'],
        ...trialOf(j, prefix),
        grow: growOf(j.grow), post: postOf(j.post, prefix), ...common,
      });
      return d;
    }
    case 'deploy-rootfs': {
      const layout = normalizeLayout(j.layout, join(prefix, 'layout'));
      const bootloader = (j.bootloader as Bootloader | undefined) ?? 'both';
      checkBootloaderFits(layout, bootloader, join(prefix, 'bootloader'));
      const r: RootfsDeployAction = withoutUndefined({
        action: 'deploy-rootfs', rootfs: j.rootfs as string, disk: j.disk as string | undefined,
        diskHints: diskHintsOf(j, prefix), sha256: (j.sha256 as string | undefined)?.toLowerCase(),
        layout, bootloader, fstab: (j.fstab as 'generate' | 'keep' | undefined) ?? 'generate',
        bootOrder: j.bootOrder as 'network-first' | 'disk-first' | undefined,
        stallTimeout: j.stallTimeout as number | undefined, retryFor: j.retryFor as number | undefined,
        post: postOf(j.post, prefix), ...common,
      });
      return r;
    }
    case 'capture': {
      const format = (j.format as CaptureFormat | undefined) ?? DEFAULTS.captureFormat;
      checkLevel(format, j.level as number | undefined, prefix);
      const c: CaptureAction = withoutUndefined({
        action: 'capture', disk: j.disk as string | undefined, diskHints: diskHintsOf(j, prefix), upload: j.upload as string, format,
        level: j.level as number | undefined, protocol: (j.protocol as 'put' | 'multipart' | undefined) ?? 'put', ...common,
      });
      return c;
    }
    case 'wipe': return withoutUndefined({
      action: 'wipe', disk: j.disk as string | undefined, diskHints: diskHintsOf(j, prefix),
      method: (j.method as WipeMethod | undefined) ?? 'quick', fallback: (j.fallback as 'zero' | 'none' | undefined) ?? 'none', ...common,
    });
    case 'inspect': return withoutUndefined({ action: 'inspect', pollSeconds: j.pollSeconds as number | undefined, ...common });
    case 'shell': return { action: 'shell', ...common };
    case 'none': return { action: 'none', ...common };
  }
}

// ---------------------------------------------------------------------------------------------
// BOOTy's form

function parseLegacyForm(input: Json): Action {
  const j = { ...input };
  // Accept the correct spelling too, but never two different upload targets.
  if (j.destinationAddress !== undefined) {
    if (j.desintationAddress !== undefined && j.desintationAddress !== j.destinationAddress) {
      throw configError(`field "destinationAddress" contradicts "desintationAddress" (BOOTy's spelling): ${showValue(j.destinationAddress)} vs ${showValue(j.desintationAddress)}`, 'destinationAddress');
    }
    if (j.desintationAddress === undefined && typeof j.destinationAddress === 'string') j.desintationAddress = j.destinationAddress;
  }
  validate(j.action as ValidatorName, j, '');
  const shell = j.dropToShell === true;
  const common = {
    // BOOTy's dropToShell means "shell instead of reboot", after success and after failure alike.
    after: (shell ? 'shell' : 'reboot') as AfterAction,
    onError: (shell ? 'shell' : 'reboot') as AfterAction,
    wipeOnError: j.wipeDevice === true,
    dryRun: j.dryRun === true,
  };
  if (j.action === 'readImage') {
    return withoutUndefined({
      action: 'capture', disk: j.sourceDevice as string | undefined, upload: j.desintationAddress as string,
      format: (j.compressed === true ? 'gzip' : 'raw') as CaptureFormat, protocol: 'multipart', ...common,
    }) as CaptureAction;
  }
  const growPartition = (j.growPartition as number | undefined) ?? 1; // BOOTy's default
  const grow: GrowSettings | false = growPartition === 0 ? false
    : withoutUndefined({ partition: growPartition, lvmRoot: j.lvmRootName as string | undefined });
  const network = withoutUndefined({
    address: j.address as string | undefined, gateway: j.gateway as string | undefined,
    nameservers: j.nameserver === undefined ? undefined : [j.nameserver as string],
  });
  return withoutUndefined({
    action: 'deploy', image: j.sourceImage as string, disk: j.destinationDevice as string | undefined,
    // compressed=true keeps its meaning (gzip); otherwise the agent detects the format from the
    // first bytes rather than writing a compressed stream raw as BOOTy would have.
    format: (j.compressed === true ? 'gzip' : 'auto') as ImageFormat,
    grow, post: Object.keys(network).length > 0 ? { network } : undefined, ...common,
  }) as DeployAction;
}

// ---------------------------------------------------------------------------------------------

/**
 * Validate and normalize an action. `input` is parsed JSON, or a string holding JSON.
 * Throws BootyError (stage 'config') naming the offending field.
 */
export function parseAction(input: unknown): Action {
  let value = input;
  if (typeof input === 'string') {
    try { value = JSON.parse(input); } catch (e) {
      throw configError(`the action is not valid JSON (${(e as Error).message})`);
    }
  }
  const j = requireObject(value, '');
  if ('booty' in j) {
    validate('combined', j, '');
    return parseBootyForm(requireObject(j.booty, 'booty'), 'booty');
  }
  if (typeof j.action === 'string' && (BOOTY_LEGACY_ACTIONS as readonly string[]).includes(j.action)) return parseLegacyForm(j);
  return parseBootyForm(j, '');
}

/** BOOTy's view of an action, plus booty's own under "booty". */
export function toBootyObject(action: Action): Json {
  const legacy: Json = { action: action.action, dryRun: action.dryRun, dropToShell: action.after === 'shell', wipeDevice: action.wipeOnError };
  if (action.action === 'deploy' && !bootyCanWrite(action)) {
    // An image BOOTy cannot fetch or decode (oci://, zstd, xz, bzip2, qcow2) gets no writeImage:
    // an old agent sees an action it does not know, rather than writing compressed bytes raw.
  } else if (action.action === 'deploy') {
    const net = action.post?.network;
    Object.assign(legacy, withoutUndefined({
      action: 'writeImage', sourceImage: action.image, destinationDevice: action.disk,
      // BOOTy only knows gzip or raw; for 'auto' the image name is the best hint it can get.
      compressed: action.format === 'gzip' || (action.format === 'auto' && /\.(gz|zmg|tgz)$/i.test(new URL(action.image).pathname)),
      growPartition: action.grow !== false && typeof action.grow.partition === 'number' ? action.grow.partition : undefined,
      lvmRootName: action.grow !== false ? action.grow.lvmRoot : undefined,
      address: net?.address, gateway: net?.gateway, nameserver: net?.nameservers?.[0],
    }));
  } else if (action.action === 'capture' && (action.format === 'gzip' || action.format === 'raw')) {
    // BOOTy captures raw or gzip disk images only (not zstd, not a rootfs tarball)
    Object.assign(legacy, withoutUndefined({
      action: 'readImage', sourceDevice: action.disk, desintationAddress: action.upload, compressed: action.format === 'gzip',
    }));
  } else if (action.action === 'shell') {
    legacy.dropToShell = true;
  }
  return { ...legacy, booty: action };
}

/** Whether an unmodified BOOTy agent can write this deploy's image: http(s), gzip or raw. */
function bootyCanWrite(a: DeployAction): boolean {
  let url: URL;
  try { url = new URL(a.image); } catch { return false; }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  if (a.format === 'gzip' || a.format === 'raw') return true;
  return a.format === 'auto' && !/\.(zst|zstd|xz|bz2|qcow2|lz4)$/i.test(url.pathname);
}

/** JSON text served to agents: see toBootyObject(). */
export function toBootyJson(action: Action): string {
  return JSON.stringify(toBootyObject(action));
}

function targetOf(a: { disk?: string; diskHints?: DiskHints }): string {
  if (a.disk !== undefined) return a.disk;
  return a.diskHints === undefined ? '(first disk)' : `(disk with ${summarizeDiskHints(a.diskHints)})`;
}

/** A one-line summary for listings and logs, e.g. `deploy http://host/images/a.img.gz -> /dev/sda`. */
export function summarizeAction(a: Action): string {
  switch (a.action) {
    case 'deploy': return `deploy ${a.image} -> ${targetOf(a)}`;
    case 'deploy-rootfs': return `deploy-rootfs ${a.rootfs} -> ${targetOf(a)} (${a.layout.table}, ${a.layout.partitions.length} partitions, bootloader ${a.bootloader})`;
    case 'capture': return `capture ${targetOf(a)} -> ${a.upload} (${a.format})`;
    case 'wipe': return `wipe ${targetOf(a)} (${a.method}${a.method === 'quick' || a.fallback === 'none' ? '' : `, fallback ${a.fallback}`})`;
    case 'inspect': return 'inspect (report the hardware, wait for an operator)';
    case 'shell': return 'shell';
    case 'none': return 'none (boot from disk)';
  }
}
