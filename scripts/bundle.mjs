#!/usr/bin/env node
// Bundles the CLI (src/cli/main.ts and everything it imports, agent included) into one file.
//   scripts/bundle.mjs [OUT]   OUT ending in .cjs: the CommonJS form the initramfs runs (its /init
//                              compiles it with a V8 code cache made at build time, see
//                              initramfs/init); any other name (default dist/booty.mjs): an ES
//                              module, for running booty without the sources.
// koffi stays external: esbuild cannot bundle its native loader (see src/sys/libc.ts); the
// initramfs builder ships node_modules/koffi beside the bundle.
//
// Worker threads: each src/**/NAME-worker-entry.ts is built here into one CommonJS text and
// embedded in the bundle (it replaces src/image/parallel/worker-bundled.ts), so the bundle stays a single
// self-contained file; src/image/parallel/worker-start.ts starts a worker from that text (eval) in a bundle
// and from its .ts file in the sources, and says why this way.
import { build } from 'esbuild';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ENTRY_SUFFIX = '-worker-entry.ts';

/** Every worker entry under src/, sorted (the bundle's bytes must not depend on directory order). */
export async function workerEntries() {
  const src = path.join(root, 'src');
  const found = (await readdir(src, { recursive: true })).filter((f) => f.endsWith(ENTRY_SUFFIX)).map((f) => path.join(src, f)).sort();
  const names = found.map((f) => path.basename(f));
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) throw new Error(`bundle: two worker entries are named ${twice} (worker-start.ts finds them by file name)`);
  return found;
}

/** One worker entry and what it imports, as the text a worker evaluates (CommonJS: an evaluated
 *  worker has require(), not import). koffi stays external: the worker requires it by the path
 *  the main thread resolved (src/sys/native-codec-worker.ts). */
async function buildWorker(entry, o = {}) {
  const plugins = o.plugins ?? [];
  const r = await build({
    absWorkingDir: root,
    entryPoints: [entry],
    write: false,
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node26',
    external: ['koffi'],
    plugins,
    minify: o.minify === true,
    keepNames: true,
    legalComments: 'none',
    logLevel: 'silent',
    banner: { js: BUILTIN_INTEROP },
  });
  // a warning here is a bug in the worker (e.g. import.meta, which an evaluated worker lacks)
  if (r.warnings.length > 0) throw new Error(`bundle: worker ${path.relative(root, entry)}: ${r.warnings.map((w) => w.text).join('; ')}`);
  // the same sharing as in the bundle, which would otherwise rewrite this text where it is
  // embedded without the helper it calls
  return shareBuiltinInterop(r.outputFiles[0].text);
}

/** Replaces src/image/parallel/worker-bundled.ts with the built worker entries, keyed by file name. */
export const embedWorkers = {
  name: 'booty-embed-workers',
  setup(b) {
    const placeholder = path.join(root, 'src', 'image', 'parallel', 'worker-bundled.ts');
    b.onLoad({ filter: /[\\/]worker-bundled\.ts$/ }, async (args) => {
      if (args.path !== placeholder) return undefined;
      const code = {};
      for (const entry of await workerEntries()) code[path.basename(entry)] = await buildWorker(entry);
      return { contents: `export const bundledWorkers = ${JSON.stringify(code)};\n`, loader: 'js' };
    });
  },
};

/** bittorrent-tracker without the transports booty does not use (the client's WebSocket/WebRTC
 *  and UDP, the server's WebSocket) and with Node's own fetch: scripts/stubs/bundle-p2p/README.md. */
