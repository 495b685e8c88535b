// Capture uploads, streamed (chunked, no Content-Length, nothing buffered or staged on disk):
//  - 'put' (booty server): PUT {url}?upload=<id> with the image body; the server keeps it as a
//    temp file and answers 202 {size, sha256}; then POST {url}?commit=<id> with the {size, sha256}
//    we computed while sending; the server renames atomically when they match (200) or deletes
//    (409). A broken upload never appears under the final name.
//  - 'multipart' (BOOTy receivers): POST {url} multipart/form-data, one file in field
//    `BootyImage` named `<aa:bb:cc:dd:ee:ff>.img` (raw) or `.zmg` (gzip).
import { randomBytes } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from '../../net/undici.ts';
import { pooledDispatcher, trustedConnect } from '../../net/tls-pin.ts';

export interface UploadOutcome {
  /** what the server said it stored (its JSON answer), when it answered JSON */
  reply?: unknown;
  /** where the image can be fetched, when known */
  location?: string;
}

export class UploadRejected extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'UploadRejected';
    this.status = status;
  }
}

function uploadDispatcher(): Dispatcher {
  // no headers timeout while the body is still streaming (a big disk takes minutes); the server
  // answers only after the last byte
  return pooledDispatcher('upload', () => new Agent({ connect: trustedConnect({ timeout: 30_000 }), headersTimeout: 0, bodyTimeout: 300_000 }));
}

async function replyText(body: Dispatcher.ResponseData['body']): Promise<string> {
  try { return (await body.text()).trim(); } catch { return ''; }
}

function parseJson(text: string): unknown {
  try { return JSON.parse(text); } catch { return undefined; }
}

function reason(text: string): string {
  const j = parseJson(text) as { error?: unknown; message?: unknown } | undefined;
  const msg = typeof j?.error === 'string' ? j.error : typeof j?.message === 'string' ? j.message : text;
  return msg.replace(/\s+/g, ' ').slice(0, 300);
}

function withParam(url: string, key: string, value: string): string {
  const u = new URL(url);
  u.searchParams.set(key, value);
  return u.href;
}

export interface PutUploadOptions {
  url: string;
  body: Readable;
  headers?: Record<string, string>;
  /** uncompressed size, sent as X-Image-Size and in the commit */
  imageSize?: number;
  signal?: AbortSignal;
  /** called once the body is fully sent: the size and sha256 of what was sent */
  sent: () => { size: number; sha256: string };
}

/** booty's two-step PUT + commit. */
export async function uploadPut(o: PutUploadOptions): Promise<UploadOutcome> {
  const id = randomBytes(12).toString('hex');
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'user-agent': 'booty', ...o.headers };
  if (o.imageSize !== undefined) headers['x-image-size'] = String(o.imageSize);
  const put = await request(withParam(o.url, 'upload', id), {
    method: 'PUT', body: o.body, headers, signal: o.signal, dispatcher: uploadDispatcher(),
  });
  const putText = await replyText(put.body);
  if (put.statusCode < 200 || put.statusCode >= 300) {
    throw new UploadRejected(put.statusCode, `server refused the upload with ${put.statusCode}: ${reason(putText)}`);
  }
  const mine = o.sent();
  const theirs = parseJson(putText) as { size?: unknown; sha256?: unknown } | undefined;
  const commitHeaders: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'booty', ...o.headers };
  delete commitHeaders['x-image-size'];
  const commit = await request(withParam(o.url, 'commit', id), {
    method: 'POST', headers: commitHeaders, signal: o.signal, dispatcher: uploadDispatcher(),
    body: JSON.stringify({ size: mine.size, sha256: mine.sha256, ...(o.imageSize !== undefined ? { uncompressedSize: o.imageSize } : {}) }),
  });
  const commitText = await replyText(commit.body);
  if (commit.statusCode !== 200 && commit.statusCode !== 201) {
    const got = theirs !== undefined && typeof theirs.size === 'number'
      ? ` (server received ${theirs.size} bytes, sha256 ${String(theirs.sha256).slice(0, 12)}…; sent ${mine.size} bytes, sha256 ${mine.sha256.slice(0, 12)}…)` : '';
    throw new UploadRejected(commit.statusCode, `server refused the commit with ${commit.statusCode}: ${reason(commitText)}${got}`);
  }
  const location = new URL(o.url);
  location.search = '';
  return { reply: parseJson(commitText), location: location.href };
}

export interface MultipartUploadOptions {
  url: string;
  body: Readable;
  /** file name in the form, e.g. aa:bb:cc:dd:ee:ff.zmg */
  filename: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** BOOTy's multipart/form-data POST, streamed: preamble, the image, the closing boundary. */
export async function uploadMultipart(o: MultipartUploadOptions): Promise<UploadOutcome> {
  const boundary = `----booty${randomBytes(12).toString('hex')}`;
  const form = new PassThrough({ highWaterMark: 1 << 20 });
  const preamble = `--${boundary}\r\nContent-Disposition: form-data; name="BootyImage"; filename="${o.filename}"\r\n` +
    `Content-Type: application/octet-stream\r\n\r\n`;
  form.write(preamble);
  o.body.on('error', (e) => form.destroy(e));
  o.body.on('end', () => form.end(`\r\n--${boundary}--\r\n`));
  o.body.pipe(form, { end: false });
  const res = await request(o.url, {
    method: 'POST', body: form, signal: o.signal, dispatcher: uploadDispatcher(),
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'user-agent': 'BOOTy-client', ...o.headers },
  });
  const text = await replyText(res.body);
  if (res.statusCode < 200 || res.statusCode >= 300) {
    throw new UploadRejected(res.statusCode, `server refused the upload with ${res.statusCode}: ${reason(text)}`);
  }
  return { reply: parseJson(text) };
}
