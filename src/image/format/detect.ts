// What an image stream is, from its first bytes only: names and Content-Type lie (a `.img.gz`
// served raw, `application/octet-stream` for everything), magic numbers do not. Also the one thing
// a stream's head can tell about its size (zstd's Frame_Content_Size), and whether the "image"
// is in fact an error page a proxy served with status 200.

import { parseZstdFrameStart } from './frame-format.ts';
import { qcow2Version } from '../qcow2/header.ts';
import { UNSUPPORTED_HEAD_BYTES, unsupportedFormat, type UnsupportedFormat } from './unsupported-formats.ts';

export type Format = 'gzip' | 'zstd' | 'xz' | 'bzip2' | 'qcow2' | 'raw';

/** Bytes of the head that detection looks at: a zstd frame header, HTML sniffing, and the magic
 *  of every format booty refuses (ISO 9660's sits at 32 KiB). */
export const HEAD_BYTES = UNSUPPORTED_HEAD_BYTES;

/** What the head says the image is: a format booty decodes (raw: nothing known matched), or one
 *  it recognizes and refuses. */
export type HeadClass = { format: Format; unsupported?: undefined } | { format?: undefined; unsupported: UnsupportedFormat };

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];
const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const BZIP2_MAGIC = [0x42, 0x5a, 0x68];

function startsWith(head: Uint8Array, magic: number[]): boolean {
  if (head.length < magic.length) return false;
  return magic.every((b, i) => head[i] === b);
}

/** gzip (1f 8b), zstd (28 b5 2f fd, or a skippable frame before one, as pzstd writes), xz
 *  (fd 37 7a 58 5a 00), bzip2 (BZh), qcow2 ("QFI\xfb", versions 2 and 3: its header decides the
 *  rest, qcow2/header.ts, including what is refused); anything else is raw as far as decoding goes (classifyHead()
 *  also knows what must not be written raw). */
export function detectFormat(head: Uint8Array): Format {
  if (startsWith(head, GZIP_MAGIC)) return 'gzip';
  if (startsWith(head, ZSTD_MAGIC) || zstdAfterSkippable(head)) return 'zstd';
  if (startsWith(head, XZ_MAGIC)) return 'xz';
  if (isBzip2(head)) return 'bzip2';
  if (qcow2Version(head) !== undefined && unsupportedFormat(head) === undefined) return 'qcow2';
  return 'raw';
}

/** "BZh" and a block size digit, then a block ("pi") or the end of the stream ("sqrt(pi)"). */
function isBzip2(head: Uint8Array): boolean {
  if (!startsWith(head, BZIP2_MAGIC) || head.length < 4 || head[3] < 0x31 || head[3] > 0x39) return false;
  if (head.length < 10) return true;
  const next = Buffer.from(head.buffer, head.byteOffset + 4, 6).toString('hex');
  return next === '314159265359' || next === '177245385090';
}

/** The decoded format, or the refused one that the head's magic names. */
export function classifyHead(head: Uint8Array): HeadClass {
  const format = detectFormat(head);
  if (format !== 'raw') return { format };
  const unsupported = unsupportedFormat(head);
  return unsupported === undefined ? { format } : { unsupported };
}

/** A zstd/lz4 skippable frame (magic 0x184D2A5?) whose next frame is a zstd frame. */
function zstdAfterSkippable(head: Uint8Array): boolean {
  if (head.length < 12) return false;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if ((view.getUint32(0, true) & 0xfffffff0) >>> 0 !== 0x184d2a50) return false;
  const next = 8 + view.getUint32(4, true);
  return head.length >= next + 4 && view.getUint32(next, true) === 0xfd2fb528;
}

/**
 * Frame_Content_Size of the first zstd frame (RFC 8878 3.1.1.1), or undefined when the frame does
 * not declare it (streamed compression), declares more than 2^53 bytes, or the head is too short.
 * For a multi-frame image this is a lower bound of the uncompressed size, which is all a
 * disk-size check needs.
 */
export function zstdFrameContentSize(head: Uint8Array): number | undefined {
  const start = parseZstdFrameStart(head);
  if (start.kind !== 'frame' || start.header.contentSize === undefined || !Number.isFinite(start.header.contentSize)) return undefined;
  return start.header.contentSize;
}

/** True when the head reads as an HTML/XML document (an error page, a login portal). */
export function looksLikeMarkup(head: Uint8Array): boolean {
  let text = Buffer.from(head.subarray(0, 512)).toString('latin1');
  if (text.charCodeAt(0) === 0xef && text.charCodeAt(1) === 0xbb && text.charCodeAt(2) === 0xbf) text = text.slice(3);
  text = text.trimStart().slice(0, 64).toLowerCase();
  return ['<!doctype html', '<html', '<head', '<body', '<?xml', '<!--', '<title', '<h1'].some((p) => text.startsWith(p));
}

/** True for Content-Types a server uses for pages, never for disk images. */
export function isPageContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const t = contentType.split(';')[0].trim().toLowerCase();
  return t === 'text/html' || t === 'application/xhtml+xml' || t === 'text/plain' || t === 'application/json';
}

/**
 * Why a head must not be written as a raw image, or undefined when it may. An error page served
 * with 200 must never end up on a disk as a "raw image": refuse when the bytes look like markup,
 * or (when the format was auto-detected) when the server labels them as a page.
 */
export function refuseRawReason(head: Uint8Array, contentType: string | undefined, explicitRaw: boolean): string | undefined {
  if (head.length === 0) return 'the image is empty (0 bytes served)';
  if (looksLikeMarkup(head)) {
    return `the server sent a web page, not a disk image (it begins ${JSON.stringify(printable(head))})`;
  }
  if (!explicitRaw && isPageContentType(contentType)) {
    return `the server labels the response ${contentType} and it has no gzip/zstd magic: probably an error page, not a disk image (use --format raw to write it anyway)`;
  }
  return undefined;
}

function printable(head: Uint8Array): string {
  return Buffer.from(head.subarray(0, 40)).toString('latin1').replace(/[^\x20-\x7e]/g, '.');
}
