#!/usr/bin/env node
// Bundles the CLI (src/cli/main.ts and everything it imports, agent included) into one ES module,
// dist/booty.mjs, for the initramfs and for running without the sources.
// koffi stays external: esbuild cannot bundle its native loader (see src/sys/libc.ts); the
// initramfs builder ships node_modules/koffi beside the bundle.
import { build } from 'esbuild';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export async function bundle(outfile = path.join(root, 'dist', 'booty.mjs')) {
  await build({
    absWorkingDir: root,
    entryPoints: [path.join(root, 'src', 'cli', 'main.ts')],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node26',
    external: ['koffi'],
    // CommonJS dependencies (undici, ajv, tar-stream) call require() for Node built-ins; an ES
    // module has none, so give the bundle one.
    banner: { js: "import { createRequire as __bootyCreateRequire } from 'node:module';\nconst require = __bootyCreateRequire(import.meta.url);" },
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
  const out = await bundle(process.argv[2]);
  process.stdout.write(`bundle: ${path.relative(process.cwd(), out)}\n`);
}
