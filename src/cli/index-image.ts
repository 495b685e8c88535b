// booty index: writes the gzip access-point index of an image file (gzip-index.ts), for images
// hosted by another web server: put IMAGE.gzidx next to IMAGE and deploy with
// --gzip-index URL (booty server builds and announces its own; this is not needed there).
import { parseArgs } from 'node:util';
import { IndexRefused } from '../image/format/gzip-index.ts';
import { buildGzipIndexFile } from '../image/format/gzip-index-file.ts';
import { formatBytes } from '../image/progress.ts';

const HELP = `usage: booty index IMAGE [--out FILE]

Builds the access-point index of a gzip image written by pigz (the default for images booty's
tools and most build pipelines make with pigz): every 4 MiB of output, where the deflate stream
can be entered and the 32 KiB before it. With it, deploy inflates the image on every core
instead of one stream (booty deploy --gzip-index URL). The image is decoded twice to prove every
point; an image without usable points (gzip(1) output, several members) gets no index and
deploys as one stream, as before.

options:
  --out FILE   where to write it (default IMAGE.gzidx)
  -h, --help

exit status: 0 index written, 1 the image gets no index (the reason is printed), 2 usage.
`;

export async function run(argv: string[]): Promise<number> {
  let values; let positionals;
  try {
    ({ values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (e) {
    process.stderr.write(`booty index: ${(e as Error).message}\n${HELP}`);
    return 2;
  }
  if (values.help === true) { process.stdout.write(HELP); return 0; }
  if (positionals.length !== 1) { process.stderr.write(`booty index: give exactly one IMAGE\n${HELP}`); return 2; }
  const image = positionals[0];
  const out = values.out ?? `${image}.gzidx`;
  const started = performance.now();
  try {
    const h = await buildGzipIndexFile(image, out);
    const s = (performance.now() - started) / 1000;
    process.stdout.write(`booty index: ${out}: ${h.count} segments, ${formatBytes(h.indexBytes)} for ${formatBytes(h.fileSize)} of gzip (${formatBytes(h.totalSize)} uncompressed), built in ${s.toFixed(1)} s\n`);
    return 0;
  } catch (e) {
    if (e instanceof IndexRefused) {
      process.stderr.write(`booty index: ${image} gets no index: ${e.message}\n`);
      return 1;
    }
    process.stderr.write(`booty index: ${(e as Error).message}\n`);
    return 1;
  }
}
