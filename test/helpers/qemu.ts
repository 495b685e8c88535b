// QEMU for the end-to-end tests: one VM per call, serial console captured (string + log file),
// waitFor(regex) on it, input sent to it, and the VM always killed when the test ends.
//
// Acceleration: KVM when a short probe boot shows it works, TCG (-cpu max) otherwise. The probe
// result is cached in .cache/qemu-accel (per host kernel and QEMU version); BOOTY_QEMU_ACCEL=tcg
// or =kvm skips it. Every boot gets panic=-1 and -no-reboot, so a panic or a reboot ends QEMU.
import { type ChildProcess, spawn, execFileSync } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync, type WriteStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cacheDir = path.join(repoRoot, '.cache');
export const logDir = path.join(cacheDir, 'test-logs');

export type Accel = 'kvm' | 'tcg';

export interface DiskSpec {
  path: string;
  format?: 'raw' | 'qcow2';
  /** virtio-blk (default), NVMe or virtio-scsi (sd) */
  bus?: 'virtio' | 'nvme' | 'scsi';
  readonly?: boolean;
  /** QEMU's cache mode: TEST_DISK_CACHE unless given (the bench passes `writeback`: there a
   *  flush costs what it costs on a real disk) */
  cache?: 'unsafe' | 'writeback';
}

/**
 * QEMU's cache mode for every test VM's disk: guest flushes ignored. A test disk is a throwaway
 * file, and with `writeback` every guest flush is an fdatasync on the host, a wait that grows with
 * the other tests' writes. In one CI run a deployed Debian's NVMe disk (whose driver gives up on a
 * command after 30 s) failed every write at first boot while the disk file was fine; host stalls
 * are the likeliest cause, and a test gains nothing from real flushes.
 */
export const TEST_DISK_CACHE = 'unsafe';

export interface NicSpec {
  /** tap device name, in netns when given (QEMU then runs inside that namespace) */
  tap: string;
  netns?: string;
  mac: string;
  model?: 'virtio-net-pci' | 'e1000' | 'e1000e';
}

export interface VmOptions {
  /** names the log file: .cache/test-logs/<name>.log */
  name: string;
  kernel?: string;
  initrd?: string;
  /** kernel command line; console=ttyS0 and panic=-1 are added when missing */
  append?: string;
  disks?: DiskSpec[];
  nic?: NicSpec;
  memMiB?: number;
  cpus?: number;
  accel?: Accel;
  /** no kernel given: boot from the disk (default) or the NIC's iPXE option ROM under SeaBIOS
   *  (QEMU's own ROM for the NIC model, from Debian's ipxe-qemu) */
  firmwareBoot?: 'disk' | 'network';
  extraArgs?: string[];
}

/** What node:test's TestContext offers for cleanup. */
export interface AfterHook { after(fn: () => unknown): void }

const running = new Set<ChildProcess>();
process.on('exit', () => { for (const c of running) c.kill('SIGKILL'); });

export class Vm {
  readonly name: string;
  readonly logFile: string;
  readonly args: string[];
  /** everything the serial console printed so far */
  output = '';
  /** the console without the kernel's own log lines: what the guest's programs wrote, in order */
  get userOutput(): string { return withoutKernelLines(this.output); }
  /** resolves when QEMU exits */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  private readonly log: WriteStream;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly listeners = new Set<() => void>();

