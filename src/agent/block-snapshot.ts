// Reads /sys/class/block into the snapshot disk-choice.ts decides on.
import fs from 'node:fs';
import path from 'node:path';
import type { BlockEntry } from './disk-choice.ts';

function readTrim(p: string): string | undefined {
  try { return fs.readFileSync(p, 'utf8').trim(); } catch { return undefined; }
}

export function readBlockSnapshot(sysClassBlock = '/sys/class/block'): BlockEntry[] {
  let names: string[];
  try { names = fs.readdirSync(sysClassBlock); } catch { return []; }
  return names.map((name) => {
    const dir = path.join(sysClassBlock, name);
    const partition = fs.existsSync(path.join(dir, 'partition'));
    let parent: string | undefined;
    if (partition) {
      // the entry is a symlink into .../<disk>/<partition>
      try { parent = path.basename(path.dirname(fs.realpathSync(dir))); } catch { parent = undefined; }
    }
    return {
      name,
      partition,
      parent,
      removable: readTrim(path.join(dir, 'removable')) === '1',
      readOnly: readTrim(path.join(dir, 'ro')) === '1',
      sizeSectors: Number(readTrim(path.join(dir, 'size')) ?? '0'),
    };
  });
}
