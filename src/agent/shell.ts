// The operator's way in: a busybox shell on the console with job control. `setsid` gives it
// its own session and `cttyhack` opens the real console tty (ttyS0, tty1: whatever
// /sys/class/tty/console/active names) as its controlling terminal, so Ctrl-C reaches the
// shell's job instead of nothing. When it exits, the caller decides (show the summary again and
// respawn it, or go on booting after a booty.break= stop).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { Logger } from '../util/log.ts';

const busyboxPaths = ['/bin/busybox', '/usr/bin/busybox', '/sbin/busybox', '/usr/sbin/busybox'];
const shPaths = ['/bin/sh', '/usr/bin/sh'];

export const shellPath = '/usr/sbin:/usr/bin:/sbin:/bin';

/** The command to run: busybox's setsid+cttyhack when present, a plain sh otherwise. */
export function shellCommand(exists: (p: string) => boolean = fs.existsSync): { file: string; args: string[] } | undefined {
  const bb = busyboxPaths.find(exists);
  if (bb !== undefined) return { file: bb, args: ['setsid', 'cttyhack', 'sh'] };
  const sh = shPaths.find(exists);
  if (sh !== undefined) return { file: sh, args: [] };
  return undefined;
}

/** Runs one shell on the console and resolves with its exit status when it exits. */
export function runShellOnce(log: Logger, env: Record<string, string> = {}): Promise<number> {
  const cmd = shellCommand();
  if (cmd === undefined) {
    log.error('no shell in this initramfs (no busybox, no /bin/sh)');
    return new Promise(() => { /* nothing to run: stay here */ });
  }
  return new Promise((resolve) => {
    const child = spawn(cmd.file, cmd.args, {
      stdio: 'inherit',
      env: { HOME: '/', TERM: process.env.TERM ?? 'linux', PATH: shellPath, PS1: 'booty# ', ...env },
    });
    child.once('error', (e) => { log.error(`cannot start the shell: ${e.message}`); resolve(127); });
    child.once('exit', (code, signal) => resolve(code ?? (signal === null ? 0 : 128)));
  });
}

/**
 * A shell forever: before each start prints `banner()` (the failure summary, or a hint), and
 * when the shell exits starts it again. Never returns (PID 1 has nowhere to return to).
 */
export async function shellForever(log: Logger, banner: () => string, env: Record<string, string> = {}): Promise<never> {
  for (let n = 0; ; n++) {
    process.stdout.write(banner() + '\n');
    const started = performance.now();
    await runShellOnce(log, env);
    // A shell that dies at once (broken tty) must not spin the CPU.
    if (performance.now() - started < 1000) await new Promise((r) => setTimeout(r, 2000));
  }
}
