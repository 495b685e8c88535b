// Peer to peer's code when booty runs as a bundle: scripts/bundle.mjs replaces this file's
// contents with src/p2p/p2p-entry.ts built into one CommonJS text (load.ts evaluates it on first
// use). From the TypeScript sources there is nothing here and load.ts imports the module.

/** the bundled p2p-entry, or undefined when running from the sources */
export const bundledP2p: string | undefined = undefined;
