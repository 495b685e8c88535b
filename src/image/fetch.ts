// Opening an image source: an HTTP(S) GET through undici (body streamed with backpressure, never
// buffered, never decoded: we hash and decompress the bytes exactly as served), or a local file
// (a path or file:// URL, for rescue systems and tests). The response's validators (ETag,
// Accept-Ranges) are kept so a resuming fetch (Range + If-Range) can build on openImage().
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Agent, interceptors, request, type Dispatcher } from 'undici';
import { BootyError } from '../util/errors.ts';

export interface OpenImageOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** first byte wanted (resume): sends `Range: bytes=<start>-` */
  start?: number;
  /** validator for If-Range (the ETag of the first response) */
  ifRange?: string;
  /** fail when no body byte arrives for this long (default 120 s) */
  stallTimeoutMs?: number;
}

export interface ImageResponse {
  url: string;
  body: Readable;
  status: number;
  /** bytes this response will carry (Content-Length), when the server said */
  contentLength?: number;
  /** total bytes of the resource as served (compressed), from Content-Length or Content-Range */
  servedSize?: number;
  contentType?: string;
  etag?: string;
  acceptRanges: boolean;
  /** uncompressed image size announced by the server (X-Image-Size) */
  imageSize?: number;
  /** sha256 of the whole file as the server recorded it at upload (X-Image-Sha256) */
  sha256?: string;
}

let dispatcher: Dispatcher | undefined;
function httpDispatcher(): Dispatcher {
  dispatcher ??= new Agent({ connect: { timeout: 30_000 } }).compose(interceptors.redirect({ maxRedirections: 5 }));
  return dispatcher;
}

function header(h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

function nonNegativeInt(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  const n = Number(v.trim());
  return Number.isSafeInteger(n) ? n : undefined;
}

function fetchError(url: string, message: string, hint: string, cause?: unknown): BootyError {
  return new BootyError({
    stage: 'fetch', code: 'FETCH_FAILED', message: `${message} (${url})`, offset: 0,
    diskState: 'untouched', hint, cause,
  });
}

/** Opens `source` and resolves once the response headers are in (body not yet read). */
export async function openImage(source: string, opts: OpenImageOptions = {}): Promise<ImageResponse> {
  if (source.startsWith('/') || source.startsWith('file:')) return openFile(source, opts);
  let url: URL;
  try { url = new URL(source); } catch {
    throw new BootyError({ stage: 'config', code: 'BAD_IMAGE_URL', message: `not a URL or absolute path: ${JSON.stringify(source)}`, diskState: 'untouched' });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new BootyError({ stage: 'config', code: 'BAD_IMAGE_URL', message: `unsupported URL scheme ${url.protocol} (http, https or a file path)`, diskState: 'untouched' });
  }
  const headers: Record<string, string> = { 'user-agent': 'booty', ...opts.headers };
  if (opts.start !== undefined && opts.start > 0) {
    headers.range = `bytes=${opts.start}-`;
    if (opts.ifRange !== undefined) headers['if-range'] = opts.ifRange;
  }
  let res: Dispatcher.ResponseData;
  try {
    res = await request(url, {
      method: 'GET', headers, signal: opts.signal, dispatcher: httpDispatcher(),
      headersTimeout: 60_000, bodyTimeout: opts.stallTimeoutMs ?? 120_000,
    });
  } catch (e) {
    throw fetchError(url.href, `cannot GET the image: ${(e as Error).message}`,
      'check that the server is up and the URL is right, then retry', e);
  }
  const h = res.headers;
  if (res.statusCode !== 200 && res.statusCode !== 206) {
    const snippet = await readSnippet(res.body);
    throw fetchError(url.href, `server answered ${res.statusCode}${snippet ? `: ${snippet}` : ''}`,
      res.statusCode === 404 ? 'check the image name on the server' : 'check the server log, then retry');
  }
  const contentLength = nonNegativeInt(header(h, 'content-length'));
  const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header(h, 'content-range') ?? '');
  return {
    url: url.href,
    body: res.body,
    status: res.statusCode,
    contentLength,
    servedSize: range ? Number(range[3]) : res.statusCode === 200 ? contentLength : undefined,
    contentType: header(h, 'content-type'),
    etag: header(h, 'etag'),
    acceptRanges: (header(h, 'accept-ranges') ?? '').toLowerCase() === 'bytes',
    imageSize: nonNegativeInt(header(h, 'x-image-size')),
    sha256: /^[0-9a-f]{64}$/i.test(header(h, 'x-image-sha256') ?? '') ? header(h, 'x-image-sha256')!.toLowerCase() : undefined,
  };
}

async function readSnippet(body: Readable): Promise<string> {
  let text = '';
  try {
    for await (const chunk of body) {
      text += (chunk as Buffer).toString('utf8');
      if (text.length >= 300) break;
    }
  } catch { /* the status is the news */ }
  body.destroy();
  return text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 200);
}

function openFile(source: string, opts: OpenImageOptions): ImageResponse {
  const path = source.startsWith('file:') ? fileURLToPath(source) : source;
  let size: number;
  try {
    const st = fs.statSync(path);
    if (!st.isFile()) throw new Error('not a regular file');
    size = st.size;
  } catch (e) {
    throw fetchError(path, `cannot open the image: ${(e as Error).message}`, 'check the path');
  }
  const start = opts.start ?? 0;
  const body = fs.createReadStream(path, { start, highWaterMark: 1 << 20, signal: opts.signal });
  return {
    url: path, body, status: start > 0 ? 206 : 200, contentLength: size - start, servedSize: size,
    acceptRanges: true,
  };
}
