// Whether deploy inflates a gzip image in segments with its access-point index (segment-inflate.ts)
// or as one stream (decode-worker.ts), decided from what is known before the first byte is
// written: the operator's flags, the cores, and the index's own records (which segments are all
// zeros). A pure function, so the rule is tested on its own and its reason goes to the agent log.
//
// The mechanism (README, Performance, "Which gzip path"): segments gain in two ways, by inflating
// on several cores at once and by not inflating the segments the index marks as all zeros. They
// cost in two: a segment is inflated only once all of its compressed bytes have arrived (one
// stream overlaps receiving and inflating byte by byte), and each segment holds a write block from
// its dispatch to its write. Both paths spend the same CPU on data (measured: 1.1-1.2 CPU s per
// 512 MiB of the dense bench image either way). The main thread (HTTP, sha256, copies, write
// submission) needs a good share of one core, so:
//   - one core: one stream; segments would only add copies and hand-offs;
//   - 3 cores and more: segments, one worker per core: there is a core to inflate on beside the
//     main thread's share;
//   - 2 cores: two segment workers and the main thread take turns on the two cores, so inflating
//     in parallel gains little over one decode worker; what the index surely saves there is the
//     inflating of all-zero segments. Segments when at least half the image's bytes are in
//     all-zero segments (fresh OS images, mostly free space), else one stream (a used, dense
//     disk, where the index was the slower choice).
// The operator's --workers N (N >= 2: segments on N workers) and --no-gzip-index always win.

/** What the index's records say, read before the deploy starts (gzip-index-source.ts). */
export interface GzipIndexSummary {
  segments: number;
  /** segments the index marks as all zeros */
  zeroSegments: number;
  /** uncompressed bytes, all of them and those in all-zero segments */
  totalBytes: number;
  zeroBytes: number;
}

export interface GzipPathInput {
  cores: number;
  /** the operator's --workers / "workers", if given */
  workers?: number;
  /** 'none': no index (none announced or given, or --no-gzip-index); 'not-read': one was opened
   *  but its records were not read ahead (not needed, or reading them failed) */
  index: 'none' | 'not-read' | GzipIndexSummary;
}

export type GzipPath =
  | { path: 'segments'; workers: number; reason: string }
  | { path: 'stream'; reason: string };

/** Share of the image's bytes in all-zero segments from which 2 cores take the segment path. */
export const TWO_CORE_ZERO_SHARE = 0.5;
/** The most segment workers deploy starts by default. */
export const MAX_SEGMENT_WORKERS = 32;

/** Whether the decision needs the index's records (read ahead) or can be made without them. */
export function needsIndexSummary(cores: number, workers: number | undefined): boolean {
  return workers === undefined && cores === 2;
}

/** The gzip path for this deploy, and why (for the agent log). */
export function chooseGzipPath(i: GzipPathInput): GzipPath {
  if (i.index === 'none') return { path: 'stream', reason: 'no gzip index for this image' };
  if (i.workers !== undefined) {
    return i.workers >= 2
      ? { path: 'segments', workers: i.workers, reason: `--workers ${i.workers}` }
      : { path: 'stream', reason: `--workers ${i.workers}: fewer than 2 segment workers cannot inflate in parallel` };
  }
  if (i.cores < 2) return { path: 'stream', reason: `${i.cores} core: segments would only add copies and hand-offs` };
  if (i.cores >= 3) {
    const workers = Math.min(i.cores, MAX_SEGMENT_WORKERS);
    return { path: 'segments', workers, reason: `${i.cores} cores: a core for each segment worker beside the main thread's share` };
  }
  if (i.index === 'not-read') return { path: 'stream', reason: "2 cores and the index's records could not be read ahead: one stream" };
  const s = i.index;
  const share = s.totalBytes > 0 ? s.zeroBytes / s.totalBytes : 0;
  const pct = `${(100 * share).toFixed(0)} %`;
  const what = `${s.zeroSegments} of ${s.segments} segments (${pct} of the bytes) are all zeros`;
  return share >= TWO_CORE_ZERO_SHARE
    ? { path: 'segments', workers: 2, reason: `2 cores, ${what}: the index spares inflating them` }
    : { path: 'stream', reason: `2 cores, ${what}: too few to gain from the index; two segment workers would share the cores with the main thread` };
}
