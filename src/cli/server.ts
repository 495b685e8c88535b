// `booty server --data DIR [--listen HOST:PORT] [--token T] [--max-upload BYTES]`
import { parseArgs } from 'node:util';
import { parseListen, startServer } from '../server/server.ts';

const HELP = `usage: booty server --data DIR [--listen HOST:PORT] [--token TOKEN] [--max-upload BYTES]

Serves actions per MAC, images (with Range/ETag), accepts uploads (booty PUT and BOOTy's
multipart POST) and agent reports. See README "booty server" and "Server API".

  --data DIR          data directory (created if missing): machines/, default.json, images/, state/
  --listen HOST:PORT  address to listen on (default 0.0.0.0:3000; port 0 picks a free port)
  --token TOKEN       require "Authorization: Bearer TOKEN" for uploads, actions and events
                      (also read from the environment variable BOOTY_TOKEN)
  --max-upload BYTES  refuse uploads larger than this (default: no limit)
`;

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv, strict: true, allowPositionals: false,
      options: {
        data: { type: 'string' }, listen: { type: 'string', default: '0.0.0.0:3000' },
        token: { type: 'string' }, 'max-upload': { type: 'string' }, help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    process.stderr.write(`booty server: ${(e as Error).message}\n${HELP}`);
    return 2;
  }
  if (values.help === true) { process.stdout.write(HELP); return 0; }
  if (values.data === undefined) { process.stderr.write(`booty server: --data DIR is required\n${HELP}`); return 2; }
  let listen;
  try { listen = parseListen(values.listen); } catch (e) { process.stderr.write(`booty server: ${(e as Error).message}\n`); return 2; }
  const maxUpload = values['max-upload'];
  if (maxUpload !== undefined && !/^\d+$/.test(maxUpload)) { process.stderr.write('booty server: --max-upload must be a number of bytes\n'); return 2; }
  const token = values.token ?? process.env.BOOTY_TOKEN;

  let running;
  try {
    running = await startServer({
      dataDir: values.data, host: listen.host, port: listen.port, token: token === '' ? undefined : token,
      maxUploadBytes: maxUpload === undefined ? undefined : Number(maxUpload),
    });
  } catch (e) {
    process.stderr.write(`booty server: cannot start: ${(e as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`booty server: listening on ${running.url}\n`);
  process.stderr.write(`booty server: data in ${values.data}${token ? '; uploads, actions and events need the token' : ''}\n`);
  await new Promise<void>((done) => {
    const stop = (sig: string) => {
      process.stderr.write(`booty server: ${sig}, shutting down\n`);
      void running.close().finally(done);
      // a second signal, or connections that will not close, must not keep us alive
      setTimeout(() => done(), 5000).unref();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  return 0;
}
