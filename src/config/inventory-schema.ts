// JSON schema (ajv) of MachineInventory (inventory.ts): what the server accepts on
// POST /api/machines/<mac>/inventory. Closed like every booty schema; strings are bounded so one
// agent cannot fill the database.
import { INVENTORY_VERSION } from './inventory.ts';

const text = (max: number) => ({ type: 'string', maxLength: max, description: `a string of at most ${max} characters` });
const count = (max = Number.MAX_SAFE_INTEGER) => ({ type: 'integer', minimum: 0, maximum: max, description: `an integer from 0 to ${max}` });
const bool = { type: 'boolean', description: 'true or false' };
const sectorSize = { enum: [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536], description: 'a sector size (512 ... 65536)' };

const disk = {
  type: 'object',
  description: 'a disk {name, sizeBytes, logicalSectorSize, physicalSectorSize, transport, ...}',
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9._+:@!-]{1,64}$', description: 'a kernel disk name' },
    sizeBytes: count(),
    logicalSectorSize: sectorSize,
    physicalSectorSize: sectorSize,
    transport: { enum: ['nvme', 'sata', 'scsi', 'virtio', 'usb', 'mmc', 'unknown'], description: 'one of nvme, sata, scsi, virtio, usb, mmc, unknown' },
    rotational: bool,
    removable: bool,
    readOnly: bool,
    model: text(256), vendor: text(256), serial: text(256), wwn: text(256),
  },
  required: ['name', 'sizeBytes', 'logicalSectorSize', 'physicalSectorSize', 'transport', 'removable', 'readOnly'],
  additionalProperties: false,
};

const lldp = {
  type: 'object',
  description: 'an LLDP neighbour {sourceMac, chassisId, chassisIdSubtype, portId, portIdSubtype, ttl, ...}',
  properties: {
    sourceMac: { type: 'string', pattern: '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$', description: 'a MAC address (aa:bb:cc:dd:ee:ff)' },
    chassisId: text(512), chassisIdSubtype: text(32), portId: text(512), portIdSubtype: text(32),
    ttl: count(65535),
    portDescription: text(512), systemName: text(512), systemDescription: text(512),
    managementAddresses: { type: 'array', items: text(512), maxItems: 16, description: 'a list of at most 16 addresses' },
    vlan: count(4095),
    vlans: {
      type: 'array', maxItems: 256, description: 'a list of at most 256 VLANs {id, name}',
      items: { type: 'object', description: 'a VLAN {id, name}', properties: { id: count(4095), name: text(32) }, required: ['id', 'name'], additionalProperties: false },
    },
  },
  required: ['sourceMac', 'chassisId', 'chassisIdSubtype', 'portId', 'portIdSubtype', 'ttl'],
  additionalProperties: false,
};

const nic = {
  type: 'object',
  description: 'a NIC {name, mac, driver, speedMbps, link, lldp}',
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9_.:@-]{1,15}$', description: 'an interface name' },
    mac: { type: 'string', pattern: '^[0-9a-f]{2}(:[0-9a-f]{2}){5,19}$', description: 'a MAC address (aa:bb:cc:dd:ee:ff)' },
    driver: text(64),
    speedMbps: count(10_000_000),
    link: bool,
    lldp,
  },
  required: ['name', 'mac', 'link'],
  additionalProperties: false,
};

const dmiKeys = ['vendor', 'product', 'version', 'serial', 'uuid', 'boardVendor', 'boardProduct', 'boardSerial', 'biosVendor', 'biosVersion', 'biosDate'];

export const inventorySchema = {
  type: 'object',
  properties: {
    version: { const: INVENTORY_VERSION, description: `${INVENTORY_VERSION} (the inventory format this server knows)` },
    collected: text(64),
    system: {
      type: 'object', description: 'an object of DMI strings',
      properties: Object.fromEntries(dmiKeys.map((k) => [k, text(256)])),
      additionalProperties: false,
    },
    firmware: {
      type: 'object', description: 'an object {mode, secureBoot}',
      properties: { mode: { enum: ['uefi', 'bios'], description: 'uefi or bios' }, secureBoot: bool },
      required: ['mode'], additionalProperties: false,
    },
    cpu: {
      type: 'object', description: 'an object {model, threads, sockets, cores}',
      properties: { model: text(256), threads: count(1 << 20), sockets: count(1024), cores: count(1 << 20) },
      required: ['threads'], additionalProperties: false,
    },
    memory: {
      type: 'object', description: 'an object {totalBytes}',
      properties: { totalBytes: count() }, required: ['totalBytes'], additionalProperties: false,
    },
    disks: { type: 'array', items: disk, maxItems: 1024, description: 'a list of at most 1024 disks' },
    nics: { type: 'array', items: nic, maxItems: 256, description: 'a list of at most 256 NICs' },
  },
  required: ['version', 'collected', 'system', 'firmware', 'cpu', 'memory', 'disks', 'nics'],
  additionalProperties: false,
};
