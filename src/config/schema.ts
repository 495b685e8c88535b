// JSON schemas (ajv) for the three shapes an action file may have:
//   - booty's own form: {"action": "deploy" | "capture" | "wipe" | "shell" | "none", ...}
//   - BOOTy's form:     {"action": "writeImage" | "readImage", "sourceImage": ..., ...}
//   - the combined form that `booty server` serves: BOOTy's fields at the top level (so an
//     unmodified BOOTy agent can act on it) plus booty's full action under the key "booty".
// Every schema is closed (additionalProperties: false): a typo such as "sourceImages" is refused
// with the field named instead of being silently ignored. Each leaf carries a `description`
// that becomes the "must be ..." part of the error message an operator reads.

import { inventorySchema } from './inventory-schema.ts';
import { CAPTURE_FORMATS } from './action.ts';
import { MAX_DEV_PATH_LENGTH, MAX_URL_LENGTH } from './formats.ts';
import { compileSchema, type Validator } from './schema-compile.ts';

// the string formats the schemas name, defined in formats.ts (the one place the generated
// validators of the bundle and ajv at run time both take them from)
export { MAX_URL_LENGTH, MAX_DEV_PATH_LENGTH, isHttpUrl, isDevPath, isAbsPath, isCidr, isHostname } from './formats.ts';

const str = (format: string, description: string, maxLength = MAX_URL_LENGTH) =>
  ({ type: 'string', format, maxLength, description });

const url = str('http-url', 'an absolute http:// or https:// URL');
const imageUrl = str('image-url', 'an absolute http:// or https:// URL, or oci://registry/repository:tag');
const dev = str('dev-path', 'an absolute /dev path (e.g. /dev/sda)', MAX_DEV_PATH_LENGTH);
const ip = str('ip', 'an IPv4 or IPv6 address', 64);
const cidr = str('cidr', 'an address in CIDR form (e.g. 172.16.1.126/24)', 64);
const bool = { type: 'boolean', description: 'true or false' };
const afterEnum = { enum: ['reboot', 'poweroff', 'shell'], description: 'one of "reboot", "poweroff", "shell"' };

const common = {
  after: afterEnum,
  onError: afterEnum,
  wipeOnError: bool,
  dryRun: bool,
};

const grow = {
  type: ['boolean', 'object'],
  description: 'false, true or {"partition": N | "last", "lvmRoot": "/dev/..."}',
  properties: {
    partition: {
      anyOf: [{ type: 'integer', minimum: 1, maximum: 128 }, { const: 'last' }],
      description: 'a partition number (1-128) or "last"',
    },
    lvmRoot: dev,
  },
  required: ['partition'],
  additionalProperties: false,
};

const post = {
  type: 'object',
  description: 'an object {"hostname", "network", "files"}',
  properties: {
    hostname: str('hostname', 'a hostname (letters, digits, "-" and ".")', 253),
    network: {
      type: 'object',
      description: 'an object {"address", "gateway", "nameservers", "interface"}',
      properties: {
        address: cidr,
        gateway: ip,
        nameservers: { type: 'array', items: ip, maxItems: 8, description: 'a list of up to 8 IP addresses' },
        interface: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,15}$', description: 'an interface name (1-15 characters)' },
      },
      additionalProperties: false,
    },
    files: {
      type: 'object',
      description: 'an object mapping absolute paths to file contents',
      additionalProperties: { type: 'string', maxLength: 1 << 20, description: 'a string of at most 1 MiB' },
      maxProperties: 256,
    },
  },
  additionalProperties: false,
};

// Disk hints (action.ts DiskHints): closed, so a misspelt hint ("serail") is refused by name
// instead of silently matching every disk.
const hintText = (description: string, max = 256) =>
  ({ type: 'string', minLength: 1, maxLength: max, pattern: '^(?=.*\\S)[^\\u0000-\\u001f\\u007f]+$', description });