  constructor(name: string, cmd: string, args: string[]) {
    this.name = name;
    this.args = args;
    mkdirSync(logDir, { recursive: true });
    this.logFile = path.join(logDir, `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.log`);
    this.log = createWriteStream(this.logFile);
    this.log.write(`# ${cmd} ${args.join(' ')}\n`);
    this.child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    running.add(this.child);
    const onData = (b: Buffer) => {
      const s = b.toString('utf8');
      this.output += s;
      this.log.write(b);
      for (const l of [...this.listeners]) l();
    };
    this.child.stdout!.on('data', onData);
    this.child.stderr!.on('data', onData);
    this.child.stdin!.on('error', () => { /* QEMU gone: writes are dropped */ });
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        running.delete(this.child);
        this.exitInfo = { code, signal };
        this.log.end(`\n# qemu exited: code ${code} signal ${signal}\n`);
        for (const l of [...this.listeners]) l();
        resolve(this.exitInfo);
      });
    });
  }

  get pid(): number | undefined { return this.child.pid; }
  get running(): boolean { return this.exitInfo === undefined; }

  /**
   * Resolves with the first match of re in the console output after `from` (a character offset,
   * default 0: the whole output). Rejects when timeoutMs passes or QEMU exits first, with the
   * tail of the console in the message.
   */
  waitFor(re: RegExp, timeoutMs: number, from = 0): Promise<RegExpExecArray> {
    return this.waitForIn(() => this.output.slice(from), re, timeoutMs);
  }

  /**
   * waitFor on userOutput: for lines a guest program prints (test markers), which a kernel log
   * line may cut in two.
   */
  waitForUser(re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    return this.waitForIn(() => this.userOutput, re, timeoutMs);
  }

  private waitForIn(text: () => string, re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (err?: Error, m?: RegExpExecArray) => {
        this.listeners.delete(check);
        if (timer) clearTimeout(timer);
        if (err) reject(err); else resolve(m!);
      };
      const check = () => {
        const r = new RegExp(re.source, re.flags.replace('g', ''));
        const m = r.exec(text());
        if (m) return done(undefined, m);
        if (!this.running) done(new Error(`${this.name}: QEMU exited (${JSON.stringify(this.exitInfo)}) before ${re} appeared; ${this.failureContext()}`));
      };
      timer = setTimeout(() => done(new Error(`${this.name}: ${re} did not appear within ${timeoutMs} ms; ${this.failureContext()}`)), timeoutMs);
      this.listeners.add(check);
      check();
    });
  }

  /** Types text on the serial console (add '\n' for Enter). */
  send(text: string): void {
    this.child.stdin!.write(text);
  }

  /** Waits for QEMU to exit on its own (power off, -no-reboot after a reboot or panic). */
  async waitExit(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name}: QEMU still running after ${timeoutMs} ms; console tail:\n${this.tail()}`)), timeoutMs);
    });
    try { return await Promise.race([this.exited, timeout]); } finally { clearTimeout(timer); }
  }

  tail(chars = 3000): string {
    return this.output.slice(-chars);
  }

  /** What a failed wait reports: the kernel's first signs of trouble (the tail alone may hold only
   *  their consequences; CI keeps nothing but this message), then the console's tail. */
  private failureContext(): string {
    const first = firstTroubleLines(this.output);
    return `${first.length > 0 ? `first kernel lines that look like trouble:\n${first.join('\n')}\n` : ''}console tail:\n${this.tail()}`;
  }

  /** SIGTERM, then SIGKILL after 3 s; resolves once QEMU is gone. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await this.exited;
    clearTimeout(t);
  }
}

/**
 * The first `max` kernel log lines (`[  136.4] ...`) that name an error, a timeout, a reset or a
 * failure, in order, so that the start of a cascade (an NVMe command timing out) is in a failed
 * test's message even when the console's tail holds only what followed (EXT4 I/O errors).
 */
export function firstTroubleLines(text: string, max = 12): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/\[ *\d+\.\d{6}\] [^\r\n]*/g)) {
    if (!/\b(error|timeout|timed out|reset(ting)?|failed|failure|abort(ed|ing)?|panic)\b/i.test(m[0]) && !/\bBUG\b/.test(m[0])) continue;
    found.push(m[0]);
    if (found.length === max) break;
  }
  return found;
}

/**
 * The console text without the kernel's log lines (`[   12.905739] sd 2:0:0:0: ...\r\n`). The
 * kernel writes those to the serial port directly, between any two bytes of what a program is
 * writing, so a marker line can arrive as `BOOTY-EF[   12.9...] ...\r\nI BootOrder: ...`.
 */
export function withoutKernelLines(text: string): string {
  return text.replace(/\[ *\d+\.\d{6}\] [^\r\n]*\r*\n/g, '');
}

/** The QEMU command line for opts (without the netns wrapper). */
export function qemuArgs(opts: VmOptions, accel: Accel): string[] {
  const a = [
    '-nodefaults', '-no-reboot', '-display', 'none', '-monitor', 'none', '-serial', 'stdio',
    '-m', String(opts.memMiB ?? 512), '-smp', String(opts.cpus ?? 1),
    ...(accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg', '-cpu', 'max']),
  ];
  if (opts.kernel !== undefined) {
    a.push('-kernel', opts.kernel);
    if (opts.initrd !== undefined) a.push('-initrd', opts.initrd);
    a.push('-append', kernelCmdline(opts.append ?? ''));
  }
  let scsi = false;
  (opts.disks ?? []).forEach((d, i) => {
    const drive = `file=${d.path},format=${d.format ?? 'raw'},cache=${d.cache ?? TEST_DISK_CACHE}${d.readonly ? ',readonly=on' : ''}`;
    switch (d.bus ?? 'virtio') {
      case 'virtio': a.push('-drive', `${drive},if=virtio`); break;
      case 'nvme': a.push('-drive', `${drive},if=none,id=disk${i}`, '-device', `nvme,drive=disk${i},serial=booty${i}`); break;
      case 'scsi':
        if (!scsi) { a.push('-device', 'virtio-scsi-pci,id=scsi0'); scsi = true; }
        a.push('-drive', `${drive},if=none,id=disk${i}`, '-device', `scsi-hd,drive=disk${i},bus=scsi0.0`);
        break;
    }
  });
  if (opts.nic !== undefined) {
    a.push('-netdev', `tap,id=net0,ifname=${opts.nic.tap},script=no,downscript=no`,
      '-device', `${opts.nic.model ?? 'virtio-net-pci'},netdev=net0,mac=${opts.nic.mac}`);
  }
  if (opts.kernel === undefined) {
    // graphics=off: SeaBIOS, and iPXE under it, write their screens to the serial console too
    if (opts.firmwareBoot === 'network') a.push('-boot', 'order=n', '-machine', 'graphics=off');
    else a.push('-boot', 'order=c');
  }
  a.push(...(opts.extraArgs ?? []));
  return a;
}

/**
 * Adds console=ttyS0 and panic=-1 unless the caller chose its own, and no_timer_check: the
 * kernel's early check that the timer interrupt arrives through the IO-APIC counts on wall time,
 * and under TCG on a loaded host it panics ("IO-APIC + timer doesn't work!") before init runs.
 * For the same reason nvme_core.io_timeout=600: the NVMe driver resets a controller whose command
 * took 30 s of wall time, and a stalled host makes an emulated one take that long (see
 * TEST_DISK_CACHE).
 */
export function kernelCmdline(append: string): string {
  const words = append.split(/\s+/).filter((w) => w !== '');
  if (!words.some((w) => w.startsWith('console='))) words.unshift('console=ttyS0');
  if (!words.some((w) => w.startsWith('panic='))) words.push('panic=-1');
  if (!words.includes('no_timer_check')) words.push('no_timer_check');
  if (!words.some((w) => w.startsWith('nvme_core.io_timeout='))) words.push('nvme_core.io_timeout=600');
  return words.join(' ');
}

/** Starts a VM; with t, it is killed when the test ends. */
export async function startVm(opts: VmOptions, t?: AfterHook): Promise<Vm> {
  const accel = opts.accel ?? await detectAccel(opts.kernel);
  const args = qemuArgs(opts, accel);
  const vm = opts.nic?.netns !== undefined
    ? new Vm(opts.name, 'ip', ['netns', 'exec', opts.nic.netns, 'qemu-system-x86_64', ...args])
    : new Vm(opts.name, 'qemu-system-x86_64', args);
  t?.after(() => vm.kill());
  return vm;
}

let accelPromise: Promise<Accel> | undefined;

/**
 * 'kvm' when a KVM guest boots a kernel to its first panic (no root fs) within 30 s, else 'tcg'.
 * /dev/kvm may exist and still not run a guest (nested virtualization), so it is tried, not
 * assumed. Without a kernel to probe with, TCG.
 */
export function detectAccel(kernel?: string): Promise<Accel> {
  const forced = process.env.BOOTY_QEMU_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return Promise.resolve(forced);
  accelPromise ??= probeAccel(kernel);
  return accelPromise;
}

async function probeAccel(kernel: string | undefined): Promise<Accel> {
  let version = '';
  try { version = execFileSync('qemu-system-x86_64', ['--version']).toString().split('\n')[0]; } catch { /* reported by the boot */ }
  const key = `${os.release()} ${version}`;
  const file = path.join(cacheDir, 'qemu-accel');
  try {
    const [k, v] = readFileSync(file, 'utf8').split('\n');
    if (k === key && (v === 'kvm' || v === 'tcg')) return v;
  } catch { /* no cache yet */ }
  let result: Accel = 'tcg';
  try {
    if (kernel !== undefined) {
      const vm = new Vm('accel-probe', 'qemu-system-x86_64',
        qemuArgs({ name: 'accel-probe', kernel, append: 'console=ttyS0 panic=-1', memMiB: 256 }, 'kvm'));
      try {
        await vm.waitFor(/Kernel panic|VFS: Unable to mount root/, 30_000);
        result = 'kvm';
      } catch { /* aborted or hung: no usable KVM */ } finally { await vm.kill(); }
    }
  } catch { /* qemu missing etc.: the real boot will say so */ }
  if (kernel !== undefined) {
    mkdirSync(cacheDir, { recursive: true });
    writeFileSync(file, `${key}\n${result}\n`);
  }
  return result;
}
