// One error type for everything an operator may read at 3am. Each failure names the stage that
// broke, how far it got, the state the disk was left in and what to do next, so the message
// printed on a serial console is enough to act on without reading code.

export type Stage =
  | 'config' | 'preflight' | 'fetch' | 'decompress' | 'verify' | 'write' | 'read' | 'compress'
  | 'upload' | 'grow' | 'network' | 'dhcp' | 'init' | 'server' | 'build';

/** What the target disk holds after the failure. */
export type DiskState =
  | 'untouched'          // nothing was written
  | 'partially-written'  // some image bytes were written: not bootable
  | 'written-unverified' // every byte written but verification failed: not bootable
  | 'intact'             // capture: the disk was only read
  | 'unknown';

export class BootyError extends Error {
  readonly code: string;
  readonly stage: Stage;
  readonly offset: number | undefined;
  readonly diskState: DiskState | undefined;
  readonly hint: string | undefined;
  readonly exitCode: number;

  constructor(opts: {
    stage: Stage; code: string; message: string; offset?: number; diskState?: DiskState;
    hint?: string; exitCode?: number; cause?: unknown;
  }) {
    super(opts.message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'BootyError';
    this.code = opts.code;
    this.stage = opts.stage;
    this.offset = opts.offset;
    this.diskState = opts.diskState;
    this.hint = opts.hint;
    this.exitCode = opts.exitCode ?? exitCodeFor(opts.stage);
  }

  /** The full operator-facing sentence: `deploy: <what>; <disk state>; <next step>`. */
  describe(command = 'booty'): string {
    const parts = [`${command}: ${this.stage}: ${this.message}`];
    if (this.offset !== undefined) parts.push(`at byte ${this.offset}`);
    if (this.diskState !== undefined) parts.push(diskStateSentence(this.diskState));
    if (this.hint !== undefined) parts.push(this.hint);
    return parts.join('; ');
  }
}

export function diskStateSentence(state: DiskState): string {
  switch (state) {
    case 'untouched': return 'the disk was not written';
    case 'partially-written': return 'disk left partially written and NOT bootable';
    case 'written-unverified': return 'image written but NOT verified: disk NOT bootable';
    case 'intact': return 'the disk was only read and is unchanged';
    case 'unknown': return 'the disk state is unknown: treat it as NOT bootable';
  }
}

/** Exit codes are stable per stage so scripts can branch on them. */
export function exitCodeFor(stage: Stage): number {
  const table: Record<Stage, number> = {
    config: 2, preflight: 3, fetch: 4, decompress: 5, verify: 6, write: 7, read: 8,
    compress: 9, upload: 10, grow: 11, network: 12, dhcp: 13, init: 14, server: 15, build: 16,
  };
  return table[stage];
}

export function isBootyError(e: unknown): e is BootyError {
  return e instanceof BootyError;
}
