// Names the server accepts from the network: MAC addresses (any case, any of BOOTy's or common
// separators) and image names (one path segment, nothing hidden, nothing that climbs out of the
// images directory). Pure functions, unit-tested.

// temp files are `.<name>.upload-<id>`: 1 + 180 + 8 + 40 stays under NAME_MAX (255)
export const MAX_IMAGE_NAME = 180;

/**
 * `AA:BB:CC:DD:EE:FF`, `aa-bb-cc-dd-ee-ff`, `aabb.ccdd.eeff`, `aabbccddeeff` -> `aa-bb-cc-dd-ee-ff`.
 * Returns undefined for anything else.
 */
export function normalizeMac(s: string): string | undefined {
  const m = /^(?:([0-9a-f]{2})([:-]?)([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})|([0-9a-f]{4})\.([0-9a-f]{4})\.([0-9a-f]{4}))$/i.exec(s);
  if (m === null) return undefined;
  const hex = (m[1] !== undefined ? [m[1], m[3], m[4], m[5], m[6], m[7]].join('') : m[8] + m[9] + m[10]).toLowerCase();
  return hex.match(/../g)!.join('-');
}

/** Why `name` is not acceptable as an image name, or undefined when it is. */
export function imageNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'the image name is empty';
  if (Buffer.byteLength(name) > MAX_IMAGE_NAME) return `the image name is longer than ${MAX_IMAGE_NAME} bytes`;
  if (name.includes('\0')) return 'the image name contains a NUL byte';
  if (name.includes('/') || name.includes('\\')) return 'the image name contains a path separator';
  if (name === '..' || name.includes('..')) return 'the image name contains ".."';
  if (name.startsWith('.')) return 'the image name starts with "." (hidden and temporary files are the server\'s)';
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'the image name contains a control character';
  return undefined;
}

/** Upload ids name temp files: a short token of safe characters. */
export function isUploadId(id: string): boolean {
  return /^[A-Za-z0-9_-]{1,40}$/.test(id);
}

/** Temp file of an upload, in the images directory so the final rename stays on one filesystem. */
export function tempNameFor(name: string, id: string): string {
  return `.${name}.upload-${id}`;
}

export function isTempName(file: string): boolean {
  return file.startsWith('.') && /\.upload-[A-Za-z0-9_-]{1,40}$/.test(file);
}

/**
 * BOOTy names its capture `<aa:bb:cc:dd:ee:ff>.img` (raw) or `.zmg` (gzip). Store it under the
 * dashed MAC so the name needs no escaping in URLs: `aa-bb-cc-dd-ee-ff.img`. Other names pass as
 * they are (and are then checked by imageNameProblem()).
 */
export function storedNameForBootyUpload(filename: string): string {
  const m = /^(.+)\.(img|zmg)$/i.exec(filename);
  if (m !== null) {
    const mac = normalizeMac(m[1]);
    if (mac !== undefined) return `${mac}.${m[2].toLowerCase()}`;
  }
  return filename;
}
