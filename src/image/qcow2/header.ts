// The qcow2 header (versions 2 and 3, QEMU's docs/interop/qcow2.txt) and its extensions, read from
// the image's first bytes, and every reason booty refuses an image before the first write that
// the header alone can tell: a backing file (the image holds only changes to another file),
// encryption, an external data file, extended L2 entries (subclusters), incompatible feature bits
// it does not know, a damaged or "corrupt"-flagged header. Internal snapshots never change what the
// image is: the active L1 table is the disk (what `qemu-img convert -O raw` writes), so they are
// only counted for the log.

export const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"

/** Incompatible feature bits (header offset 72). */
const INCOMPAT_DIRTY = 1n << 0n;
const INCOMPAT_CORRUPT = 1n << 1n;
const INCOMPAT_DATA_FILE = 1n << 2n;
const INCOMPAT_COMPRESSION = 1n << 3n;
const INCOMPAT_EXTL2 = 1n << 4n;
const INCOMPAT_KNOWN = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;

const EXT_END = 0;
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_CRYPTO = 0x0537be77;
const EXT_DATA_FILE = 0x44415441;

export interface Qcow2Header {
  version: 2 | 3;
  clusterBits: number;
  clusterSize: number;
  /** guest disk size in bytes */
  virtualSize: number;
  l1Size: number;
  l1Offset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  snapshots: number;
  /** the image was not closed cleanly (lazy refcounts): refcounts may be stale; L1/L2 are not */
  dirty: boolean;
  compression: 'deflate' | 'zstd';
  headerLength: number;
}

/** Why an image cannot be deployed, as "the image is <what>, <why>" with the operator's next step. */
export class Qcow2Refused extends Error {
  readonly code: string;
  readonly advice: string;
  constructor(code: string, message: string, advice: string) {
    super(message);
    this.name = 'Qcow2Refused';
    this.code = code;
    this.advice = advice;
  }
}

const SERVE = 'or serve a raw, gzip or zstd image';
const convertAdvice = `convert it on the server: qemu-img convert -O qcow2 IMAGE.qcow2 PLAIN.qcow2 (or -O raw IMAGE.raw), ${SERVE}`;

/** The qcow2 version the head announces (2 or 3), or undefined when it is no qcow2 booty decodes. */
export function qcow2Version(head: Uint8Array): 2 | 3 | undefined {
  if (head.length < 8) return undefined;
  const h = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  if (h.readUInt32BE(0) !== QCOW2_MAGIC) return undefined;
  const v = h.readUInt32BE(4);
  return v === 2 || v === 3 ? v : undefined;
}

function u64(h: Buffer, at: number, what: string): number {
  const v = h.readBigUInt64BE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Qcow2Refused('QCOW2_BAD_HEADER', `the qcow2 header's ${what} (${v}) is beyond 2^53: a damaged header`, convertAdvice);
  return Number(v);
}

/**
 * Parses the header at the start of `head` (the first bytes of the file; HEAD_BYTES is plenty: the
 * header and its extensions sit in the first cluster, and every qemu-written image keeps them in
 * its first few KiB). Throws Qcow2Refused for anything booty will not deploy.
 */
