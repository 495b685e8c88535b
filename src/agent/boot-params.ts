// What the agent takes from the kernel command line (every parameter is documented in
// kernel-cmdline/README.md). Pure: the text of /proc/cmdline and the environment in, a settled
// BootParams out, plus warnings for values it could not use (a typo on the command line must
// not stop a machine from booting: it falls back to the default and says so).
import type { AfterAction } from '../config/action.ts';
import { allValues, lastValue, splitCmdline, type Cmdline } from './cmdline.ts';
import { parseTrustSpec } from '../net/trust-spec.ts';
import { parseDuration } from '../util/duration.ts';

/** Where the action comes from: booty's `MYURL` (`${base}/<mac>`) or BOOTy's `BOOTYURL` (`${base}/<mac>.bty`). */
export interface ServerRef {
  base: string;
  style: 'myurl' | 'bootyurl';
}

/** Steps before which `booty.break=` opens a shell (the agent goes on when the shell exits). */
export const breakPoints = ['modules', 'network', 'action', 'run'] as const;
export type BreakPoint = (typeof breakPoints)[number];

export interface BootParams {
  server: ServerRef | undefined;
  /** base URL for progress/log reports; default: the server base */
  reportBase: string | undefined;
  token: string | undefined;
  /** `booty.ca=`: certificate pins (sha256 hex) and CA URLs fetched over them; empty = no pinning */
  trust: { pins: string[]; caUrls: string[] };
  /** PXELINUX/iPXE `BOOTIF=01-aa-bb-..`, raw (the network module parses it) */
  bootif: string | undefined;
  /** kernel/dracut `ip=`, raw (the network module parses it) */
  ip: string | undefined;
  iface: string | undefined;
  disk: string | undefined;
  /** operator's choice on the command line; overrides the action's onError */
  onError: AfterAction | undefined;
  debug: boolean;
  /** how long to keep retrying the action fetch; 0 = forever */
  fetchTimeoutMs: number;
  /** how long to wait for disks and NICs to appear while loading modules */
  settleTimeoutMs: number;
  linkTimeoutMs: number | undefined;
  dhcpTimeoutMs: number | undefined;
  /** seconds shown before an automatic reboot/poweroff after a failure */
  countdownS: number;
  /** modules loaded whatever the hardware (besides the defaults) */
  extraModules: string[];
  /** modules never loaded (`booty.blacklist=` and the standard `modprobe.blacklist=`) */
  blacklist: string[];
  /** `<module>.<param>=<value>` words, as modprobe passes them: module -> `param=value ...` */
  moduleParams: Map<string, string>;
  breakAt: Set<BreakPoint>;
  warnings: string[];
}

export const defaults = {
  fetchTimeoutMs: 0,
  settleTimeoutMs: 30_000,
  countdownS: 30,
} as const;

export function normalizeModuleName(name: string): string {
  return name.replaceAll('-', '_');
}

function serverUrl(raw: string, key: string, warnings: string[]): string | undefined {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    warnings.push(`${key}=${raw} is not a URL (expected http://HOST[:PORT][/PATH]); ignored`);
    return undefined;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    warnings.push(`${key}=${raw}: only http:// and https:// are supported; ignored`);
    return undefined;
  }
  return u.href.replace(/\/+$/, '');
}

