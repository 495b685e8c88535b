// booty as PID 1: the ordered boot steps of the initramfs agent.
//   1 mount /dev, /proc, /sys, /tmp, /run, /dev/pts (+ device nodes)
//   2 read the kernel command line
//   3 load the kernel modules the hardware needs
//   4 bring up the network (DHCP or ip=)
//   5 fetch and validate the action (before any disk is touched)
//   6 run it (deploy + grow + configure, capture, wipe, shell, none), reporting to the server
//   7 end: unmount, sync, reboot / power off / shell
// On any failure: a summary box on the console, the error to the server, then a shell (respawned
// when it exits) or a reboot after a countdown. PID 1 must never exit (the kernel would panic),
// so this function never returns and nothing thrown anywhere escapes it.
import fs from 'node:fs';
import type { Action, AfterAction } from '../config/action.ts';
import type { Phase } from '../config/report.ts';
import { bringUpNetwork, type NetworkHandle } from '../net/configure.ts';
import { parseBootif, parseIpParam } from '../net/ip-param.ts';
import type { Reporter } from '../report/client.ts';
import { powerOffNow, rebootNow, sync } from '../sys/power.ts';
import { BootyError, isBootyError, type DiskState } from '../util/errors.ts';
import { createAgentLog, logPath, type AgentLog } from './agent-log.ts';
import { parseBootParams, type BootParams, type BreakPoint } from './boot-params.ts';
import { mountEarly, unmountEarly } from './early-mounts.ts';
import { formatFailureScreen } from './failure-screen.ts';
import { loadHardwareModules, ModuleLoader } from './modules.ts';
import { startReaper } from './reaper.ts';
import type { RunState } from './run-action.ts';
import type { WarmUp } from './warm-up.ts';
import { runShellOnce, shellForever, shellPath } from './shell.ts';
import { collectInventory, summarizeInventory } from '../inventory/collect.ts';
import { reportLldpNeighbors } from '../inventory/lldp.ts';
import { mountEfivars } from './efivars.ts';
import { waitForOperator } from './inspect-wait.ts';
import { describeKernelTimeline, parseKernelTimeline, readKmsg } from './kernel-timeline.ts';
import { bootProfiler, dumpBootProfile, profileEndLine } from './boot-profile.ts';

const totalSteps = 7;

type AfterLease = typeof import('./after-lease.ts');

class Agent {
  readonly out: AgentLog = createAgentLog();
  readonly log = this.out.log;
  params: BootParams = parseBootParams('');
  mounted: string[] = [];
  modules: ModuleLoader | undefined;
  net: NetworkHandle | undefined;
  reporter: Reporter | undefined;
  action: Action | undefined;
  step = '0/7 start';
  state: RunState = { diskState: 'untouched' };
  failing = false;
  ending = false;
  private afterLease: Promise<AfterLease> | undefined;

  /** after-lease.ts (HTTP, schema, actions), loaded once; the server trust is set before anything in it connects. */
  private later(): Promise<AfterLease> {
    this.afterLease ??= import('./after-lease.ts').then((m) => {
      m.setServerTrust({ pins: this.params.trust.pins });
      return m;
    });
    return this.afterLease;
  }

  async run(): Promise<never> {
    this.guard();
    try {
      await this.boot();
    } catch (e) {
      return this.fail(e);
    }
    return this.sleepForever();
  }

  /** PID 1 survives everything: stray errors go to the failure path, exit attempts are refused. */
  private guard(): void {
    // Without a ref'd handle Node exits when nothing is pending (e.g. no shell to wait for).
    setInterval(() => { /* keep the event loop alive */ }, 1 << 30);
    process.on('uncaughtException', (e) => { void this.fail(e); });
    process.on('unhandledRejection', (e) => { void this.fail(e); });
    process.stdout.on('error', () => { /* a console that went away must not kill PID 1 */ });
    process.stderr.on('error', () => { /* idem */ });
    const exit = process.exit.bind(process);
    process.exit = ((code?: number) => {
      if (process.pid !== 1) return exit(code);
      this.log.error(`something called process.exit(${code ?? ''}); PID 1 must not exit: ignored`);
      return undefined as never;
    }) as typeof process.exit;
    // busybox's reboot/poweroff/halt signal PID 1: SIGTERM reboots, SIGUSR2 and SIGUSR1 power off.
    process.on('SIGTERM', () => { void this.end('reboot', 'SIGTERM (reboot)'); });
    process.on('SIGUSR2', () => { void this.end('poweroff', 'SIGUSR2 (poweroff)'); });
    process.on('SIGUSR1', () => { void this.end('poweroff', 'SIGUSR1 (halt)'); });
    process.on('SIGINT', () => { this.log.info('SIGINT ignored (PID 1)'); });
  }