export function parseQcow2Header(head: Buffer, fileSize: number | undefined): Qcow2Header {
  const bad = (why: string) => new Qcow2Refused('QCOW2_BAD_HEADER', `the qcow2 header is damaged: ${why}`, `the image file on the server is damaged: check it there (qemu-img check IMAGE.qcow2), recreate or re-upload it`);
  if (head.length < 72) throw bad(`the file is only ${head.length} bytes long`);
  const version = qcow2Version(head);
  if (version === undefined) throw bad(`version ${head.readUInt32BE(4)} (booty reads qcow2 versions 2 and 3)`);
  const backingOffset = u64(head, 8, 'backing file offset');
  const backingSize = head.readUInt32BE(16);
  const clusterBits = head.readUInt32BE(20);
  const virtualSize = u64(head, 24, 'virtual size');
  const crypt = head.readUInt32BE(32);
  const l1Size = head.readUInt32BE(36);
  const l1Offset = u64(head, 40, 'L1 table offset');
  const refcountTableOffset = u64(head, 48, 'refcount table offset');
  const refcountTableClusters = head.readUInt32BE(56);
  const snapshots = head.readUInt32BE(60);
  let incompat = 0n;
  let headerLength = 72;
  let compression: Qcow2Header['compression'] = 'deflate';
  if (version === 3) {
    if (head.length < 104) throw bad('a version 3 header shorter than 104 bytes');
    incompat = head.readBigUInt64BE(72);
    headerLength = head.readUInt32BE(100);
    if (headerLength < 104 || headerLength > head.length) throw bad(`header length ${headerLength}`);
    if ((incompat & INCOMPAT_COMPRESSION) !== 0n) {
      if (headerLength <= 104) throw bad('the compression type bit is set but the header has no compression type field');
      const t = head[104];
      if (t === 1) compression = 'zstd';
      else if (t !== 0) throw new Qcow2Refused('QCOW2_UNSUPPORTED', `the image is a qcow2 disk image with compression type ${t}, which booty does not decode (it knows 0, deflate, and 1, zstd)`, convertAdvice);
    }
  }
  if (clusterBits < 9 || clusterBits > 21) throw bad(`cluster_bits ${clusterBits} (9 to 21 are valid)`);
  const clusterSize = 2 ** clusterBits;

  // what the image needs besides itself, or what keeps its data unreadable here
  let backingName = '';
  if (backingOffset !== 0) {
    if (backingSize <= 1023 && backingOffset + backingSize <= head.length) backingName = ` "${head.subarray(backingOffset, backingOffset + backingSize).toString('utf8')}"`;
    throw new Qcow2Refused('QCOW2_BACKING_FILE', `the image is a qcow2 (version ${version}) disk image with a backing file${backingName} (it holds only the changes to that file)`,
      `convert it on the server with its backing chain present (qemu-img convert -O raw IMAGE.qcow2 IMAGE.raw reads the chain into one raw image, or -O qcow2 into a standalone qcow2), ${SERVE}`);
  }
  if (crypt !== 0) {
    throw new Qcow2Refused('QCOW2_ENCRYPTED', `the image is an encrypted qcow2 (version ${version}, ${crypt === 1 ? 'AES' : crypt === 2 ? 'LUKS' : `method ${crypt}`}) disk image, which booty does not decrypt (it has no key)`,
      `decrypt it on the server (qemu-img convert --object secret,id=s,file=KEYFILE --image-opts driver=qcow2,file.filename=IMAGE.qcow2,encrypt.key-secret=s -O qcow2 PLAIN.qcow2), ${SERVE}`);
  }
  if ((incompat & INCOMPAT_DATA_FILE) !== 0n) {
    throw new Qcow2Refused('QCOW2_DATA_FILE', `the image is a qcow2 disk image with an external data file (its clusters live in another file, named in its header)`,
      `convert it on the server where the data file is: qemu-img convert -O qcow2 IMAGE.qcow2 STANDALONE.qcow2 (or -O raw), ${SERVE}`);
  }
  if ((incompat & INCOMPAT_CORRUPT) !== 0n) {
    throw new Qcow2Refused('QCOW2_CORRUPT', 'the image is a qcow2 disk image that QEMU marked corrupt (incompatible feature bit 1): its tables are known to be inconsistent',
      `repair it on the server (qemu-img check -r all IMAGE.qcow2), then serve it again, ${SERVE}`);
  }
  if ((incompat & INCOMPAT_EXTL2) !== 0n) {
    throw new Qcow2Refused('QCOW2_UNSUPPORTED', 'the image is a qcow2 disk image with extended L2 entries (subclusters, extended_l2=on), which booty does not decode', convertAdvice);
  }
  const unknown = incompat & ~INCOMPAT_KNOWN;
  if (unknown !== 0n) {
    throw new Qcow2Refused('QCOW2_UNSUPPORTED', `the image is a qcow2 disk image with incompatible feature bits booty does not know (0x${unknown.toString(16)}): reading it without them would misread it`, convertAdvice);
  }

  // header extensions: the same refusals when only an extension says so
  let at = Math.ceil(headerLength / 8) * 8;
  for (;;) {
    if (at + 8 > Math.min(head.length, clusterSize)) throw bad('its header extensions run past the first cluster (no end marker)');
    const type = head.readUInt32BE(at);
    const len = head.readUInt32BE(at + 4);
    if (type === EXT_END) break;
    if (type === EXT_CRYPTO) throw new Qcow2Refused('QCOW2_ENCRYPTED', `the image is an encrypted qcow2 disk image (it carries a full-disk encryption header), which booty does not decrypt`, convertAdvice);
    if (type === EXT_DATA_FILE) throw new Qcow2Refused('QCOW2_DATA_FILE', 'the image is a qcow2 disk image that names an external data file', convertAdvice);
    if (type === EXT_BACKING_FORMAT && backingOffset === 0) { /* harmless leftover */ }
    at += 8 + Math.ceil(len / 8) * 8;
  }

  // the tables must be where a table can be
  if (virtualSize === 0) throw bad('virtual size 0');
  const clusters = Math.ceil(virtualSize / clusterSize);
  const l2Entries = clusterSize / 8;
  if (l1Size < Math.ceil(clusters / l2Entries)) throw bad(`its L1 table has ${l1Size} entries, too few for a ${virtualSize}-byte disk`);
  if (l1Offset % clusterSize !== 0 || l1Offset < clusterSize) throw bad(`L1 table offset ${l1Offset} is not a cluster boundary after the header`);
  if (fileSize !== undefined && l1Offset + l1Size * 8 > fileSize) throw bad(`its L1 table (${l1Size} entries at ${l1Offset}) ends past the end of the file (${fileSize} bytes)`);
  if (refcountTableOffset % clusterSize !== 0) throw bad(`refcount table offset ${refcountTableOffset} is not a cluster boundary`);
  return {
    version, clusterBits, clusterSize, virtualSize, l1Size, l1Offset, refcountTableOffset, refcountTableClusters, snapshots,
    dirty: (incompat & INCOMPAT_DIRTY) !== 0n, compression, headerLength,
  };
}
