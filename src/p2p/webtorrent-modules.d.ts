// Types for the parts of the webtorrent family booty uses (the packages ship JavaScript only):
// only what src/p2p/ and src/server/p2p/ call, as the packages' READMEs and sources define it.
declare module 'bencode' {
  const bencode: {
    encode(value: unknown): Uint8Array;
    decode(data: Uint8Array, start?: number, end?: number, encoding?: string): unknown;
  };
  export default bencode;
}

declare module 'create-torrent' {
  interface CreateTorrentOptions {
    name?: string;
    creationDate?: Date;
    createdBy?: string;
    private?: boolean;
    pieceLength?: number;
    announceList?: string[][];
    urlList?: string[];
  }
  function createTorrent(input: string | Uint8Array, opts: CreateTorrentOptions, cb: (err: Error | null, torrent: Uint8Array) => void): void;
  export default createTorrent;
}

declare module 'bittorrent-protocol' {
  import type { EventEmitter } from 'node:events';
  interface BitField { get(i: number): boolean; set(i: number, v?: boolean): void; buffer: Uint8Array }
  class Wire extends EventEmitter {
    constructor(type?: string);
    peerPieces: BitField;
    peerChoking: boolean;
    amChoking: boolean;
    hasFast: boolean;
    requests: unknown[];
    /** the peer's requests not yet answered */
    peerRequests: unknown[];
    /** the peer's id (hex), once its handshake came */
    peerId?: string;
    destroyed: boolean;
    handshake(infoHash: string | Uint8Array, peerId: string | Uint8Array, extensions?: { fast?: boolean; dht?: boolean }): void;
    bitfield(bitfield: Uint8Array | { buffer: Uint8Array }): void;
    have(index: number): void;
    haveAll(): void;
    interested(): void;
    unchoke(): void;
    choke(): void;
    request(index: number, offset: number, length: number, cb: (err: Error | null, block?: Uint8Array) => void): void;
    /** withdraws an open request: its callback gets "request was cancelled", the peer a CANCEL */
    cancel(index: number, offset: number, length: number): void;
    setTimeout(ms: number, unref?: boolean): void;
    setKeepAlive(enable: boolean): void;
    destroy(): void;
    pipe<T extends NodeJS.WritableStream>(dest: T): T;
  }
  export default Wire;
}

declare module 'bittorrent-tracker/server' {
  import type { EventEmitter } from 'node:events';
  import type { IncomingMessage, ServerResponse } from 'node:http';
  interface TrackerServerOptions {
    http?: boolean; udp?: boolean; ws?: boolean; stats?: boolean; trustProxy?: boolean; interval?: number;
    filter?: (infoHash: string, params: unknown, cb: (err: Error | null) => void) => void;
  }
  class Server extends EventEmitter {
    constructor(opts?: TrackerServerOptions);
    onHttpRequest(req: IncomingMessage, res: ServerResponse, opts?: { action?: 'announce' | 'scrape'; trustProxy?: boolean }): void;
    close(cb?: () => void): void;
    torrents: Record<string, { peers: { length: number } } | undefined>;
  }
  export default Server;
}

declare module 'bittorrent-tracker/client' {
  import type { EventEmitter } from 'node:events';
  interface TrackerClientOptions {
    infoHash: string | Uint8Array;
    peerId: string | Uint8Array;
    announce: string[];
    port: number;
    getAnnounceOpts?: () => Record<string, number | string>;
  }
  class Client extends EventEmitter {
    constructor(opts: TrackerClientOptions);
    start(opts?: Record<string, unknown>): void;
    update(opts?: Record<string, unknown>): void;
    complete(opts?: Record<string, unknown>): void;
    stop(opts?: Record<string, unknown>): void;
    destroy(cb?: () => void): void;
    setInterval(ms: number): void;
  }
  export default Client;
}