  private begin(n: number, what: string, phase?: Phase): void {
    this.step = `${n}/${totalSteps} ${what}`;
    this.log.info(`step ${n}/${totalSteps}: ${what}`);
    if (phase !== undefined) this.phase(phase);
  }

  private phase(p: Phase, detail?: string): void {
    this.reporter?.event({ type: 'phase', time: new Date().toISOString(), phase: p, ...(detail === undefined ? {} : { detail }) });
  }

  private async breakHere(at: BreakPoint): Promise<void> {
    if (!this.params.breakAt.has(at)) return;
    this.log.info(`booty.break=${at}: opening a shell before this step; exit the shell to go on`);
    await runShellOnce(this.log);
    this.log.info(`booty.break=${at}: shell exited, going on`);
  }

  private async boot(): Promise<void> {
    process.env.PATH ??= shellPath;
    process.env.HOME ??= '/';

    // 1: nothing else works without /proc, /sys and /dev
    this.step = `1/${totalSteps} mount filesystems`;
    const early = mountEarly();
    this.mounted = early.mounted;
    try { this.out.calibrate(fs.readFileSync('/proc/uptime', 'utf8')); } catch { /* no /proc: stamps stay relative */ }
    try { this.out.openFile(logPath); } catch (e) { this.log.warn(`cannot open ${logPath}: ${(e as Error).message}`); }
    this.begin(1, 'mount filesystems');
    // BOOTY_PROFILE: the profile /init started goes to the console at the first bytes written (or all of them)
    if (bootProfiler() !== undefined) {
      const end = profileEndLine(process.env.BOOTY_PROFILE);
      this.log.info(`boot profile: V8's CPU profiler runs (BOOTY_PROFILE=${process.env.BOOTY_PROFILE ?? ''}); printed on the console at ${end.source}`);
      this.log.addSink((_level, message) => { if (end.test(message)) dumpBootProfile(message); });
    }
    this.log.info(`booty ${process.version === '' ? '' : `on node ${process.version} `}as PID ${process.pid}`);
    for (const m of early.messages) this.log.info(m);
    for (const p of early.problems) this.log.error(p);
    const kernel = describeKernelTimeline(parseKernelTimeline(readKmsg()));
    if (kernel !== undefined) this.log.info(kernel);
    startReaper({ onReap: (n) => this.log.debug(`reaped ${n} orphaned process${n === 1 ? '' : 'es'}`) });

    // 2
    this.begin(2, 'read the kernel command line');
    let cmdline = '';
    try { cmdline = fs.readFileSync('/proc/cmdline', 'utf8').trim(); } catch (e) { this.log.error(`cannot read /proc/cmdline: ${(e as Error).message}`); }
    this.params = parseBootParams(cmdline, process.env);
    if (this.params.debug) this.out.setConsoleLevel('debug');
    this.log.info(`command line: ${cmdline}`);
    for (const w of this.params.warnings) this.log.warn(w);
    if (this.params.server === undefined) this.log.warn('no MYURL= or BOOTYURL= on the kernel command line: there is no server to ask for an action');
    else this.log.info(`server: ${this.params.server.base} (${this.params.server.style === 'myurl' ? 'MYURL' : 'BOOTYURL, BOOTy protocol'})`);
    // before any connection (reports included): only pinned https servers from here on (later() sets it)
    if (this.params.trust.pins.length > 0) this.log.info(`server pinned (booty.ca): ${this.params.trust.pins.map((p) => `sha256:${p.slice(0, 16)}…`).join(', ')}; plain http refused`);

    // 3
    await this.breakHere('modules');
    this.begin(3, 'load kernel modules');
    this.modules = new ModuleLoader({ log: this.log, blacklist: this.params.blacklist, moduleParams: this.params.moduleParams });
    const hwDone = loadHardwareModules(this.modules, { log: this.log, timeoutMs: this.params.settleTimeoutMs, extra: this.params.extraModules });
    // Step 4 starts while step 3 waits for the disks to settle: a NIC is there once its driver
    // is loaded (bringUpNetwork waits for one), and a DHCP server may take seconds to offer
    // (dnsmasq pings the address first), so the two waits overlap. booty.break=network keeps
    // the steps apart.
    const together = !this.params.breakAt.has('network');
    let netDone: Promise<NetworkHandle> | undefined;
    if (together) {
      this.log.info(`step 4/${totalSteps}: bring up the network (while the hardware settles)`);
      netDone = this.bringUpNetwork();
      netDone.catch(() => { /* awaited below, once the hardware step is done */ });
    }
    // The action is fetched as soon as the network is up; only running it (step 6, and the
    // inventory) waits for the disks to settle (500 ms without change), which may end after a
    // fast DHCP server answered.
    const hwLogged = hwDone.then((hw) => {
      this.log.info(`hardware: ${hw.loaded.length} modules loaded in ${hw.seconds.toFixed(1)} s; disks: ${hw.disks.join(' ') || 'none'}; network interfaces: ${hw.nics.join(' ') || 'none'}`);
      // what the action will need (HTTP, schema, actions; then compiled validators and a decode
      // worker), if the first DISCOVER did not start it already (static ip=, no DHCP)
      if (together) setImmediate(() => this.warmUpOnce());
    });
    hwLogged.catch(() => { /* awaited below */ });
    if (!together) await hwLogged;

    // 4
    if (together) {
      this.step = `4/${totalSteps} bring up the network`;
    } else {
      await this.breakHere('network');
      this.begin(4, 'bring up the network');
    }
    this.net = await (netDone ?? this.bringUpNetwork());
    this.log.info(`network: ${this.net.iface} ${this.net.mac} ${this.net.address}/${this.net.prefix}${this.net.gateway === undefined ? '' : ` via ${this.net.gateway}`}`);
    const later = await this.later();
    this.startReporter(later);
    this.phase('network', `${this.net.iface} ${this.net.address}/${this.net.prefix}`);

    // 5
    await this.breakHere('action');
    this.begin(5, 'fetch the action', 'fetching-action');
    if (this.params.server === undefined) {
      throw new BootyError({ stage: 'config', code: 'no-server', diskState: 'untouched', message: 'no MYURL= or BOOTYURL= on the kernel command line', hint: 'add MYURL=http://SERVER:PORT to the kernel command line (see kernel-cmdline/README.md)' });
    }
    // The inventory goes to the server at every boot, once the disks settled: before an inspect
    // waits, as soon as any other action starts, but during a deploy only once its first bytes
    // are written (or it ends): on a slow CPU collecting and sending it takes the main thread
    // ~0.5 s that the first byte would wait for (README "In the VM").
    let inventory: Promise<void> | undefined;
    const sendInventory = (): Promise<void> => {
      if (inventory === undefined) {
        inventory = hwLogged.then(() => this.reportInventory(later));
        inventory.catch(() => { /* hwLogged's error is awaited below */ });
      }
      return inventory;
    };
    const fetchOpts = { server: this.params.server, mac: this.net.mac, token: this.params.token, budgetMs: this.params.fetchTimeoutMs, log: this.log, caUrls: this.params.trust.caUrls };
    this.warming?.fetching();
    let fetched: Awaited<ReturnType<AfterLease['fetchAction']>>;
    try {
      fetched = await later.fetchAction(fetchOpts);
    } catch (e) {
      // no action (none for this MAC, the server unreachable...): the server still learns the hardware
      void sendInventory();
      throw e;
    }
    this.action = fetched.action;
    if (this.action.action === 'inspect') {
      await sendInventory();
      // one "fetching the action" line per poll would fill the machine's log while it waits for days
      const quiet = { ...this.log, info: (m: string) => this.log.debug(m) };
      this.action = await waitForOperator(this.action, async () => (await later.fetchAction({ ...fetchOpts, log: quiet, caUrls: [] })).action, this.log, () => this.phase('inspecting', 'waiting for an operator'));
    }
    if (this.action.action !== 'deploy') later.dropPrestartedDecodeWorker();

    // 6
    await hwLogged;
    await this.breakHere('run');
    this.begin(6, `run the action (${this.action.action})`);
    const started = performance.now();
    if (this.action.action !== 'deploy' && this.action.action !== 'deploy-rootfs') void sendInventory();
    let summary: Awaited<ReturnType<AfterLease['runAction']>>;
    try {
      summary = await later.runAction(this.action, { log: this.log, params: this.params, net: this.net, reporter: this.reporter, modules: this.modules, state: this.state, onUnderway: () => { void sendInventory(); } });
    } finally {
      void sendInventory();
    }
    this.reporter?.event({
      type: 'result', time: new Date().toISOString(), ok: true, action: this.action.action,
      seconds: summary.seconds ?? (performance.now() - started) / 1000,
      ...(summary.bytes === undefined ? {} : { bytes: summary.bytes }), ...(summary.sha256 === undefined ? {} : { sha256: summary.sha256 }),
      ...(summary.resumes === undefined ? {} : { resumes: summary.resumes }), ...(summary.restarts === undefined ? {} : { restarts: summary.restarts }),
      ...(summary.warning === undefined ? {} : { warning: summary.warning }),
      ...(summary.method === undefined ? {} : { method: summary.method }),
      ...(summary.verification === undefined ? {} : { verification: summary.verification, verified: summary.verified === true }),
    });
    this.log.info(`action ${this.action.action} done`);
    this.phase('done');

    // 7
    await this.end(this.action.after, `the action's after=${this.action.after}`);
  }

