// Opening an image source: an HTTP(S) GET through undici (body streamed with backpressure, never
// buffered, never decoded: we hash and decompress the bytes exactly as served), or a local file
// (a path or file:// URL, for rescue systems and tests). The response's validators (ETag,
// Last-Modified) and Content-Range are kept so a resuming fetch (Range + If-Range, see
// resumable-source.ts) can check that it continues the same bytes. Failures are FetchErrors that
// say whether trying again may help (a dropped connection, a 503) or not (a 404).
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Agent, interceptors, request, type Dispatcher } from '../../net/undici.ts';
import { BootyError } from '../../util/errors.ts';
import { pooledDispatcher, trustErrorOf, trustedConnect } from '../../net/tls-pin.ts';

export interface OpenImageOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** first byte wanted (resume): sends `Range: bytes=<start>-` */
  start?: number;
  /** last byte wanted (inclusive): sends `Range: bytes=<start>-<end>` (a table read, qcow2) */
  end?: number;
  /** validator for If-Range (the ETag of the first response) */
  ifRange?: string;
  /** fail when no body byte arrives for this long (default 120 s; 0 = never: the caller watches) */
  stallTimeoutMs?: number;
  /** fail when the response headers take longer than this (default 60 s) */
  headersTimeoutMs?: number;
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
  lastModified?: string;
  /** first byte this response carries (Content-Range start; 0 for a 200) */
  rangeStart: number;
  acceptRanges: boolean;
  /** uncompressed image size announced by the server (X-Image-Size) */
  imageSize?: number;
  /** sha256 of the whole file as the server recorded it at upload (X-Image-Sha256) */
  sha256?: string;
  /** the ETag of the image a response describes without being it (X-Image-Etag: booty server's
   *  metainfo, src/p2p/) */
  imageEtag?: string;
  /** where the server offers a gzip access-point index of this image (X-Booty-Gzip-Index,
   *  resolved against the image URL; gzip-index.ts) */
  gzipIndex?: string;
}

function httpDispatcher(): Dispatcher {
  // trustedConnect: with booty.ca / --ca set, only pinned (or CA-signed) https servers (tls-pin.ts)
  return pooledDispatcher('image-fetch', () => new Agent({ connect: trustedConnect({ timeout: 30_000 }) }).compose(interceptors.redirect({ maxRedirections: 5 })));
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

/** A failed GET. `transient`: the same request may succeed later (network trouble, 5xx, 429);
 *  `status`: the HTTP status when the server answered. */
export class FetchError extends BootyError {
  readonly transient: boolean;
  readonly status: number | undefined;
  constructor(url: string, message: string, hint: string, o: { transient: boolean; status?: number; cause?: unknown }) {
    super({ stage: 'fetch', code: 'FETCH_FAILED', message: `${message} (${url})`, offset: 0, diskState: 'untouched', hint, cause: o.cause });
    this.transient = o.transient;
    this.status = o.status;
  }
}

/** Statuses worth retrying: the server or a proxy in front of it is busy, restarting or timed out. */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status !== 501 && status !== 505);
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
  if ((opts.start !== undefined && opts.start > 0) || opts.end !== undefined) {
    // identity: the byte offsets must be those of the file as stored
    headers['accept-encoding'] = 'identity';
    headers.range = `bytes=${opts.start ?? 0}-${opts.end ?? ''}`;
    if (opts.ifRange !== undefined) headers['if-range'] = opts.ifRange;
  }
  let res: Dispatcher.ResponseData;
  try {
    res = await request(url, {
      method: 'GET', headers, signal: opts.signal, dispatcher: httpDispatcher(),
      headersTimeout: opts.headersTimeoutMs ?? 60_000, bodyTimeout: opts.stallTimeoutMs ?? 120_000,
    });
  } catch (e) {
    const untrusted = trustErrorOf(e);
    if (untrusted !== undefined) {
      throw new FetchError(url.href, `cannot GET the image: ${untrusted.message}`, 'check booty.ca= / --ca against the server\'s certificate', { transient: false, cause: e });
    }
    // the network failed us (refused, reset, timed out): worth another try, unless we were told to stop
    const why = (e as Error).name === 'AbortError' && opts.signal?.reason instanceof Error ? opts.signal.reason.message : (e as Error).message;
    throw new FetchError(url.href, `cannot GET the image: ${why}`,
      'check that the server is up and the URL is right, then retry', { transient: true, cause: e });
  }
  const h = res.headers;
  if (res.statusCode !== 200 && res.statusCode !== 206) {
    const snippet = await readSnippet(res.body);
    throw new FetchError(url.href, `server answered ${res.statusCode}${snippet ? `: ${snippet}` : ''}`,
      res.statusCode === 404 ? 'check the image name on the server' : 'check the server log, then retry',
      { transient: isTransientStatus(res.statusCode), status: res.statusCode });
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
    lastModified: header(h, 'last-modified'),
    rangeStart: range ? Number(range[1]) : 0,
    acceptRanges: (header(h, 'accept-ranges') ?? '').toLowerCase() === 'bytes',
    imageSize: nonNegativeInt(header(h, 'x-image-size')),
    sha256: /^[0-9a-f]{64}$/i.test(header(h, 'x-image-sha256') ?? '') ? header(h, 'x-image-sha256')!.toLowerCase() : undefined,
    gzipIndex: resolveIndexUrl(header(h, 'x-booty-gzip-index'), url),
    imageEtag: header(h, 'x-image-etag'),
  };
}

/** The index URL a server announced, resolved against the image's URL; only http(s) on the same
 *  origin is followed (an index elsewhere would be a second server to trust). */
function resolveIndexUrl(v: string | undefined, base: URL): string | undefined {
  if (v === undefined || v.trim() === '') return undefined;
  try {
    const u = new URL(v.trim(), base);
    return u.origin === base.origin ? u.href : undefined;
  } catch { return undefined; }
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
    throw new FetchError(path, `cannot open the image: ${(e as Error).message}`, 'check the path', { transient: false, cause: e });
  }
  const start = opts.start ?? 0;
  const end = opts.end !== undefined ? Math.min(opts.end, size - 1) : size - 1;
  const body = fs.createReadStream(path, { start, ...(opts.end !== undefined ? { end } : {}), highWaterMark: 1 << 20, signal: opts.signal });
  return {
    url: path, body, status: start > 0 || opts.end !== undefined ? 206 : 200, contentLength: end + 1 - start, servedSize: size,
    rangeStart: start, acceptRanges: true,
  };
}
