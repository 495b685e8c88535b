// A developer's view of where the agent's boot goes (`npm run bench -- vm --profile`, README
// "In the VM"): with BOOTY_PROFILE=1 on the kernel command line, /init (initramfs/init) starts
// V8's CPU profiler before the bundle loads; this prints the profile on the console once the
// deploy's first bytes reached the disk (BOOTY_PROFILE=written: once the whole image is written;
// or the action ended, or failed), as gzip+base64 lines
// the bench collects. Inside a guest under QEMU's TCG no other profiler reaches the agent: there
// is no file system the host can read until the VM is gone, and --cpu-prof writes only at exit,
// which PID 1 never does.
import fs from 'node:fs';
import type { Session } from 'node:inspector';
import zlib from 'node:zlib';

/** The in-process inspector session /init started the profiler on, when BOOTY_PROFILE is set. */
export function bootProfiler(): Session | undefined {
  return (globalThis as Record<symbol, unknown>)[Symbol.for('booty.bootProfiler')] as Session | undefined;
}

/** The log line that ends the profile: the deploy's first bytes (BOOTY_PROFILE=1), the whole
 *  image written and verified (BOOTY_PROFILE=written); step 7 (the action's end) either way. */
export function profileEndLine(setting: string | undefined): RegExp {
  return setting === 'written' ? /^deploy: wrote \d+ bytes|^step 7\// : /^deploy: first bytes reached the writer|^step 7\//;
}

/** Console lines that carry one profile: `booty-profile I N BASE64` for I in 1..N, then `booty-profile-end N BYTES`. */
export function profileLines(profileJson: string, width = 3000): string[] {
  const b64 = zlib.gzipSync(profileJson).toString('base64');
  const n = Math.max(1, Math.ceil(b64.length / width));
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(`booty-profile ${i + 1} ${n} ${b64.slice(i * width, (i + 1) * width)}`);
  lines.push(`booty-profile-end ${n} ${profileJson.length}`);
  return lines;
}

/** The profile's JSON from the console text profileLines wrote (other lines interleaved are skipped). */
export function profileFromConsole(text: string): string | undefined {
  const parts = new Map<number, string>();
  let total = 0;
  for (const m of text.matchAll(/^booty-profile (\d+) (\d+) ([A-Za-z0-9+/=]+)\r?$/gm)) {
    parts.set(Number(m[1]), m[3]);
    total = Number(m[2]);
  }
  if (total === 0 || parts.size !== total) return undefined;
  const b64 = Array.from({ length: total }, (_, i) => parts.get(i + 1) ?? '').join('');
  return zlib.gunzipSync(Buffer.from(b64, 'base64')).toString('utf8');
}

let dumped = false;

/** Stops the profiler and writes the profile to the console (fd 1), once; does nothing without one. */
export function dumpBootProfile(why: string): void {
  const session = bootProfiler();
  if (session === undefined || dumped) return;
  dumped = true;
  session.post('Profiler.stop', (err, result) => {
    const write = (s: string) => { try { fs.writeSync(1, s + '\n'); } catch { /* no console: nothing to tell */ } };
    if (err !== null) { write(`booty: boot profile: ${err.message}`); return; }
    write(`booty: boot profile stopped (${why}); printing it`);
    for (const l of profileLines(JSON.stringify(result.profile))) write(l);
    session.disconnect();
  });
}
