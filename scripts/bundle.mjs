#!/usr/bin/env node
// Bundles the CLI (src/cli/main.ts and everything it imports, agent included) into one file.
//   scripts/bundle.mjs [OUT]   OUT ending in .cjs: the CommonJS form the initramfs runs (its /init
//                              compiles it with a V8 code cache made at build time, see
//                              initramfs/init); any other name (default dist/booty.mjs): an ES
//                              module, for running booty without the sources.
// koffi stays external: esbuild cannot bundle its native loader (see src/sys/libc.ts); the
// initramfs builder ships node_modules/koffi beside the bundle.
import { build } from 'esbuild';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

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
        banner: { js: "const __bootyModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
      }),
    // Readable stack traces on a serial console matter more than a smaller file (the bundle is
    // a few percent of the initramfs).
    minify: false,
    keepNames: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  return outfile;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await bundle(process.argv[2] === undefined ? undefined : path.resolve(process.argv[2]));
  process.stdout.write(`bundle: ${path.relative(process.cwd(), out)} (${formatFor(out) === 'cjs' ? 'CommonJS' : 'ES module'})\n`);
}
