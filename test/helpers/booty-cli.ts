// Runs the booty CLI (./bin/booty) as a child process without blocking the test process (which
// may be serving HTTP to it), collecting its exit status and output.
import { spawn } from 'node:child_process';
import path from 'node:path';

const booty = path.resolve(import.meta.dirname, '..', '..', 'bin', 'booty');

export interface BootyRun { status: number | null; out: string; err: string }

export function runBooty(args: string[]): Promise<BootyRun> {
  return new Promise((ok) => {
    const c = spawn(booty, args);
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => { out += String(d); });
    c.stderr.on('data', (d: Buffer) => { err += String(d); });
    c.on('close', (status) => ok({ status, out, err }));
  });
}