const size = {
  anyOf: [
    { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
    { type: 'string', format: 'disk-size', maxLength: 32 },
  ],
  description: 'a size: bytes, or a number with a unit ("100G" or "100GiB" = 100 x 2^30, "100GB" = 100 x 10^9)',
};
export const DISK_HINT_NAMES = ['name', 'minSize', 'maxSize', 'serial', 'model', 'vendor', 'wwn', 'rotational', 'hctl', 'byPath', 'transport'] as const;
const diskHints = {
  type: 'object',
  description: `an object with at least one disk hint (${DISK_HINT_NAMES.join(', ')})`,
  properties: {
    name: { type: 'string', pattern: '^(/dev/)?[A-Za-z0-9._+:@!-]{1,64}$', description: 'a kernel disk name (e.g. sda or /dev/nvme0n1)' },
    minSize: size,
    maxSize: size,
    serial: hintText('a serial number (1-256 characters, no control characters)'),
    model: hintText('a model name or part of it (1-256 characters)'),
    vendor: hintText('a vendor name or part of it (1-256 characters)'),
    wwn: hintText('a World Wide Name (e.g. 0x5000c500a1b2c3d4)'),
    rotational: { type: 'boolean', description: 'true (spinning disks) or false (SSD/NVMe)' },
    hctl: { type: 'string', pattern: '^[0-9]{1,9}:[0-9]{1,9}:[0-9]{1,9}:[0-9]{1,9}$', description: 'a SCSI address host:channel:target:lun (e.g. 0:0:0:0)' },
    byPath: { type: 'string', maxLength: MAX_DEV_PATH_LENGTH, pattern: '^(/dev/disk/by-path/)?[A-Za-z0-9._:+@-]+$', description: 'a /dev/disk/by-path name (e.g. pci-0000:00:1f.2-ata-1.0)' },
    transport: { enum: ['nvme', 'sata', 'scsi', 'virtio', 'usb', 'mmc'], description: 'one of "nvme", "sata", "scsi", "virtio", "usb", "mmc"' },
  },
  minProperties: 1,
  additionalProperties: false,
};

const deploy = {
  type: 'object',
  properties: {
    action: { const: 'deploy' },
    ...common,
    image: imageUrl,
    registryAuth: {
      type: 'object', properties: { username: { type: 'string', minLength: 1, maxLength: 256 }, password: { type: 'string', maxLength: 4096 } },
      required: ['username', 'password'], additionalProperties: false, description: 'an object {"username": ..., "password": ...}',
    },
    disk: dev,
    diskHints,
    sha256: { type: 'string', pattern: '^[0-9a-fA-F]{64}$', description: 'a sha256 in hex (64 characters)' },
    format: { enum: ['auto', 'gzip', 'zstd', 'xz', 'bzip2', 'qcow2', 'raw'], description: 'one of "auto", "gzip", "zstd", "xz", "bzip2", "qcow2", "raw"' },
    imageSize: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'a size in bytes (a non-negative integer)' },
    restartOnChange: bool,
    requireChecksum: bool,
    gzipIndex: { anyOf: [{ const: false }, url], description: 'false, or the URL of the image\'s gzip index' },
    stallTimeout: { type: 'number', exclusiveMinimum: 0, maximum: 3600, description: 'seconds (a number above 0, at most 3600)' },
    retryFor: { type: 'number', minimum: 0, maximum: 604800, description: 'seconds (a number from 0 to 604800)' },
    p2p: {
      type: 'object', additionalProperties: false, description: 'an object {"rack"?, "metainfo"?, "stallTimeout"?, "windowMiB"?, "cacheMiB"?}',
      properties: {
        rack: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description: 'a rack name: 1-64 of A-Z a-z 0-9 . _ - ("auto": the machine\'s subnet)' },
        metainfo: url,
        stallTimeout: { type: 'number', exclusiveMinimum: 0, maximum: 3600, description: 'seconds (a number above 0, at most 3600)' },
        windowMiB: { type: 'integer', minimum: 4, maximum: 1024, description: 'MiB (an integer from 4 to 1024)' },
        cacheMiB: { type: 'integer', minimum: 0, maximum: 4096, description: 'MiB (an integer from 0 to 4096)' },
      },
    },
    bootOrder: { enum: ['network-first', 'disk-first', 'trial'], description: 'one of "network-first", "disk-first", "trial"' },
    confirmWithin: { type: 'integer', minimum: 10, maximum: 86400, description: 'seconds (an integer from 10 to 86400)' },
    onTrialFailure: { enum: ['redeploy', 'capture', 'shell'], description: 'one of "redeploy", "capture", "shell"' },
    trialCaptureUpload: url,
    grow,
    post,
  },
  required: ['action', 'image'],
  additionalProperties: false,
};

