// Running shell commands from the bench harness: plain helpers for setup steps, and the one place
// that remembers the child in flight so an interrupted bench can stop it and still clean up.
import { spawn } from 'node:child_process';

export type Result = { code: number; stdout: string; stderr: string };

let inFlight: number | null = null;

/** Kills the process group of the command now running, if any (used by the exit handler). */
export function killInFlight(): void {
  if (inFlight === null) return;
  try {
    process.kill(-inFlight, 'SIGKILL');
  } catch {
    // already gone
  }
  inFlight = null;
}

/**
 * Runs `bash -c` with pipefail in its own process group (so a whole pipeline can be stopped), and
 * keeps the last 4 KiB of each output stream for error messages.
 */
export function run(cmd: string, opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `set -o pipefail; ${cmd}`], {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    inFlight = child.pid ?? null;
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout = (stdout + b.toString()).slice(-4096); });
    child.stderr.on('data', (b: Buffer) => { stderr = (stderr + b.toString()).slice(-4096); });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      inFlight = null;
      resolve({ code: code ?? (signal === null ? 1 : 128), stdout, stderr });
    });
  });
}

/** Runs a setup command that must succeed; throws with its stderr otherwise. */
export async function must(cmd: string, opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const r = await run(cmd, opts);
  if (r.code !== 0) throw new Error(`bench: \`${cmd}\` failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** Quotes one word for bash. */
export function q(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
