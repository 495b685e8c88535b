// `oci://registry[:port]/repository[:tag|@sha256:digest][#layer=title]`: how an action names a
// disk image kept in an OCI registry (resolved by image/source/oci.ts). Here only the syntax, so the
// action schema can validate it without the network.

export interface OciReference {
  /** https: or http: */
  scheme: 'https' | 'http';
  /** host[:port] */
  registry: string;
  repository: string;
  /** a tag, or a digest `sha256:<hex>` */
  reference: string;
  /** `#layer=` selector: a layer's title annotation or digest */
  layer?: string;
}

export const SHA256_DIGEST = /^sha256:([0-9a-f]{64})$/;

export function isOciUrl(s: string): boolean {
  return /^oci(\+http)?:\/\//i.test(s);
}

/** `oci://host[:port]/repo/path[:tag|@sha256:hex][#layer=name]`; undefined when not one. */
export function parseOciUrl(s: string): OciReference | undefined {
  const m = /^oci(\+http)?:\/\/([^/\s?#]+)\/([^\s?#]+?)(?:#layer=([^\s#]+))?$/i.exec(s);
  if (m === null) return undefined;
  const scheme = m[1] === undefined ? 'https' : 'http';
  const registry = m[2];
  let path = m[3];
  let reference = 'latest';
  const at = path.indexOf('@');
  if (at >= 0) {
    reference = path.slice(at + 1);
    path = path.slice(0, at);
    if (!SHA256_DIGEST.test(reference)) return undefined;
  } else {
    const colon = path.lastIndexOf(':');
    if (colon > path.lastIndexOf('/')) {
      reference = path.slice(colon + 1);
      path = path.slice(0, colon);
      if (!/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(reference)) return undefined;
    }
  }
  // the distribution spec's repository name grammar
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(path)) return undefined;
  return { scheme, registry, repository: path, reference, ...(m[4] === undefined ? {} : { layer: decodeURIComponent(m[4]) }) };
}