  /** Collect the hardware inventory and send it; never throws (logged instead). */
  private async reportInventory(later: AfterLease): Promise<void> {
    try {
      const why = mountEfivars((name) => { this.modules?.load([name], new Map([[name, 'reading the Secure Boot state']]), true); });
      if (why !== undefined) this.log.debug(`inventory: Secure Boot state unknown: ${why}`);
      const inv = collectInventory();
      this.log.info(`inventory: ${summarizeInventory(inv)}`);
      if (this.params.reportBase === undefined || this.net === undefined) return;
      const send = (i: typeof inv) => later.sendInventory(i, { server: this.params.reportBase as string, mac: (this.net as NetworkHandle).mac, token: this.params.token, log: this.log });
      if (await send(inv)) this.log.info('inventory: sent to the server');
      // LLDP neighbours: heard in the background while the action runs, sent again when heard
      void reportLldpNeighbors(inv, send, this.log);
    } catch (e) {
      this.log.warn(`inventory: ${(e as Error).message}`);
    }
  }

  private warmedUp = false;
  private warming: WarmUp | undefined;

  /** Starts the work ahead of the action (after-lease.ts's warmUp) once: at the first DHCP DISCOVER, or once the hardware settled. */
  private warmUpOnce(): void {
    if (this.warmedUp) return;
    this.warmedUp = true;
    // The deploy's decode worker first, before after-lease.ts is evaluated: on a slow CPU its
    // start (a new isolate, its code, ISA-L, the timing of the gzip engines) is the longest piece
    // ahead of the first byte, and it runs on another CPU where there is one; evaluating
    // after-lease.ts first made a DHCP server that answers at once leave the image's first
    // block waiting for the worker (README "In the VM").
    import('../image/parallel/decode-worker.ts').then((m) => {
      if (m.decodeWorkerSupported()) m.prestartDecodeWorker();
    }).catch((e: unknown) => this.log.debug(`could not start a decode worker ahead of time: ${(e as Error).message}`)).finally(() => {
      this.later().then((m) => { this.warming = m.warmUp(this.params.server, this.log); }, () => { /* reported where it is awaited */ });
    });
  }

