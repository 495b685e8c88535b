// The box an operator sees on the console when a run fails: what failed, the state of the disk,
// which machine, whether the server heard about it, where the full log is, and what happens
// next. Pure (text in, text out), ASCII only: it is read on serial consoles and BMC screens.
import { diskStateSentence, isBootyError, type DiskState } from '../util/errors.ts';

export interface FailureInfo {
  /** the step that failed, e.g. `6/7 run the action (deploy)` */
  step: string;
  error: unknown;
  disk?: string;
  /** overrides the error's diskState (e.g. after wipeOnError) */
  diskState?: DiskState;
  diskNote?: string;
  mac?: string;
  address?: string;
  server?: string;
  /** true: the server got the error; false: it could not be reached; undefined: no server known */
  reported?: boolean;
  logPath: string;
  /** what happens now, e.g. `a shell opens below (type exit to see this summary again)` */
  next: string;
}

export const screenWidth = 78;

/** Word-wraps `text` to `width` columns, breaking words longer than a line. */
export function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  for (const para of text.split('\n')) {
    let line = '';
    for (let word of para.split(/\s+/).filter((w) => w !== '')) {
      while (word.length > width) {
        if (line !== '') { out.push(line); line = ''; }
        out.push(word.slice(0, width));
        word = word.slice(width);
      }
      if (line === '') line = word;
      else if (line.length + 1 + word.length <= width) line += ' ' + word;
      else { out.push(line); line = word; }
    }
    out.push(line);
  }
  return out;
}

export function errorSentence(error: unknown): { what: string; hint?: string; diskState?: DiskState } {
  if (isBootyError(error)) return { what: `${error.stage}: ${error.message}${error.offset === undefined ? '' : ` (at byte ${error.offset})`}`, hint: error.hint, diskState: error.diskState };
  if (error instanceof Error) return { what: `internal error: ${error.message}` };
  return { what: `internal error: ${String(error)}` };
}

/** Serial consoles and BMC screens may not speak UTF-8: `…` becomes `...`, other non-ASCII `?`. */
export function toAscii(text: string): string {
  return text.replaceAll('\u2026', '...').replace(/[\u2018\u2019]/g, "'").replace(/[\u201c\u201d]/g, '"')
    .replace(/[\u2013\u2014]/g, '-').replace(/\u2192/g, '->').replace(/[^\x20-\x7e\n]/g, '?');
}

export function formatFailureScreen(f: FailureInfo): string {
  const inner = screenWidth - 4;
  const label = 12;
  const rows: string[] = [];
  const field = (name: string, value: string) => {
    const lines = wrap(toAscii(value), inner - label - 2);
    lines.forEach((l, i) => rows.push(`${(i === 0 ? name : '').padEnd(label)}${i === 0 ? ':' : ' '} ${l}`));
  };
  const e = errorSentence(f.error);
  field('What failed', e.what);
  if (e.hint !== undefined) field('Do', e.hint);
  const state = f.diskState ?? e.diskState;
  let disk = f.disk === undefined ? '' : `${f.disk}: `;
  disk += state === undefined ? 'the disk state is unknown: treat it as NOT bootable' : diskStateSentence(state);
  if (f.diskNote !== undefined) disk += `; ${f.diskNote}`;
  field('Disk', disk);
  if (f.mac !== undefined || f.address !== undefined) field('Machine', [f.mac, f.address].filter((x) => x !== undefined).join('  '));
  if (f.server !== undefined) {
    const r = f.reported === true ? 'the error was reported to it' : f.reported === false ? 'NOT reachable: the error was not reported' : '';
    field('Server', r === '' ? f.server : `${f.server} (${r})`);
  }
  field('Full log', f.logPath);
  field('Next', f.next);

  const bar = '+' + '='.repeat(screenWidth - 2) + '+';
  const sep = '+' + '-'.repeat(screenWidth - 2) + '+';
  const box = (s: string) => `| ${s.padEnd(inner)} |`;
  return [bar, ...wrap(toAscii(`BOOTY FAILED at step ${f.step}`), inner).map(box), sep, ...rows.map(box), bar].join('\n');
}
