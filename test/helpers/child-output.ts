// Watching processes a test starts (seeds, agents, servers in namespaces) and checking what they
// wrote: shared by the peer-to-peer rack and fleet tests.
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** Resolves once `pattern` shows in the child's stdout or stderr; fails with the output's tail on timeout or exit. */
export function waitForOutput(child: ChildProcess, pattern: RegExp, what: string, limitMs: number): Promise<void> {
  let seen = '';
  return new Promise((ok, fail) => {
    const t = setTimeout(() => fail(new Error(`${what}: not seen in ${limitMs / 1000} s:\n${seen.slice(-2000)}`)), limitMs);
    const on = (s: Buffer | string) => { seen += s.toString(); if (pattern.test(seen)) { clearTimeout(t); ok(); } };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.once('exit', (code) => { clearTimeout(t); fail(new Error(`${what}: exited (${code}) first:\n${seen.slice(-2000)}`)); });
  });
}

/** sha256 of a file's whole content, streamed. */
export async function sha256OfFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

/** sha256 of a file's first `bytes` bytes (a disk that holds an image and then more); fails when the file is shorter. */
export async function sha256OfFileHead(path: string, bytes: number): Promise<string> {
  const h = createHash('sha256');
  let read = 0;
  if (bytes > 0) for await (const c of createReadStream(path, { end: bytes - 1 })) { h.update(c as Buffer); read += (c as Buffer).length; }
  if (read !== bytes) throw new Error(`${path}: ${read} bytes, shorter than ${bytes}`);
  return h.digest('hex');
}
