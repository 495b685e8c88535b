// The one way into peer to peer (p2p-entry.ts): loaded on first use, by deploy when an action or
// --p2p turns it on, by booty rack, and by booty server --p2p. From the sources it is a dynamic
// import; in a bundle its code is a string until here (p2p-bundled.ts), evaluated once: about a
// megabyte of BitTorrent, tracker and bencode code the agent's start would otherwise parse.
import { bundledP2p } from './p2p-bundled.ts';
import { FetchError, openImage } from '../image/source/fetch.ts';
import { ImageChangedError, ResumableSource } from '../image/source/resumable-source.ts';

type P2p = typeof import('./p2p-entry.ts');

let loaded: Promise<P2p> | undefined;

export function loadP2p(): Promise<P2p> {
  loaded ??= load().then((m) => {
    m.useHttp({ openImage, FetchError, ResumableSource, ImageChangedError });
    return m;
  });
  return loaded;
}

async function load(): Promise<P2p> {
  if (bundledP2p === undefined) {
    // a name the bundler does not follow: in a bundle this branch never runs
    const entry = './p2p-entry.ts';
    return await import(entry) as P2p;
  }
  const module = { exports: {} as P2p };
  // the bundle's own require (CommonJS, or the ES module's banner): Node's built-ins are all the
  // embedded code asks for
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  new Function('require', 'module', 'exports', bundledP2p)(require, module, module.exports);
  return module.exports;
}
