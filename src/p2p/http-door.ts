// The HTTP side of peer to peer is the main program's own (fetch.ts, resumable-source.ts), handed
// over when peer to peer is loaded (load.ts): in a bundle p2p-entry is separate code, and it must
// use the same pinned TLS and connection pools, and throw the very error classes deploy tells
// apart (instanceof ImageChangedError, FetchError), not copies of them.
import type { FetchError, openImage } from '../image/source/fetch.ts';
import type { ImageChangedError, ResumableSource } from '../image/source/resumable-source.ts';

export interface HttpDoor {
  openImage: typeof openImage;
  FetchError: typeof FetchError;
  ResumableSource: typeof ResumableSource;
  ImageChangedError: typeof ImageChangedError;
}

let door: HttpDoor | undefined;

export function useHttp(d: HttpDoor): void { door = d; }

export function http(): HttpDoor {
  if (door === undefined) throw new Error('p2p: loaded without its HTTP door (load it with src/p2p/load.ts)');
  return door;
}
