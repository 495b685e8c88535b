// A plain static origin, as nginx serves files: application/octet-stream, Content-Length, a weak
// validator as ETag, `Range: bytes=N-` answered with 206; no checksum headers (booty server's
// X-Image-Sha256 and friends are exactly what such an origin does not send). On 127.0.0.1.
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';

export interface StaticOrigin { url: string; close(): void }

/** `ranges: false`: an origin that ignores Range (always 200 with the whole file, no Accept-Ranges). */
export async function startStaticOrigin(dir: string, o: { ranges?: boolean } = {}): Promise<StaticOrigin> {
  const server = http.createServer((req, res) => {
    const f = path.join(dir, path.basename(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)));
    if (!fs.existsSync(f) || !fs.statSync(f).isFile()) { res.writeHead(404).end(); return; }
    const st = fs.statSync(f);
    const m = o.ranges === false ? null : /^bytes=(\d+)-(\d*)$/.exec(String(req.headers.range ?? ''));
    const start = m === null ? 0 : Number(m[1]);
    const end = m === null || m[2] === '' ? st.size - 1 : Math.min(Number(m[2]), st.size - 1);
    const headers = { 'content-type': 'application/octet-stream', ...(o.ranges === false ? {} : { 'accept-ranges': 'bytes' }), etag: `"${st.mtimeMs.toString(16)}-${st.size.toString(16)}"` };
    if (m !== null) res.writeHead(206, { ...headers, 'content-length': end + 1 - start, 'content-range': `bytes ${start}-${end}/${st.size}` });
    else res.writeHead(200, { ...headers, 'content-length': st.size });
    fs.createReadStream(f, { start, end }).pipe(res);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, close: () => server.close() };
}
