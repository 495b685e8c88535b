// A scripted ToolRunner for unit tests: records every call (tool, args, chroot root) and answers
// from handlers; says which tools exist on the "initramfs" PATH and inside a mounted root.
import fs from 'node:fs';
import path from 'node:path';
import { toolError, type RunOptions, type ToolResult, type ToolRunner } from '../../src/disk/tools.ts';

export interface Call {
  tool: string;
  args: string[];
  root?: string;
  env?: Record<string, string>;
}

export type Handler = (args: string[], opts: RunOptions) => Partial<ToolResult> | void;

export class FakeToolRunner implements ToolRunner {
  calls: Call[] = [];
  /** tools on the agent's PATH */
  host = new Set<string>();
  /** tools inside any mounted root */
  inRoot = new Set<string>();
  handlers = new Map<string, Handler>();
  /** directories created in every mount target (what a deployed root holds) */
  rootDirs = ['dev', 'proc', 'sys', 'run', 'etc'];

  constructor(opts: { host?: string[]; inRoot?: string[] } = {}) {
    for (const t of opts.host ?? []) this.host.add(t);
    for (const t of opts.inRoot ?? []) this.inRoot.add(t);
    // mount: populate the target like a deployed root, unless it is a bind mount.
    this.handlers.set('mount', (args) => {
      if (args.includes('bind')) return;
      const dir = args[args.length - 1];
      for (const d of this.rootDirs) fs.mkdirSync(path.join(dir, d), { recursive: true });
    });
    this.handlers.set('umount', (args) => {
      const dir = args[args.length - 1];
      // unmounting a root leaves its (fake) content behind in the temp dir: clear it
      if (!this.rootDirs.some((d) => dir.endsWith(`/${d}`))) {
        for (const d of fs.existsSync(dir) ? fs.readdirSync(dir) : []) fs.rmSync(path.join(dir, d), { recursive: true, force: true });
      }
    });
  }

  /** handler for `tool` or for `tool sub` (lvm subcommands) */
  on(key: string, h: Handler): this {
    this.handlers.set(key, h);
    return this;
  }

  find(tool: string, root?: string): string | undefined {
    if (root === undefined) return this.host.has(tool) ? `/usr/sbin/${tool}` : undefined;
    return this.inRoot.has(tool) ? `/usr/sbin/${tool}` : undefined;
  }

  async run(tool: string, args: string[], opts: RunOptions = {}): Promise<ToolResult> {
    this.calls.push({ tool, args, root: opts.root, env: opts.env });
    if (this.find(tool, opts.root) === undefined && tool !== 'mount' && tool !== 'umount') {
      throw toolError(tool, args, { error: opts.root === undefined ? 'not found on PATH' : `not found inside ${opts.root}` }, opts.stage);
    }
    const h = this.handlers.get(`${tool} ${args[0]}`) ?? this.handlers.get(tool);
    const r: ToolResult = { code: 0, stdout: '', stderr: '', ...(h?.(args, opts) ?? {}) };
    const where = opts.root === undefined ? '' : ` (in chroot ${opts.root})`;
    if (!(opts.okCodes ?? [0]).includes(r.code)) throw toolError(tool, args, r, opts.stage, where);
    return r;
  }

  /** calls as short strings, "tool arg arg" with "[chroot]" when run inside a root */
  lines(): string[] {
    return this.calls.map((c) => {
      const args = c.args.filter((a, i, all) => !(a === '--config' || all[i - 1] === '--config'));
      return `${c.root === undefined ? '' : '[chroot] '}${c.tool} ${args.join(' ')}`.trim();
    });
  }
}
