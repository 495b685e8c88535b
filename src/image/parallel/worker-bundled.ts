// The worker entries' code when booty runs as a bundle: scripts/bundle.mjs replaces this file's
// contents with each `*-worker-entry.ts` under src/ built into one CommonJS text, keyed by the
// entry's file name (worker-start.ts). From the TypeScript sources there is nothing here and
// workers start from their .ts files.

/** entry file name -> bundled worker code, or undefined when running from the sources */
export const bundledWorkers: Readonly<Record<string, string>> | undefined = undefined;
