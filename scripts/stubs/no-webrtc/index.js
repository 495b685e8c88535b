// booty's peer to peer is BitTorrent over TCP only; WebRTC peers are never made. These names exist
// because @thaunknown/simple-peer imports them at load time (bittorrent-tracker's client imports it
// for websocket trackers, which booty never announces to).
function refuse() {
  throw new Error('booty: WebRTC is not built in (webrtc-polyfill is stubbed: scripts/stubs/no-webrtc)');
}
export class RTCPeerConnection { constructor() { refuse(); } }
export class RTCSessionDescription { constructor() { refuse(); } }
export class RTCIceCandidate { constructor() { refuse(); } }
export default { RTCPeerConnection, RTCSessionDescription, RTCIceCandidate };
