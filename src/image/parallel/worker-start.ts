// Starting booty's worker threads the same way however booty runs. Each worker is an ordinary
// TypeScript module, `src/**/NAME-worker-entry.ts`, beside the module that owns it, type-checked
// with the rest; its owner starts it with
//   startWorker(new URL('../NAME-worker-entry.ts', import.meta.url), options)
// - from the sources (tests, `node src/cli/main.ts`): Node runs the .ts entry file itself (type
//   stripping), importing what it imports;
// - from a bundle (dist/booty.mjs, and the CommonJS bundle the initramfs runs): scripts/bundle.mjs
//   builds each entry with esbuild into one CommonJS text and embeds it in the bundle
//   (worker-bundled.ts); the worker is evaluated from that text (`eval: true`).
// Why embedded text and not entry files shipped beside the bundle: the bundle stays one
// self-contained file wherever it goes (dist/booty.mjs copied to a host, the initramfs's
// /usr/lib/booty/booty.cjs), so the initramfs builder packs nothing new, its code cache covers the
// one file /init compiles, and no path next to the bundle has to be right at run time (the
// CommonJS bundle is loaded by /init through vm.Script, so "beside the bundle" is only what
// __filename says). The cost is the same as the evaluated workers before: each worker compiles
// its few KiB of code from text when it starts.
//
// Worker code has no node_modules of its own to search when evaluated from text: koffi is
// required by the path the main thread resolved (src/sys/native-codec-worker.ts).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { bundledWorkers } from './worker-bundled.ts';

/** Starts the worker whose entry module is `entry` (a `*-worker-entry.ts` file URL). */
export function startWorker(entry: URL, options: WorkerOptions): Worker {
  if (bundledWorkers === undefined) return new Worker(entry, options);
  // in a bundle, entry points beside the bundle file, where nothing is: its name is the key
  const name = path.basename(fileURLToPath(entry));
  const code = bundledWorkers[name];
  if (code === undefined) throw new Error(`worker ${name} is not in this bundle (scripts/bundle.mjs embeds src/**/*-worker-entry.ts)`);
  return new Worker(code, { ...options, eval: true });
}