// A rootfs deploy's layout (rootfs-layout.ts checks the rules across fields).
const layout = {
  type: 'object',
  description: 'an object {"table", "partitions"}',
  properties: {
    table: { enum: ['gpt', 'msdos'], description: 'one of "gpt", "msdos"' },
    partitions: {
      type: 'array', minItems: 1, maxItems: 16, description: 'a list of 1-16 partitions',
      items: {
        type: 'object',
        description: 'an object {"size", "fs", "mountpoint", "label", "type"}',
        properties: {
          size: { anyOf: [{ const: 'rest' }, { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER }, { type: 'string', format: 'disk-size', maxLength: 32 }],
            description: 'a size ("512MiB", "20GiB", bytes) or "rest"' },
          fs: { enum: ['ext4', 'xfs', 'vfat', 'swap'], description: 'one of "ext4", "xfs", "vfat", "swap"' },
          mountpoint: str('mountpoint', 'an absolute path without "." or ".." segments (e.g. /boot/efi)', 1024),
          label: { type: 'string', minLength: 1, maxLength: 16, pattern: '^[A-Za-z0-9._-]+$', description: 'a label of letters, digits, ".", "_" and "-"' },
          type: { enum: ['bios-boot', 'esp', 'linux', 'swap'], description: 'one of "bios-boot", "esp", "linux", "swap"' },
        },
        required: ['size'],
        additionalProperties: false,
      },
    },
  },
  required: ['partitions'],
  additionalProperties: false,
};

const deployRootfs = {
  type: 'object',
  properties: {
    action: { const: 'deploy-rootfs' },
    ...common,
    rootfs: url,
    disk: dev,
    diskHints,
    sha256: { type: 'string', pattern: '^[0-9a-fA-F]{64}$', description: 'a sha256 in hex (64 characters)' },
    layout,
    bootloader: { enum: ['grub-bios', 'grub-efi', 'both', 'none'], description: 'one of "grub-bios", "grub-efi", "both", "none"' },
    fstab: { enum: ['generate', 'keep'], description: 'one of "generate", "keep"' },
    bootOrder: { enum: ['network-first', 'disk-first'], description: 'one of "network-first", "disk-first"' },
    stallTimeout: { type: 'number', exclusiveMinimum: 0, maximum: 3600, description: 'seconds (a number above 0, at most 3600)' },
    retryFor: { type: 'number', minimum: 0, maximum: 604800, description: 'seconds (a number from 0 to 604800)' },
    post,
  },
  required: ['action', 'rootfs'],
  additionalProperties: false,
};

const capture = {
  type: 'object',
  properties: {
    action: { const: 'capture' },
    ...common,
    disk: dev,
    diskHints,
    upload: url,
    format: { enum: [...CAPTURE_FORMATS], description: `one of ${CAPTURE_FORMATS.map((f) => `"${f}"`).join(', ')}` },
    level: { type: 'integer', minimum: 1, maximum: 19, description: 'a compression level (gzip 1-9, zstd 1-19)' },
    protocol: { enum: ['put', 'multipart'], description: 'one of "put", "multipart"' },
  },
  required: ['action', 'upload'],
  additionalProperties: false,
};

const wipe = {
  type: 'object',
  properties: {
    action: { const: 'wipe' }, ...common, disk: dev, diskHints,
    method: { enum: ['quick', 'discard', 'zero', 'secure'], description: 'one of "quick", "discard", "zero", "secure"' },
    fallback: { enum: ['zero', 'none'], description: 'one of "zero", "none"' },
  },
  required: ['action'],
  additionalProperties: false,
};

const shellOrNone = (name: string) => ({
  type: 'object',
  properties: { action: { const: name }, ...common, ...(name === 'inspect' ? { pollSeconds: { type: 'number', minimum: 1, maximum: 3600, description: 'seconds (1 to 3600)' } } : {}) },
  required: ['action'],
  additionalProperties: false,
});

// BOOTy's fields (see README "BOOTy compatibility"). `destinationAddress` (correct spelling) is
// accepted as an alias of BOOTy's real wire name `desintationAddress`.
const bootyLegacyFields = {
  compressed: bool,
  sourceImage: url,
  destinationDevice: dev,
  sourceDevice: dev,
  desintationAddress: url,
  destinationAddress: url,
  growPartition: { type: 'integer', minimum: 0, maximum: 128, description: 'a partition number (0 = do not grow, 1-128)' },
  lvmRootName: dev,
  growDisk: bool,
  address: cidr,
  gateway: ip,
  nameserver: ip,
  dryRun: bool,
  dropToShell: bool,
  wipeDevice: bool,
};

