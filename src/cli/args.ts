// Flag helpers every subcommand shares: parse errors as config errors, and the values several
// commands take (--workers, --header).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BootyError } from '../util/errors.ts';

/** parseArgs, with its errors (unknown flag, missing value) as config errors: exit 2, not 70. */
export function parseArgsOrExplain<const T extends ParseArgsConfig>(config: T, command: string): ReturnType<typeof parseArgs<T>> {
  try { return parseArgs(config); } catch (e) {
    throw new BootyError({ stage: 'config', code: 'BAD_ARGUMENT', message: (e as Error).message.split('\n')[0], hint: `see booty ${command} --help` });
  }
}

/** --workers N: a whole number 0-1024, or undefined (the library's default: one per core). */
export function parseWorkers(v: string | undefined, bad: (m: string) => Error): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n > 1024) throw bad(`--workers must be a whole number from 0 to 1024, not ${JSON.stringify(v)}`);
  return n;
}

export function parseHeaders(list: string[], bad: (m: string) => Error): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const h of list) {
    const i = h.indexOf(':');
    if (i <= 0) throw bad(`--header must look like 'Name: value', not ${JSON.stringify(h)}`);
    headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  return headers;
}
