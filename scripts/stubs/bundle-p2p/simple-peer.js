// WebRTC peers, left out of booty's bundle (README.md here).
export default class Peer { static WEBRTC_SUPPORT = false }
