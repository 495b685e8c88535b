// booty rack: a rack's seed for peer to peer (src/p2p/rack-seed.ts). Runs next to the rack's
// dnsmasq (or on any machine of the rack with a disk), fetches the image once from the origin
// and serves its pieces to the rack's agents until stopped (SIGINT/SIGTERM).
import { parseArgs } from 'node:util';
import { createLogger, stderrSink } from '../util/log.ts';
import { parseDuration } from '../util/duration.ts';
import { metainfoUrlFor, RACK_NAME } from '../p2p/metainfo-url.ts';
import { loadP2p } from '../p2p/load.ts';

const HELP = `usage: booty rack --image URL --dir DIR [--rack NAME] [--token T] [--port N] [--metainfo URL]
                  [--origin URL] [--exit-when-complete]

Seeds one image to the peers of a rack (BitTorrent inside the rack): this is the one machine of
the rack that reads the origin, so the origin serves the image once per rack, not once per machine.
The image must be on a booty server started with --p2p (its metainfo is /image-torrent/<name>;
booty server computes it in the background), or give --metainfo.

options:
  --image URL        the image on booty server (http://server:3000/images/<name>)
  --dir DIR          where the image is kept (DIR/<infohash>.img); a seed started again checks
                     the pieces there and fetches only the rest
  --rack NAME        the rack (the tracker's announce scope) the agents of this rack announce in:
                     their action's "p2p": {"rack": NAME}; default auto (this machine's subnet)
  --token T          a credential for the metainfo: an operator token or any machine's agent
                     credential (also BOOTY_TOKEN)
  --port N           TCP port peers connect to (default: any free one)
  --metainfo URL     the metainfo elsewhere
  --origin URL       fetch the image from here (default: the metainfo's web seed, the image URL)
  --stall-timeout T  an origin connection with no byte for T is resumed (default 30s)
  --exit-when-complete  stop once the image is complete and verified (tests, warming a cache)
  -h, --help

exit status: 0 stopped by a signal (or complete, with --exit-when-complete), 1 the image could
not be fetched or is not the one the server recorded, 2 usage.
`;

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: {
      image: { type: 'string' }, dir: { type: 'string' }, rack: { type: 'string' }, token: { type: 'string' }, port: { type: 'string' },
      metainfo: { type: 'string' }, origin: { type: 'string' }, 'stall-timeout': { type: 'string' }, 'exit-when-complete': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    } }));
  } catch (e) {
    process.stderr.write(`booty rack: ${(e as Error).message}\n${HELP}`);
    return 2;
  }
  if (values.help === true) { process.stdout.write(HELP); return 0; }
  const usage = (m: string) => { process.stderr.write(`booty rack: ${m}\n${HELP}`); return 2; };
  if (values.dir === undefined) return usage('--dir is required');
  const metainfoUrl = values.metainfo ?? (values.image === undefined ? undefined : metainfoUrlFor(values.image));
  if (metainfoUrl === undefined) return usage('give --image http://server/images/<name> (an image of a booty server) or --metainfo URL');
  if (values.rack !== undefined && !RACK_NAME.test(values.rack)) return usage('--rack must be 1-64 of A-Z a-z 0-9 . _ - (or auto)');
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) return usage(`--port must be a TCP port, not ${values.port}`);
  const stall = values['stall-timeout'] === undefined ? undefined : parseDuration(values['stall-timeout']);
  if (values['stall-timeout'] !== undefined && (stall === undefined || stall <= 0)) return usage('--stall-timeout must be a duration like 30s');
  const token = values.token ?? process.env.BOOTY_TOKEN;
  const log = createLogger({ sinks: [stderrSink('booty rack')] });
  const stop = new AbortController();
  const { startRackSeed } = await loadP2p();
  let seed;
  try {
    seed = await startRackSeed({
      metainfoUrl, rack: values.rack, dir: values.dir, port, origin: values.origin ?? values.image, log, signal: stop.signal,
      metainfoHeaders: token === undefined || token === '' ? undefined : { authorization: `Bearer ${token}` },
      resume: stall === undefined ? undefined : { stallTimeoutMs: stall },
    });
  } catch (e) {
    process.stderr.write(`booty rack: ${(e as Error).message}\n`);
    return 1;
  }
  const stopped = new Promise<void>((resolve) => {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { log.info(`stopping (${sig})`); resolve(); });
  });
  try {
    const done = seed.complete.then((r) => r, (e: Error) => { throw e; });
    if (values['exit-when-complete'] === true) await Promise.race([done, stopped]);
    else await Promise.race([done.then(() => stopped), stopped]);
    return 0;
  } catch (e) {
    process.stderr.write(`booty rack: ${(e as Error).message}\n`);
    return 1;
  } finally {
    stop.abort();
    await seed.close();
  }
}
