// Everything of peer to peer that needs the webtorrent family's modules, behind one door
// (load.ts): the agent's swarm source, the rack seed, and the server's metainfo builder and rack
// trackers. In a bundle this module is embedded as text and evaluated only when peer to peer is
// turned on (scripts/bundle.mjs), so a booty that never uses it does not even parse it.
export { SwarmSource, swarmsLingering } from './swarm-source.ts';
export { startRackSeed } from './rack-seed.ts';
export { MetainfoBuilder } from '../server/p2p/metainfo-builder.ts';
export { RackTracker } from '../server/p2p/rack-tracker.ts';
export { torrentFile } from './metainfo.ts';
export { useHttp } from './http-door.ts';