function listValue(v: string | undefined): string[] {
  return v === undefined ? [] : v.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

/** Every `booty.*` key the agent reads (an unknown one is most likely a typo: say so). */
export const bootyKeys = [
  'booty.report', 'booty.token', 'booty.iface', 'booty.disk', 'booty.onerror', 'booty.debug',
  'booty.timeout', 'booty.settle', 'booty.link-timeout', 'booty.dhcp-timeout', 'booty.countdown',
  'booty.modules', 'booty.blacklist', 'booty.break', 'booty.ca',
] as const;

function unknownBootyKeys(c: Cmdline): string[] {
  const known = new Set<string>(bootyKeys);
  return c.words
    .filter((w) => w.key.startsWith('booty.') && !known.has(w.key))
    .map((w) => `${w.key} is not a booty parameter (see kernel-cmdline/README.md); ignored`);
}

// Keys with a dot that are not module parameters.
const notModuleParams = new Set(['booty', 'modprobe']);

export function parseBootParams(cmdlineText: string, env: Record<string, string | undefined> = {}): BootParams {
  const c: Cmdline = splitCmdline(cmdlineText);
  const warnings: string[] = [];
  // The kernel also hands unknown key=value words to init's environment; the command line is
  // read first, the environment only fills in (e.g. when the agent is started by hand).
  const get = (key: string): string | undefined => lastValue(c, key) ?? env[key];

  let server: ServerRef | undefined;
  const myurl = get('MYURL');
  const bootyurl = get('BOOTYURL');
  if (myurl !== undefined) {
    const base = serverUrl(myurl, 'MYURL', warnings);
    if (base !== undefined) server = { base, style: 'myurl' };
    if (bootyurl !== undefined) warnings.push('both MYURL and BOOTYURL are set: using MYURL');
  }
  if (server === undefined && bootyurl !== undefined) {
    const base = serverUrl(bootyurl, 'BOOTYURL', warnings);
    if (base !== undefined) server = { base, style: 'bootyurl' };
  }

  let reportBase = server?.base;
  const report = lastValue(c, 'booty.report');
  if (report !== undefined) reportBase = serverUrl(report, 'booty.report', warnings) ?? reportBase;

  const duration = (key: string): number | undefined => {
    const v = lastValue(c, key);
    if (v === undefined) return undefined;
    const ms = parseDuration(v);
    if (ms === undefined) warnings.push(`${key}=${v} is not a duration (e.g. 30, 30s, 500ms, 2m); using the default`);
    return ms;
  };

  let onError: AfterAction | undefined;
  const oe = lastValue(c, 'booty.onerror');
  if (oe !== undefined) {
    if (oe === 'shell' || oe === 'reboot' || oe === 'poweroff') onError = oe;
    else warnings.push(`booty.onerror=${oe}: expected shell, reboot or poweroff; ignored`);
  }

  const breakAt = new Set<BreakPoint>();
  for (const b of listValue(lastValue(c, 'booty.break'))) {
    if ((breakPoints as readonly string[]).includes(b)) breakAt.add(b as BreakPoint);
    else warnings.push(`booty.break=${b}: expected one of ${breakPoints.join(', ')}; ignored`);
  }

  const ips = allValues(c, 'ip');
  if (ips.length > 1) warnings.push(`${ips.length} ip= parameters given: using the last (ip=${ips[ips.length - 1]})`);

  const moduleParams = new Map<string, string>();
  for (const w of c.words) {
    const dot = w.key.indexOf('.');
    if (dot <= 0 || dot === w.key.length - 1) continue;
    const mod = w.key.slice(0, dot);
    if (notModuleParams.has(mod)) continue;
    const param = w.key.slice(dot + 1);
    const v = w.value === undefined ? param : `${param}=${/\s/.test(w.value) ? `"${w.value}"` : w.value}`;
    const name = normalizeModuleName(mod);
    const prev = moduleParams.get(name);
    moduleParams.set(name, prev === undefined ? v : `${prev} ${v}`);
  }

  let countdownS: number = defaults.countdownS;
  const cd = lastValue(c, 'booty.countdown');
  if (cd !== undefined) {
    const ms = parseDuration(cd);
    if (ms === undefined) warnings.push(`booty.countdown=${cd} is not a duration; using ${defaults.countdownS}s`);
    else countdownS = Math.round(ms / 1000);
  }

  const trust = parseTrustSpec(allValues(c, 'booty.ca'));
  warnings.push(...trust.problems);
  if (trust.pins.length > 0 && server !== undefined && server.base.startsWith('http:')) {
    warnings.push(`booty.ca= is set but ${server.style === 'myurl' ? 'MYURL' : 'BOOTYURL'}=${server.base} is plain http: the agent will refuse it; use https://`);
  }

  const debugWord = c.words.find((w) => w.key === 'booty.debug');
  const debug = debugWord !== undefined && !(debugWord.value === '0' || debugWord.value === 'false' || debugWord.value === 'no');

  return {
    server,
    reportBase,
    token: lastValue(c, 'booty.token'),
    trust: { pins: trust.pins, caUrls: trust.caUrls },
    bootif: get('BOOTIF'),
    ip: ips.length > 0 ? ips[ips.length - 1] : undefined,
    iface: lastValue(c, 'booty.iface'),
    disk: lastValue(c, 'booty.disk'),
    onError,
    debug,
    fetchTimeoutMs: duration('booty.timeout') ?? defaults.fetchTimeoutMs,
    settleTimeoutMs: duration('booty.settle') ?? defaults.settleTimeoutMs,
    linkTimeoutMs: duration('booty.link-timeout'),
    dhcpTimeoutMs: duration('booty.dhcp-timeout'),
    countdownS,
    extraModules: listValue(lastValue(c, 'booty.modules')).map(normalizeModuleName),
    blacklist: [...listValue(lastValue(c, 'booty.blacklist')), ...listValue(lastValue(c, 'modprobe.blacklist'))].map(normalizeModuleName),
    moduleParams,
    breakAt,
    warnings: [...warnings, ...unknownBootyKeys(c)],
  };
}