  private bringUpNetwork(): Promise<NetworkHandle> {
    const together = !this.params.breakAt.has('network');
    return bringUpNetwork({
      // while the DHCP server answers (seconds when it probes the address first), not after
      ...(together ? { onDhcpWaiting: () => this.warmUpOnce() } : {}),
      log: this.log,
      iface: this.params.iface,
      bootif: this.params.bootif === undefined ? undefined : parseBootif(this.params.bootif),
      ip: this.params.ip === undefined ? undefined : parseIpParam(this.params.ip),
      linkTimeoutMs: this.params.linkTimeoutMs,
      dhcpTimeoutMs: this.params.dhcpTimeoutMs,
    });
  }

  /** Reports go to the server from now on; what was logged before is sent first. */
  private startReporter(later: AfterLease | undefined): void {
    if (later === undefined || this.reporter !== undefined || this.net === undefined || this.params.reportBase === undefined) return;
    this.reporter = later.createReporter({ server: this.params.reportBase, mac: this.net.mac, token: this.params.token, log: { warn: (m) => this.log.debug(`report: ${m}`) } });
    for (const l of this.out.lines()) this.reporter.event({ type: 'log', time: l.time.toISOString(), level: l.level, message: l.message });
    this.log.addSink(this.reporter.sink);
  }

  /** Step 7 (and the end of a failure): reboot / power off after cleaning up, or a shell. */
  async end(how: AfterAction, why: string): Promise<never> {
    if (how === 'shell') {
      this.begin(7, 'open a shell');
      this.phase('shell');
      await this.reporter?.flush(5000);
      return shellForever(this.log, () => 'booty: finished; this is a shell on PID 1\'s console. `reboot -f` or `poweroff -f` to leave; exit for a new shell.');
    }
    if (this.ending) return this.sleepForever();
    this.ending = true;
    this.begin(7, how === 'reboot' ? 'reboot' : 'power off');
    this.log.info(`${how === 'reboot' ? 'rebooting' : 'powering off'} (${why})`);
    this.phase(how === 'reboot' ? 'rebooting' : 'powering-off');
    await this.reporter?.close(3000);
    if (this.net !== undefined) await withTimeout(this.net.stop(), 3000).catch(() => undefined);
    this.out.closeFile();
    for (const p of unmountEarly(this.mounted)) process.stdout.write(`booty: ${p}\n`);
    sync();
    try {
      if (how === 'reboot') rebootNow(); else powerOffNow();
    } catch (e) {
      process.stdout.write(`booty: ${how} failed: ${(e as Error).message}\n`);
    }
    return this.sleepForever();
  }

