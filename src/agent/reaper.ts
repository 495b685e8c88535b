// PID 1 adopts every orphaned process; when they exit they stay zombies until PID 1 waits for
// them. Node (libuv) waits only for the children it spawned, each by its pid; a waitpid(-1)
// here would steal those exits and their 'exit' events would never fire (a spawned lvm would
// hang the agent). So the reaper records every pid Node spawns (ChildProcess.prototype.spawn
// is the one path all of child_process goes through) and reaps, by pid, only zombie children
// that are not in that set: the orphans. spawnSync waits inside its own call, before any of
// this code can run, so its children are never seen.
import { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { reapIfExited } from '../sys/process.ts';

export interface ProcStat { pid: number; comm: string; state: string; ppid: number }

/** Parses /proc/<pid>/stat: `pid (comm) state ppid ...`; comm may hold spaces and parentheses. */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  const rest = text.slice(close + 1).trim().split(/\s+/);
  const state = rest[0];
  const ppid = Number(rest[1]);
  if (!Number.isInteger(pid) || state === undefined || !Number.isInteger(ppid)) return undefined;
  return { pid, comm: text.slice(open + 1, close), state, ppid };
}

const spawned = new Set<number>();
let patched = false;

/** Records the pid of every child Node spawns from now on (until it exits). Idempotent. */
export function trackSpawnedChildren(): void {
  if (patched) return;
  patched = true;
  const proto = ChildProcess.prototype as unknown as { spawn: (this: ChildProcess, ...args: unknown[]) => unknown };
  const original = proto.spawn;
  proto.spawn = function (this: ChildProcess, ...args: unknown[]) {
    const r = original.apply(this, args);
    const pid = this.pid;
    if (pid !== undefined) {
      spawned.add(pid);
      this.once('exit', () => spawned.delete(pid));
    }
    return r;
  };
}

export function isNodeChild(pid: number): boolean {
  return spawned.has(pid);
}

/** Zombie children of this process that Node did not spawn. */
export function findOrphanZombies(procRoot = '/proc'): ProcStat[] {
  const me = process.pid;
  const out: ProcStat[] = [];
  let entries: string[];
  try { entries = fs.readdirSync(procRoot); } catch { return out; }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    let s: ProcStat | undefined;
    try { s = parseProcStat(fs.readFileSync(`${procRoot}/${e}/stat`, 'utf8')); } catch { continue; }
    if (s !== undefined && s.ppid === me && s.state === 'Z' && !spawned.has(s.pid)) out.push(s);
  }
  return out;
}

/** Reaps the orphaned zombies now; returns how many. */
export function reapOrphans(): number {
  let n = 0;
  for (const z of findOrphanZombies()) if (reapIfExited(z.pid)) n++;
  return n;
}

export interface Reaper { stop(): void; reapedTotal(): number }

/**
 * Starts reaping: on every SIGCHLD and every `intervalMs` as a safety net (signals coalesce).
 * Call trackSpawnedChildren() first, before any child is spawned.
 */
export function startReaper(opts: { intervalMs?: number; onReap?: (n: number) => void } = {}): Reaper {
  trackSpawnedChildren();
  let total = 0;
  const run = () => {
    let n = 0;
    try { n = reapOrphans(); } catch { /* never let reaping break PID 1 */ }
    if (n > 0) { total += n; opts.onReap?.(n); }
  };
  // Defer to the next turn so libuv handles its own children's SIGCHLD first.
  const onChld = () => { setImmediate(run); };
  process.on('SIGCHLD', onChld);
  const timer = setInterval(run, opts.intervalMs ?? 5000);
  timer.unref();
  return {
    stop() { clearInterval(timer); process.off('SIGCHLD', onChld); },
    reapedTotal: () => total,
  };
}
