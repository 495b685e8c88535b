// Running host tools for the builder (apt-get, dpkg-deb, depmod, strip) with their output
// captured, so a failure names the command and shows what it printed.
import { spawn } from 'node:child_process';
import { BootyError } from '../util/errors.ts';

export interface RunResult { code: number; stdout: string; stderr: string }

/** Runs a command to completion; never throws for a non-zero exit (the caller decides). */
export function runTool(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(new BootyError({
        stage: 'build', code: 'tool-missing', cause: e,
        message: `cannot run ${cmd}: ${e.code ?? e.message}`,
        hint: 'run scripts/host-deps.sh as root to install the build tools',
      }));
    });
    child.on('close', (code) => resolve({
      code: code ?? 128, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'),
    }));
  });
}

/** Runs a command and throws a build BootyError with its stderr when it fails. */
export async function runToolOk(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const r = await runTool(cmd, args, opts);
  if (r.code !== 0) {
    throw new BootyError({
      stage: 'build', code: 'tool-failed',
      message: `${cmd} ${args.join(' ')} failed (exit ${r.code}): ${lastLines(r.stderr || r.stdout)}`,
    });
  }
  return r;
}

function lastLines(text: string, n = 5): string {
  return text.trim().split('\n').slice(-n).join(' | ');
}