const trackerHttpOnly = {
  name: 'booty-tracker-http-only',
  setup(b) {
    const stub = (f) => path.join(root, 'scripts', 'stubs', 'bundle-p2p', f);
    const fromTracker = (args) => /[\\/]node_modules[\\/]bittorrent-tracker[\\/]/.test(args.importer);
    b.onResolve({ filter: /^\.\/lib\/client\/(websocket|udp)-tracker\.js$/ }, (args) => (fromTracker(args) ? { path: stub('unused-tracker.js') } : undefined));
    b.onResolve({ filter: /^@thaunknown\/simple-peer\/lite\.js$/ }, (args) => (fromTracker(args) ? { path: stub('simple-peer.js') } : undefined));
    b.onResolve({ filter: /^cross-fetch-ponyfill$/ }, (args) => (fromTracker(args) ? { path: stub('fetch.js') } : undefined));
    b.onResolve({ filter: /^ws$/ }, (args) => (fromTracker(args) ? { path: stub('ws.js') } : undefined));
  },
};

/** Replaces src/p2p/p2p-bundled.ts with src/p2p/p2p-entry.ts built into one CommonJS text:
 *  peer to peer's code (BitTorrent wire, tracker, bencode; about 1 MB) stays a string that
 *  src/p2p/load.ts evaluates only when peer to peer is turned on, so the agent's start does not
 *  parse it. */
export const embedP2p = {
  name: 'booty-embed-p2p',
  setup(b) {
    const placeholder = path.join(root, 'src', 'p2p', 'p2p-bundled.ts');
    b.onLoad({ filter: /[\\/]p2p-bundled\.ts$/ }, async (args) => {
      if (args.path !== placeholder) return undefined;
      // minified (names kept for stack traces): it travels in every initramfs, used or not
      const code = await buildWorker(path.join(root, 'src', 'p2p', 'p2p-entry.ts'), { minify: true, plugins: [trackerHttpOnly] });
      return { contents: `export const bundledP2p = ${JSON.stringify(code)};\n`, loader: 'js' };
    });
  },
};

/** Two of undici's loads that the agent's boot pays for and a deploy needs neither of (each a
 *  tenth of a second or more under QEMU's TCG, before the action can be fetched; README "In the
 *  VM"): client.js requires client-h2.js, which requires node:http2, at its top level: here it
 *  requires it on the first HTTP/2 connection (an https origin that picks h2 by ALPN), the same
 *  code on demand; and undici's files get scripts/stubs/bundle-undici/assert.cjs for node:assert
 *  (undici only calls assert(value)). The build fails if undici's line changes (the pinned
 *  version is in package-lock.json); test/unit/build-bundle-boot.test.ts checks both. */
export const lazyUndiciParts = {
  name: 'booty-lazy-undici-parts',
  setup(b) {
    const eager = "const connectH2 = require('./client-h2.js')";
    const lazy = "let connectH2Module; const connectH2 = (client, socket) => (connectH2Module ??= require('./client-h2.js'))(client, socket)";
    b.onLoad({ filter: /[\\/]undici[\\/]lib[\\/]dispatcher[\\/]client\.js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      if (text.split(eager).length !== 2) throw new Error(`bundle: ${args.path} no longer has the line \`${eager}\` once: update lazyUndiciParts in scripts/bundle.mjs`);
      return { contents: text.replace(eager, lazy), loader: 'js' };
    });
    b.onResolve({ filter: /^(node:)?assert$/ }, (args) => (/[\\/]node_modules[\\/]undici[\\/]/.test(args.importer)
      ? { path: path.join(root, 'scripts', 'stubs', 'bundle-undici', 'assert.cjs') } : undefined));
  },
};

/** Replaces src/config/schema-compile.ts (ajv compiling each schema at run time) with the
 *  validators ajv generated from the same schemas now (src/build/schema-standalone.ts): the
 *  bundle neither carries nor runs ajv's compiler. */
export const standaloneSchemas = {
  name: 'booty-standalone-schemas',
  setup(b) {
    const placeholder = path.join(root, 'src', 'config', 'schema-compile.ts');
    b.onLoad({ filter: /[\\/]schema-compile\.ts$/ }, async (args) => {
      if (args.path !== placeholder) return undefined;
      const { standaloneValidatorsCode } = await import(pathToFileURL(path.join(root, 'src', 'build', 'schema-standalone.ts')).href);
      return { contents: standaloneValidatorsCode(), loader: 'js', resolveDir: path.dirname(placeholder) };
    });
  },
};

