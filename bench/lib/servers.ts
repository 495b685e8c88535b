// The HTTP side of the bench, on loopback, in processes of their own (their CPU is not billed to
// the peers): images are served by `booty server` when this checkout has one that serves them,
// else by bench/bench-server.ts; uploads always go to bench-server.ts's null sink, the same for
// every capture peer.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

export type Server = { kind: string; base: string; child: ChildProcess };

const servers: ChildProcess[] = [];

/** Stops every server this module started (used by the exit handler, so it is synchronous). */
export function stopServers(): void {
  for (const c of servers.splice(0)) if (c.exitCode === null) c.kill('SIGTERM');
}

function start(kind: string, argv: string[], cwd: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    servers.push(child);
    let out = '';
    let err = '';
    const timer = setTimeout(() => fail(new Error(`${kind} printed no listening line within 20 s`)), 20_000);
    const fail = (e: Error) => {
      clearTimeout(timer);
      if (child.exitCode === null) child.kill('SIGTERM');
      reject(new Error(`${e.message}${err ? `: ${err.trim().slice(-500)}` : ''}`));
    };
    child.stderr.on('data', (b: Buffer) => { err = (err + b.toString()).slice(-4096); });
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        out = '';
        resolve({ kind, base: m[1]!.replace(/\/$/, ''), child });
      }
    });
    child.on('error', (e) => fail(e));
    child.on('exit', (code) => fail(new Error(`${kind} exited with ${code}`)));
  });
}

export function startBenchServer(root: string, node: string, dataDir: string): Promise<Server> {
  return start('bench/bench-server.ts', [node, '--disable-warning=ExperimentalWarning', join(root, 'bench/bench-server.ts'), dataDir], root);
}

/** Whether `url` answers a GET with exactly the bytes of `file` (by length: a full read costs too much). */
async function serves(url: string, file: string): Promise<boolean> {
  try {
    const res = await fetch(url);
    const len = Number(res.headers.get('content-length'));
    await res.body?.cancel();
    return res.status === 200 && len === statSync(file).size;
  } catch {
    return false;
  }
}

/**
 * Starts `booty server --data DIR` if this checkout has one and checks it serves the bench image
 * at `imagePath`; returns null (after stopping it) otherwise, with the reason in `why`.
 */
export async function tryBootyServer(root: string, dataDir: string, imagePath: string, file: string, why: (s: string) => void): Promise<Server | null> {
  if (!existsSync(join(root, 'src/cli/server.ts'))) {
    why('src/cli/server.ts does not exist yet');
    return null;
  }
  let s: Server;
  try {
    s = await start('booty server', [join(root, 'bin/booty'), 'server', '--data', dataDir, '--listen', '127.0.0.1:0'], root);
  } catch (e) {
    why(e instanceof Error ? e.message : String(e));
    return null;
  }
  if (await serves(`${s.base}${imagePath}`, file)) return s;
  why(`it does not serve ${imagePath} with the image's length`);
  s.child.kill('SIGTERM');
  return null;
}

export type UploadRecord = { seq: number; method: string; path: string; contentType: string; bytes: number; kept: string | null };

/** Asks the sink to keep the next upload in `file` (for verification). */
export async function keepNextUpload(sink: string, file: string): Promise<void> {
  const res = await fetch(`${sink}/_bench/keep?file=${encodeURIComponent(file)}`, { method: 'POST' });
  if (!res.ok) throw new Error(`bench: sink refused keep: ${res.status}`);
  await res.body?.cancel();
}

export async function lastUpload(sink: string): Promise<UploadRecord | null> {
  const res = await fetch(`${sink}/_bench/last`);
  return (await res.json()) as UploadRecord | null;
}

/**
 * Waits until `booty server` has built (or refused) the gzip access-point index of `name`, which it
 * does in the background after starting; the deploy rows then run with it, as agents would.
 * Returns what the catalog says ('ready', 'refused: ...', or why it gave up).
 */
export async function waitForGzipIndex(base: string, name: string, timeoutMs = 600_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  let last = 'not listed';
  while (Date.now() < until) {
    try {
      const res = await fetch(`${base}/api/images`);
      const body = (await res.json()) as { images?: Array<{ name: string; gzipIndex?: string }> };
      const entry = body.images?.find((i) => i.name === name);
      last = entry?.gzipIndex ?? 'not looked at yet';
      if (last === 'ready' || last.startsWith('refused')) return last;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return `gave up waiting (${last})`;
}