  /** The failure path: summary box, error to the server, wipe if asked, then shell or reboot. */
  async fail(err: unknown): Promise<never> {
    if (this.failing) {
      this.log.error(`another error while handling a failure: ${describeError(err)}`);
      return this.sleepForever();
    }
    this.failing = true;
    try {
      return await this.failInner(err);
    } catch (e) {
      process.stdout.write(`booty: the failure handler itself failed: ${describeError(e)}\n`);
      return this.sleepForever();
    }
  }

  private async failInner(err: unknown): Promise<never> {
    this.log.error(describeError(err));
    dumpBootProfile('failure');
    if (!isBootyError(err) && err instanceof Error && err.stack !== undefined) this.log.debug(err.stack);
    let diskState: DiskState = (isBootyError(err) ? err.diskState : undefined) ?? this.state.diskState;
    let diskNote = this.state.diskNote;
    // reports and wipeOnError need after-lease.ts; without a network (and so no action) nothing does
    const later = this.net === undefined && this.action === undefined ? undefined : await this.later().catch(() => undefined);

    const a = this.action;
    // BOOTy's wipeDevice: a failed deploy must not leave a half-written disk that might boot.
    // Never for a capture: its disk is the source and stays as it was.
    if (a !== undefined && a.wipeOnError && (a.action === 'deploy' || a.action === 'deploy-rootfs' || a.action === 'wipe') && this.state.disk !== undefined && !a.dryRun) {
      try {
        this.log.info(`wipeOnError: wiping ${this.state.disk}`);
        if (later === undefined) throw new Error('the agent\'s modules for this did not load');
        await later.wipeDisk(this.state.disk, { log: this.log });
        diskState = 'unknown';
        diskNote = 'its first 100 MiB and last MiB were zeroed (wipeOnError): it will not boot';
      } catch (e) {
        diskNote = `wipeOnError failed: ${(e as Error).message}`;
        this.log.error(diskNote);
      }
    }

    this.startReporter(later);
    let reported: boolean | undefined;
    if (this.reporter !== undefined) {
      this.reporter.event({
        type: 'result', time: new Date().toISOString(), ok: false, action: a?.action ?? 'boot',
        code: isBootyError(err) ? err.code : 'internal', message: describeError(err), diskState,
      });
      this.phase('failed', this.step);
      reported = await this.reporter.flush(5000);
    }

    const how: AfterAction = this.params.onError ?? a?.onError ?? 'shell';
    const next = how === 'shell'
      ? 'a shell opens below; type exit to see this summary again'
      : `${how === 'reboot' ? 'rebooting' : 'powering off'} in ${this.params.countdownS} s`;
    const screen = () => formatFailureScreen({
      step: this.step, error: err, disk: this.state.disk, diskState, diskNote,
      mac: this.net === undefined || later === undefined ? undefined : later.macForUrl(this.net.mac),
      address: this.net === undefined ? undefined : `${this.net.address}/${this.net.prefix}`,
      server: this.params.reportBase, reported: this.params.reportBase === undefined ? undefined : reported === true,
      logPath, next,
    });
    const text = screen();
    for (const line of text.split('\n')) this.log.debug(line);
    if (how === 'shell') return shellForever(this.log, screen);

    process.stdout.write(text + '\n');
    for (let left = this.params.countdownS; left > 0; left -= Math.min(left, 5)) {
      this.log.info(`${how === 'reboot' ? 'rebooting' : 'powering off'} in ${left} s`);
      await new Promise((r) => setTimeout(r, Math.min(left, 5) * 1000));
    }
    return this.end(how, 'after a failure');
  }

  private sleepForever(): Promise<never> {
    return new Promise<never>(() => { /* the keep-alive interval holds the process */ });
  }
}

function describeError(err: unknown): string {
  if (isBootyError(err)) return err.describe();
  if (err instanceof Error) return `internal error: ${err.message}`;
  return `internal error: ${String(err)}`;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return Promise.race([p, new Promise<undefined>((r) => setTimeout(() => r(undefined), ms).unref())]);
}

export async function runAgent(): Promise<never> {
  return new Agent().run();
}