const writeImage = {
  type: 'object',
  properties: { action: { const: 'writeImage' }, ...bootyLegacyFields },
  required: ['action', 'sourceImage'],
  additionalProperties: false,
};

const readImage = {
  type: 'object',
  properties: { action: { const: 'readImage' }, ...bootyLegacyFields },
  required: ['action', 'desintationAddress'],
  additionalProperties: false,
};

// The combined form's top level: BOOTy's fields with any action name (booty's own actions have no
// BOOTy equivalent, so an old agent sees an action it does not know), plus the "booty" object,
// which is validated on its own as booty's form.
const combined = {
  type: 'object',
  properties: {
    action: { type: 'string', maxLength: 64, description: 'a string' },
    ...bootyLegacyFields,
    booty: { type: 'object', description: "an object holding booty's form of the action" },
  },
  required: ['booty'],
  additionalProperties: false,
};

// Agent events (src/config/report.ts), checked by the server before they are stored.
const time = { type: 'string', maxLength: 64, description: 'an ISO 8601 time string' };
const phase = {
  enum: ['booting', 'modules', 'network', 'dhcp', 'fetching-action', 'preflight', 'writing', 'verifying',
    'growing', 'configuring', 'capturing', 'uploading', 'rebooting', 'powering-off', 'shell', 'done', 'failed', 'inspecting'],
  description: 'a known phase (booting, dhcp, writing, done, failed, ...)',
};
const count = { type: 'number', minimum: 0, description: 'a non-negative number' };
const text = (max: number) => ({ type: 'string', maxLength: max, description: `a string of at most ${max} characters` });
const agentEvent = {
  type: 'object',
  properties: { type: { enum: ['phase', 'progress', 'log', 'result'], description: 'one of "phase", "progress", "log", "result"' } },
  required: ['type'],
  allOf: [
    {
      if: { properties: { type: { const: 'phase' } } },
      then: { properties: { type: {}, time, phase, detail: text(4096) }, required: ['time', 'phase'], additionalProperties: false },
    },
    {
      if: { properties: { type: { const: 'progress' } } },
      then: {
        properties: { type: {}, time, phase, bytes: count, total: count, wireBytes: count, rate: count, etaSeconds: count, resumes: count, restarts: count },
        required: ['time', 'phase', 'bytes', 'rate'], additionalProperties: false,
      },
    },
    {
      if: { properties: { type: { const: 'log' } } },
      then: {
        properties: {
          type: {}, time,
          level: { enum: ['debug', 'info', 'warn', 'error'], description: 'one of "debug", "info", "warn", "error"' },
          message: text(16384),
        },
        required: ['time', 'level', 'message'], additionalProperties: false,
      },
    },
    {
      if: { properties: { type: { const: 'result' } } },
      then: {
        properties: {
          type: {}, time, ok: bool, action: text(64), code: text(128), message: text(16384), diskState: text(64),
          bytes: count, seconds: count, sha256: text(64), resumes: count, restarts: count, warning: text(1024),
          method: text(1024), verification: text(4096), verified: bool,
        },
        required: ['time', 'ok', 'action'], additionalProperties: false,
      },
    },
  ],
};

export const schemas = {
  deploy,
  'deploy-rootfs': deployRootfs,
  capture,
  wipe,
  shell: shellOrNone('shell'),
  none: shellOrNone('none'),
  inspect: shellOrNone('inspect'),
  inventory: inventorySchema,
  writeImage,
  readImage,
  combined,
  agentEvent,
};

// Each validator is made on first use, not at import. From the sources, ajv compiles it then
// (generated code, seconds under QEMU's TCG); in the bundle, schema-compile.ts is replaced by
// the validators ajv generated from these same schemas at build time (scripts/bundle.mjs,
// src/build/schema-standalone.ts), so the agent neither loads ajv nor compiles anything.
const compiled: Partial<Record<keyof typeof schemas, Validator>> = {};
export const validators = Object.defineProperties({}, Object.fromEntries(Object.keys(schemas).map((name) => [name, {
  enumerable: true,
  get: () => (compiled[name as keyof typeof schemas] ??= compileSchema(name, schemas[name as keyof typeof schemas])),
}]))) as Record<keyof typeof schemas, Validator>;

export type ValidatorName = keyof typeof validators;
export type SchemaError = NonNullable<(typeof validators)['deploy']['errors']>[number];
