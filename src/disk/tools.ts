// External tools (lvm, resize2fs, xfs_growfs, mount) behind one small interface, so the grow and
// post-deploy logic can be tested with a scripted fake and run for real with spawn. A tool runs
// either from the agent's own PATH (the initramfs) or inside a mounted deployed OS through chroot,
// as BOOTy did, so the OS's own, matching versions of lvm and e2fsprogs do the work.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BootyError, type Stage } from '../util/errors.ts';
import { executableInRoot } from './root-path.ts';

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** run inside this mounted root through chroot; the tool is looked up inside it */
  root?: string;
  /** exit codes that are not failures (default [0]) */
  okCodes?: number[];
  /** extra environment */
  env?: Record<string, string>;
  /** stage named in the error (default 'grow') */
  stage?: Stage;
  timeoutMs?: number;
  /** written to the tool's stdin (e.g. an sfdisk script); default: an empty stdin */
  input?: string;
}

export interface ToolRunner {
  /**
   * Run `tool` with `args`. Resolves with the output when the exit code is in okCodes; otherwise
   * rejects with a BootyError naming the tool, its exit code and the tail of its stderr.
   */
  run(tool: string, args: string[], opts?: RunOptions): Promise<ToolResult>;
  /** Where `tool` is: inside `root` when given (as a path inside it), else on the agent's PATH. */
  find(tool: string, root?: string): string | undefined;
}

export const SYSTEM_DIRS = ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/sbin', '/usr/local/bin'];

/** The last lines of a tool's output, for error messages. */
export function tail(text: string, lines = 5, maxChars = 600): string {
  const t = text.trim().split('\n').slice(-lines).join(' | ');
  return t.length > maxChars ? '…' + t.slice(-maxChars) : t;
}

export function toolError(tool: string, args: string[], r: ToolResult | { error: string }, stage: Stage = 'grow', where = ''): BootyError {
  const cmd = [tool, ...args].join(' ');
  const detail = 'error' in r
    ? r.error
    : `exited with code ${r.code}${tail(r.stderr || r.stdout) ? `: ${tail(r.stderr || r.stdout)}` : ''}`;
  return new BootyError({ stage, code: 'tool-failed', message: `${cmd}${where} ${detail}` });
}

/** The real runner: child_process.spawn, output captured, PATH fixed to the usual system dirs. */
export function spawnToolRunner(opts: { searchPath?: string[] } = {}): ToolRunner {
  const searchPath = opts.searchPath ?? [...(process.env.PATH ?? '').split(':').filter(Boolean), ...SYSTEM_DIRS];
  const findOnHost = (tool: string): string | undefined => {
    if (tool.includes('/')) return isExecutable(tool) ? tool : undefined;
    for (const dir of searchPath) {
      const p = path.join(dir, tool);
      if (isExecutable(p)) return p;
    }
    return undefined;
  };
  const findInRoot = (tool: string, root: string): string | undefined => {
    const dirs = tool.includes('/') ? [''] : SYSTEM_DIRS;
    for (const dir of dirs) {
      const p = dir === '' ? tool : `${dir}/${tool}`;
      if (executableInRoot(root, p) !== undefined) return p;
    }
    return undefined;
  };

  return {
    find(tool, root) {
      return root === undefined ? findOnHost(tool) : findInRoot(tool, root);
    },
    run(tool, args, o = {}) {
      const stage = o.stage ?? 'grow';
      let file: string;
      let argv: string[];
      let where = '';
      if (o.root !== undefined) {
        const inside = findInRoot(tool, o.root);
        if (inside === undefined) return Promise.reject(toolError(tool, args, { error: `not found inside ${o.root}` }, stage));
        // busybox provides chroot in the initramfs; util-linux/coreutils on a full system.
        const chroot = findOnHost('chroot');
        const busybox = chroot === undefined ? findOnHost('busybox') : undefined;
        if (chroot === undefined && busybox === undefined) {
          return Promise.reject(toolError(tool, args, { error: 'cannot run: no chroot (or busybox) on PATH' }, stage));
        }
        file = chroot ?? (busybox as string);
        argv = [...(chroot === undefined ? ['chroot'] : []), o.root, inside, ...args];
        where = ` (in chroot ${o.root})`;
      } else {
        const found = findOnHost(tool);
        if (found === undefined) return Promise.reject(toolError(tool, args, { error: 'not found on PATH' }, stage));
        file = found;
        argv = args;
      }
      return new Promise((resolve, reject) => {
        const child = spawn(file, argv, {
          stdio: ['pipe', 'pipe', 'pipe'],
          env: { PATH: SYSTEM_DIRS.join(':'), LANG: 'C', LC_ALL: 'C', ...o.env },
          timeout: o.timeoutMs,
        });
        // without input, stdin is an empty pipe: EOF at once, as /dev/null would give
        child.stdin.on('error', () => { /* a tool that exits early: its exit code says why */ });
        child.stdin.end(o.input ?? '');
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        child.stdout.on('data', (b: Buffer) => out.push(b));
        child.stderr.on('data', (b: Buffer) => err.push(b));
        child.on('error', (e) => reject(toolError(tool, args, { error: `could not start: ${e.message}` }, stage, where)));
        child.on('close', (code, signal) => {
          const r: ToolResult = {
            code: code ?? 128 + (signal === null ? 0 : 9),
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: Buffer.concat(err).toString('utf8'),
          };
          if (signal !== null) reject(toolError(tool, args, { error: `killed by ${signal}` }, stage, where));
          else if ((o.okCodes ?? [0]).includes(r.code)) resolve(r);
          else reject(toolError(tool, args, r, stage, where));
        });
      });
    },
  };
}

function isExecutable(p: string): boolean {
  try {
    const st = fs.statSync(p);
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}
