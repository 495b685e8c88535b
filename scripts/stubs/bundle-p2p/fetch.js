// cross-fetch-ponyfill in booty's bundle: Node's own fetch (README.md here).
export default globalThis.fetch
