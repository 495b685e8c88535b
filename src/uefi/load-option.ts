// EFI_LOAD_OPTION, the value of a Boot#### variable (UEFI 2.10, 3.1.3), and the few device path
// nodes booty writes or has to recognise (10.3). Pure: bytes in, bytes out.
//
//   UINT32 Attributes | UINT16 FilePathListLength | CHAR16 Description[] (NUL-terminated UCS-2)
//   | EFI_DEVICE_PATH_PROTOCOL FilePathList[FilePathListLength bytes] | UINT8 OptionalData[]
//
// A device path node is Type, SubType, UINT16 Length (of the whole node), then its data; a path
// ends with the End Entire node (7F FF 04 00). booty writes HD(...)/File(...)/End, the short form
// firmware expands to the disk holding the partition with that GPT unique GUID (what efibootmgr
// and grub-install write too).

export const LOAD_OPTION_ACTIVE = 0x00000001;

/** Device path types and subtypes booty reads or writes. */
export const DP = {
  hardware: 0x01, acpi: 0x02, messaging: 0x03, media: 0x04, bbs: 0x05, end: 0x7f,
  mediaHardDrive: 0x01, mediaFilePath: 0x04,
  msgMac: 0x0b, msgIpv4: 0x0c, msgIpv6: 0x0d, msgUri: 0x18,
  endEntire: 0xff,
} as const;

export interface DevicePathNode {
  type: number;
  subType: number;
  /** the node's data after its 4-byte header */
  data: Buffer;
}

/** HD(): a GPT partition, by number, start and size in logical blocks, and unique partition GUID. */
export interface HardDriveNode {
  partitionNumber: number;
  startLba: bigint;
  sizeLba: bigint;
  /** the partition's unique GUID, as text (8-4-4-4-12, any case) */
  partitionGuid: string;
}

export interface LoadOption {
  attributes: number;
  description: string;
  filePath: DevicePathNode[];
  optionalData: Buffer;
}

/** A GUID in text form to its 16 bytes as UEFI stores them (first three fields little-endian). */
export function guidBytes(text: string): Buffer {
  const m = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i.exec(text);
  if (m === null) throw new Error(`not a GUID: "${text}"`);
  const le = (h: string) => Buffer.from(h, 'hex').reverse();
  return Buffer.concat([le(m[1]), le(m[2]), le(m[3]), Buffer.from(m[4] + m[5], 'hex')]);
}

/** 16 stored bytes to the GUID's text, upper case (efibootmgr prints lower case: compare ignoring case). */
export function guidText(b: Buffer): string {
  if (b.length !== 16) throw new Error(`a GUID is 16 bytes, not ${b.length}`);
  const le = (s: Buffer) => Buffer.from(s).reverse().toString('hex');
  const h = (s: Buffer) => s.toString('hex');
  return [le(b.subarray(0, 4)), le(b.subarray(4, 6)), le(b.subarray(6, 8)), h(b.subarray(8, 10)), h(b.subarray(10, 16))].join('-').toUpperCase();
}

function ucs2z(s: string): Buffer {
  for (const ch of s) {
    if (ch.codePointAt(0)! > 0xffff) throw new Error(`"${s}" has a character outside UCS-2`);
  }
  return Buffer.concat([Buffer.from(s, 'utf16le'), Buffer.alloc(2)]);
}

export function hardDriveNode(hd: HardDriveNode): DevicePathNode {
  const d = Buffer.alloc(38);
  d.writeUInt32LE(hd.partitionNumber, 0);
  d.writeBigUInt64LE(hd.startLba, 4);
  d.writeBigUInt64LE(hd.sizeLba, 12);
  guidBytes(hd.partitionGuid).copy(d, 20);
  d[36] = 0x02; // MBRType: GUID partition table
  d[37] = 0x02; // SignatureType: GUID signature
  return { type: DP.media, subType: DP.mediaHardDrive, data: d };
}

/** File(path): a path on the partition's filesystem, backslash-separated from its root. */
export function filePathNode(path: string): DevicePathNode {
  if (!path.startsWith('\\')) throw new Error(`an EFI file path starts with a backslash: "${path}"`);
  return { type: DP.media, subType: DP.mediaFilePath, data: ucs2z(path) };
}

const endNode: DevicePathNode = { type: DP.end, subType: DP.endEntire, data: Buffer.alloc(0) };

