// bittorrent-tracker's WebSocket and UDP clients, left out of booty's bundle (README.md here).
import EventEmitter from 'events'
export default class UnusedTracker extends EventEmitter {
  constructor (client, announceUrl) {
    super()
    this.client = client
    this.announceUrl = announceUrl
    this.interval = null
    this.destroyed = false
    queueMicrotask(() => client.emit('warning', new Error(`booty announces over HTTP only, not to ${announceUrl}`)))
  }
  announce () {}
  scrape () {}
  setInterval () {}
  destroy (cb) { this.destroyed = true; if (cb) cb() }
}