/** The CommonJS bundle (the initramfs's) in ASCII: esbuild escapes what is not ASCII in strings,
 *  regular expressions and names, but keeps it in the comments it leaves; those become \u
 *  escapes too (the same text in a comment, the same value anywhere else), so that /init can read
 *  the bundle as latin1, a copy, instead of decoding UTF-8 (tens of milliseconds under TCG). */
async function asciiOnly(file, transform = (t) => t) {
  const text = await readFile(file, 'utf8');
  const ascii = transform(text).replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (ascii !== text) await writeFile(file, ascii);
}

// esbuild turns every `import fs from 'node:fs'` of every source file into its own
// `__toESM(require("node:fs"), 1)`, which copies each export of the module into a new object:
// ~120 copies of the same dozen built-in modules as the agent loads, tens of milliseconds of
// its boot under QEMU's TCG. A built-in module's exports are all there once it is required, so
// one copy per module serves every importer. (Not for bundled CommonJS packages: with circular
// requires their exports may still grow after the first importer.)
const BUILTIN_INTEROP = `const __bootyBuiltinCopies = new Map();
function __bootyBuiltin(mod) {
  let ns = __bootyBuiltinCopies.get(mod);
  if (ns === undefined) { ns = __toESM(mod, 1); __bootyBuiltinCopies.set(mod, ns); }
  return ns;
}`;

/** The bundle's interop copies of built-in modules, made once each (BUILTIN_INTEROP). */
export function shareBuiltinInterop(text) {
  return text.replace(/__toESM\(require\("([^"]+)"\), 1\)/g, (call, name) => (isBuiltin(name) ? `__bootyBuiltin(require(${JSON.stringify(name)}))` : call));
}

/** 'cjs' for a .cjs output file, else 'esm'. */
export function formatFor(outfile) {
  return outfile.endsWith('.cjs') ? 'cjs' : 'esm';
}

export async function bundle(outfile = path.join(root, 'dist', 'booty.mjs')) {
  const format = formatFor(outfile);
  await build({
    absWorkingDir: root,
    entryPoints: [path.join(root, 'src', 'cli', 'main.ts')],
    outfile,
    bundle: true,
    format,
    platform: 'node',
    target: 'node26',
    external: ['koffi'],
    plugins: [embedWorkers, embedP2p, standaloneSchemas, lazyUndiciParts],
    ...(format === 'esm'
      ? {
        // CommonJS dependencies (undici, ajv, tar-stream) call require() for Node built-ins; an
        // ES module has none, so give the bundle one.
        banner: { js: "import { createRequire as __bootyCreateRequire } from 'node:module';\nconst require = __bootyCreateRequire(import.meta.url);" },
      }
      : {
        // A CommonJS module has no import.meta: give the few users (src/sys/libc.ts finds koffi
        // beside the bundle with it) the module's own file.
        define: { 'import.meta.url': '__bootyModuleUrl', 'import.meta.dirname': '__dirname' },
        banner: { js: `const __bootyModuleUrl = require('node:url').pathToFileURL(__filename).href;\n${BUILTIN_INTEROP}` },
      }),
    // Readable stack traces on a serial console matter more than a smaller file (the bundle is
    // a few percent of the initramfs).
    minify: false,
    keepNames: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  if (format === 'cjs') await asciiOnly(outfile, shareBuiltinInterop);
  return outfile;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await bundle(process.argv[2] === undefined ? undefined : path.resolve(process.argv[2]));
  process.stdout.write(`bundle: ${path.relative(process.cwd(), out)} (${formatFor(out) === 'cjs' ? 'CommonJS' : 'ES module'})\n`);
}
