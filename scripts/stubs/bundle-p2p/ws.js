// ws in booty's bundle, for bittorrent-tracker's server: booty runs it with ws: false, so no
// WebSocket server is ever made (README.md here).
export class WebSocketServer {
  constructor () { throw new Error('booty: the tracker serves HTTP announces only (no WebSocket server in the bundle)') }
}
