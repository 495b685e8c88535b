// A peer's bytes on their way into bittorrent-protocol's Wire, which waits for as many bytes as
// a message's length prefix announces: a peer announcing a 4 GiB message would make it buffer
// without end. This pass-through reads the peer wire framing (the 68-byte handshake, then
// <4-byte length><message>) and ends the connection at a message longer than `maxMessage`
// (booty's peers send blocks of 64 KiB; a bitfield of the largest image fits easily).
import { Transform, type TransformCallback } from 'node:stream';

const HANDSHAKE_BYTES = 68;
export const MAX_MESSAGE_BYTES = 1024 * 1024;

export class MessageGuard extends Transform {
  private handshakeLeft = HANDSHAKE_BYTES;
  private bodyLeft = 0;
  private readonly header = Buffer.alloc(4);
  private headerHave = 0;
  private readonly max: number;

  constructor(max = MAX_MESSAGE_BYTES) {
    super();
    this.max = max;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.handshakeLeft > 0) {
        const n = Math.min(this.handshakeLeft, chunk.length - i);
        this.handshakeLeft -= n; i += n;
      } else if (this.bodyLeft > 0) {
        const n = Math.min(this.bodyLeft, chunk.length - i);
        this.bodyLeft -= n; i += n;
      } else {
        this.header[this.headerHave++] = chunk[i++];
        if (this.headerHave < 4) continue;
        this.headerHave = 0;
        const length = this.header.readUInt32BE(0);
        if (length > this.max) { cb(new Error(`a peer announced a message of ${length} bytes (at most ${this.max})`)); return; }
        this.bodyLeft = length;
      }
    }
    cb(null, chunk);
  }
}
