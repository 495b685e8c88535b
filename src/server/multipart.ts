// A small streaming multipart/form-data reader (RFC 7578), enough for BOOTy's capture upload:
// parts are read one at a time, each part's body is an async iterable of Buffers streamed from
// the request with backpressure (nothing is buffered beyond one chunk plus a delimiter's length).
//
//   const reader = new MultipartReader(req, boundary);
//   for (let part; (part = await reader.nextPart()) !== null; ) { for await (const b of part.body) ... }
//
// The caller must consume (or abandon) a part's body before asking for the next part; nextPart()
// drains whatever was left. A body that ends before the closing delimiter throws
// MultipartError, so a truncated upload is never mistaken for a complete one.

export class MultipartError extends Error {
  constructor(message: string) { super(message); this.name = 'MultipartError'; }
}

export interface Part {
  headers: Record<string, string>;
  /** form field name from Content-Disposition */
  name: string | undefined;
  filename: string | undefined;
  body: AsyncIterable<Buffer>;
}

const MAX_HEADER_BYTES = 16 * 1024;
const CRLF = Buffer.from('\r\n');
const CRLFCRLF = Buffer.from('\r\n\r\n');

/** The boundary parameter of a multipart/form-data Content-Type, or undefined. */
export function boundaryOf(contentType: string | undefined): string | undefined {
  if (contentType === undefined || !/^\s*multipart\/form-data\s*(;|$)/i.test(contentType)) return undefined;
  const b = parseHeaderParams(contentType).boundary;
  // RFC 2046: 1-70 characters
  return b !== undefined && b.length >= 1 && b.length <= 70 ? b : undefined;
}

/** `type; a=1; b="x y"` -> {a: '1', b: 'x y'} (parameter names lower-cased). */
export function parseHeaderParams(value: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /;\s*([A-Za-z0-9!#$&+.^_`|~*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/g;
  for (let m; (m = re.exec(value)) !== null;) {
    out[m[1].toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3];
  }
  return out;
}

export class MultipartReader {
  readonly #source: AsyncIterator<Buffer | string>;
  readonly #delimiter: Buffer;     // CRLF "--" boundary
  // Pretend the body starts with CRLF so the first boundary looks like every other one.
  #buf: Buffer = Buffer.from(CRLF);
  #ended = false;
  #finished = false;
  #current: AsyncIterator<Buffer> | null = null;

  constructor(source: AsyncIterable<Buffer | string>, boundary: string) {
    this.#source = source[Symbol.asyncIterator]();
    this.#delimiter = Buffer.from(`\r\n--${boundary}`);
  }

  /** Read more input into the buffer; false at the end of the input. */
  async #fill(): Promise<boolean> {
    if (this.#ended) return false;
    const r = await this.#source.next();
    if (r.done === true) { this.#ended = true; return false; }
    const chunk = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    return true;
  }

  async #need(n: number, what: string): Promise<void> {
    while (this.#buf.length < n) if (!(await this.#fill())) throw new MultipartError(`body ended inside ${what}`);
  }

  async nextPart(): Promise<Part | null> {
    if (this.#finished) return null;
    if (this.#current !== null) {
      // drain the previous part's unread body
      for (let r = await this.#current.next(); r.done !== true; r = await this.#current.next()) { /* discard */ }
      this.#current = null;
    } else {
      await this.#skipPreamble();
    }
    // After a delimiter: "--" closes the body, otherwise optional padding and CRLF.
    await this.#need(2, 'a boundary line');
    if (this.#buf[0] === 0x2d && this.#buf[1] === 0x2d) {
      this.#finished = true;
      return null;
    }
    let eol: number;
    while ((eol = this.#buf.indexOf(CRLF)) < 0) {
      if (this.#buf.length > 256) throw new MultipartError('garbage after a boundary');
      if (!(await this.#fill())) throw new MultipartError('body ended after a boundary');
    }
    if (!/^[ \t]*$/.test(this.#buf.subarray(0, eol).toString('latin1'))) throw new MultipartError('garbage after a boundary');
    this.#buf = this.#buf.subarray(eol + 2);
    const headers = await this.#readHeaders();
    const disposition = parseHeaderParams(headers['content-disposition'] ?? '');
    const body = this.#body();
    this.#current = body;
    return {
      headers, name: disposition.name, filename: disposition.filename,
      body: { [Symbol.asyncIterator]: () => body },
    };
  }

  async #skipPreamble(): Promise<void> {
    for (;;) {
      const i = this.#buf.indexOf(this.#delimiter);
      if (i >= 0) { this.#buf = this.#buf.subarray(i + this.#delimiter.length); return; }
      // keep a tail that may hold the start of the delimiter
      if (this.#buf.length > this.#delimiter.length) this.#buf = this.#buf.subarray(this.#buf.length - this.#delimiter.length);
      if (!(await this.#fill())) throw new MultipartError('no boundary found in the body');
    }
  }

  async #readHeaders(): Promise<Record<string, string>> {
    // a part may have no headers at all: CRLF directly
    let end: number;
    if (this.#buf.length >= 2 && this.#buf[0] === 0x0d && this.#buf[1] === 0x0a) {
      this.#buf = this.#buf.subarray(2);
      return {};
    }
    while ((end = this.#buf.indexOf(CRLFCRLF)) < 0) {
      if (this.#buf.length > MAX_HEADER_BYTES) throw new MultipartError(`part headers longer than ${MAX_HEADER_BYTES} bytes`);
      if (!(await this.#fill())) throw new MultipartError('body ended inside part headers');
      if (this.#buf.length >= 2 && this.#buf[0] === 0x0d && this.#buf[1] === 0x0a) {
        this.#buf = this.#buf.subarray(2);
        return {};
      }
    }
    const text = this.#buf.subarray(0, end).toString('utf8');
    this.#buf = this.#buf.subarray(end + 4);
    const headers: Record<string, string> = {};
    for (const line of text.split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new MultipartError(`malformed part header ${JSON.stringify(line.slice(0, 80))}`);
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    return headers;
  }

  async *#body(): AsyncGenerator<Buffer> {
    const d = this.#delimiter;
    for (;;) {
      const i = this.#buf.indexOf(d);
      if (i >= 0) {
        if (i > 0) yield this.#buf.subarray(0, i);
        this.#buf = this.#buf.subarray(i + d.length);
        return;
      }
      // Everything but the last (delimiter length - 1) bytes is certainly body.
      const safe = this.#buf.length - (d.length - 1);
      if (safe > 0) {
        const out = this.#buf.subarray(0, safe);
        this.#buf = this.#buf.subarray(safe);
        yield out;
      }
      if (!(await this.#fill())) throw new MultipartError('body ended before the closing boundary (truncated upload)');
    }
  }
}
