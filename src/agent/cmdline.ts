// The kernel command line, parsed the way the kernel itself splits it: words separated by
// whitespace, double quotes group a value with spaces (`key="a b"`), the quotes are removed,
// `--` ends the kernel's parameters (what follows belongs to init's argv). Pure: takes the text
// of /proc/cmdline, so it is unit-tested without a kernel.

export interface CmdlineWord {
  key: string;
  /** undefined for a flag (`quiet`, `booty.debug`); '' for `key=` */
  value: string | undefined;
}

export interface Cmdline {
  words: CmdlineWord[];
  /** words after a bare `--` (the kernel hands them to init as arguments) */
  initArgs: string[];
}

export function splitCmdline(text: string): Cmdline {
  const raw: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') {
      quoted = !quoted;
      inWord = true;
      continue;
    }
    if (!quoted && /\s/.test(ch)) {
      if (inWord) raw.push(cur);
      cur = '';
      inWord = false;
      continue;
    }
    cur += ch;
    inWord = true;
  }
  if (inWord) raw.push(cur);

  const words: CmdlineWord[] = [];
  const dashes = raw.indexOf('--');
  const params = dashes === -1 ? raw : raw.slice(0, dashes);
  for (const w of params) {
    const eq = w.indexOf('=');
    if (eq === -1) words.push({ key: w, value: undefined });
    else words.push({ key: w.slice(0, eq), value: w.slice(eq + 1) });
  }
  return { words, initArgs: dashes === -1 ? [] : raw.slice(dashes + 1) };
}

/** The last value of `key` (the kernel's rule for repeated parameters), or undefined. */
export function lastValue(c: Cmdline, key: string): string | undefined {
  let v: string | undefined;
  for (const w of c.words) if (w.key === key && w.value !== undefined) v = w.value;
  return v;
}

/** Every value of `key`, in order (`ip=` may be given once per interface). */
export function allValues(c: Cmdline, key: string): string[] {
  return c.words.filter((w) => w.key === key && w.value !== undefined).map((w) => w.value as string);
}

export function hasKey(c: Cmdline, key: string): boolean {
  return c.words.some((w) => w.key === key);
}