export function encodeDevicePath(nodes: DevicePathNode[]): Buffer {
  const parts: Buffer[] = [];
  for (const n of [...nodes, endNode]) {
    const h = Buffer.alloc(4);
    h[0] = n.type;
    h[1] = n.subType;
    const len = 4 + n.data.length;
    if (len > 0xffff) throw new Error(`device path node too long (${len} bytes)`);
    h.writeUInt16LE(len, 2);
    parts.push(h, n.data);
  }
  return Buffer.concat(parts);
}

/** The nodes of a device path list, up to (not including) the first End Entire node. */
export function decodeDevicePath(b: Buffer): DevicePathNode[] {
  const nodes: DevicePathNode[] = [];
  let off = 0;
  while (off < b.length) {
    if (off + 4 > b.length) throw new Error(`device path: truncated node header at byte ${off}`);
    const type = b[off];
    const subType = b[off + 1];
    const len = b.readUInt16LE(off + 2);
    if (len < 4 || off + len > b.length) throw new Error(`device path: node at byte ${off} has length ${len}, ${b.length - off} bytes left`);
    if (type === DP.end && subType === DP.endEntire) return nodes;
    nodes.push({ type, subType, data: Buffer.from(b.subarray(off + 4, off + len)) });
    off += len;
  }
  throw new Error('device path: no End Entire node');
}

export function encodeLoadOption(o: LoadOption): Buffer {
  const path = encodeDevicePath(o.filePath);
  const head = Buffer.alloc(6);
  head.writeUInt32LE(o.attributes >>> 0, 0);
  head.writeUInt16LE(path.length, 4);
  return Buffer.concat([head, ucs2z(o.description), path, o.optionalData]);
}

export function decodeLoadOption(b: Buffer): LoadOption {
  if (b.length < 6) throw new Error(`load option: ${b.length} bytes, shorter than its header`);
  const attributes = b.readUInt32LE(0);
  const pathLen = b.readUInt16LE(4);
  let end = 6;
  while (end + 1 < b.length && b.readUInt16LE(end) !== 0) end += 2;
  if (end + 1 >= b.length) throw new Error('load option: the description has no terminating NUL');
  const description = b.toString('utf16le', 6, end);
  const pathStart = end + 2;
  if (pathStart + pathLen > b.length) throw new Error(`load option: FilePathListLength ${pathLen} runs past the end (${b.length - pathStart} bytes left)`);
  const filePath = decodeDevicePath(b.subarray(pathStart, pathStart + pathLen));
  return { attributes, description, filePath, optionalData: Buffer.from(b.subarray(pathStart + pathLen)) };
}

export function parseHardDrive(n: DevicePathNode): HardDriveNode | undefined {
  if (n.type !== DP.media || n.subType !== DP.mediaHardDrive || n.data.length < 38) return undefined;
  if (n.data[37] !== 0x02) return undefined; // an MBR signature, not a GPT partition GUID
  return {
    partitionNumber: n.data.readUInt32LE(0),
    startLba: n.data.readBigUInt64LE(4),
    sizeLba: n.data.readBigUInt64LE(12),
    partitionGuid: guidText(n.data.subarray(20, 36)),
  };
}

export function parseFilePath(n: DevicePathNode): string | undefined {
  if (n.type !== DP.media || n.subType !== DP.mediaFilePath) return undefined;
  const s = n.data.toString('utf16le');
  const nul = s.indexOf('\0');
  return nul < 0 ? s : s.slice(0, nul);
}

/** A network boot option: its path has a MAC, IPv4, IPv6 or URI node (PXE and HTTP boot). */
export function isNetworkOption(o: LoadOption): boolean {
  return o.filePath.some((n) => n.type === DP.messaging && [DP.msgMac, DP.msgIpv4, DP.msgIpv6, DP.msgUri].includes(n.subType as 0x0b));
}

/** The option's path as efibootmgr -v prints the nodes booty knows (others as their type/subtype). */
export function describePath(o: LoadOption): string {
  return o.filePath.map((n) => {
    const hd = parseHardDrive(n);
    if (hd !== undefined) return `HD(${hd.partitionNumber},GPT,${hd.partitionGuid.toLowerCase()},0x${hd.startLba.toString(16)},0x${hd.sizeLba.toString(16)})`;
    const f = parseFilePath(n);
    if (f !== undefined) return `File(${f})`;
    if (n.type === DP.messaging && n.subType === DP.msgMac) return `MAC(${n.data.subarray(0, 6).toString('hex')},${n.data[32] ?? 0})`;
    return `Path(${n.type},${n.subType})`;
  }).join('/');
}
