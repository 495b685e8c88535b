// The bench's OCI registry origin: Debian's docker-registry (distribution) on loopback, holding the
// bench image's zstd and gzip forms as OCI artifacts, one layer each with the media type booty
// documents for disk images (application/vnd.booty.disk.image.v1+zstd / +gzip), pushed through
// the distribution API by the tests' helper (test/helpers/oci-registry.ts). The OCI rows
// (peers.ts) fetch the same blobs: curl from /v2/<repo>/blobs/<digest>, booty from
// oci+http://host/<repo>:<tag> (oci+http: plain http, oci-reference.ts).
//
// Its storage lives beside the image it holds, <image dir>/registry-<key>/, so the push happens
// once per image (a later run finds the blobs there and sends nothing) and removing .cache/bench
// removes it; <key> comes from the image's sha256s, and the storage of an earlier image of that
// directory is removed, so a rebuilt image leaves no stale copy behind.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pushArtifact, startRegistry, type Registry } from '../../test/helpers/oci-registry.ts';
import type { Manifest } from './image.ts';
import type { OciBlob, OriginUrls } from './origins.ts';
import { run } from './shell.ts';

export const DISK_IMAGE_MEDIA_TYPE = 'application/vnd.booty.disk.image.v1';

/** The distribution API's URL of a blob: what an operator's `curl` fetches. */
export function blobUrl(host: string, repo: string, sha256: string): string {
  return `http://${host}/v2/${repo}/blobs/sha256:${sha256}`;
}

/** booty's reference to a tag of a registry without TLS. */
export function ociRef(host: string, repo: string, tag: string): string {
  return `oci+http://${host}/${repo}:${tag}`;
}

/** Where distribution's filesystem driver keeps a blob's bytes under its root directory. */
export function blobFile(storage: string, sha256: string): string {
  return join(storage, 'docker/registry/v2/blobs/sha256', sha256.slice(0, 2), sha256, 'data');
}

/** The registry's directory for this image: keyed by its compressed forms' sha256s. */
export function registryDir(imageDir: string, image: Pick<Manifest, 'gzip' | 'zstd'>): string {
  const key = createHash('sha256').update(`${image.gzip.sha256} ${image.zstd.sha256}`).digest('hex').slice(0, 12);
  return join(imageDir, `registry-${key}`);
}

export type RegistryOrigin = {
  host: string;
  dir: string;
  urls: OriginUrls;
  /** what the header line says about the push: 'pushed in 3.1 s' or 'already there' */
  push: string;
  close(): Promise<void>;
};

/**
 * Starts the registry on 127.0.0.1 over this image's storage and pushes its zstd and gzip forms
 * (streamed from the files, skipped when already there) as `<repo>:<tag>-zstd` and `-gzip`.
 * Returns null when docker-registry is not installed (scripts/host-deps.sh).
 */
export async function startRegistryOrigin(o: { imageDir: string; image: Manifest; repo: string; tag: string; log: (s: string) => void }): Promise<RegistryOrigin | null> {
  if ((await run('command -v docker-registry')).code !== 0) return null;
  const dir = registryDir(o.imageDir, o.image);
  for (const name of readdirSync(o.imageDir)) {
    if (name.startsWith('registry-') && join(o.imageDir, name) !== dir) {
      o.log(`bench: removing ${name}, the registry storage of an earlier image of ${o.imageDir}`);
      rmSync(join(o.imageDir, name), { recursive: true, force: true });
    }
  }
  const storage = join(dir, 'data'); // startRegistry's rootdirectory
  const registry: Registry = await startRegistry({ dir });
  try {
    const forms = { zstd: o.image.zstd, gzip: o.image.gzip } as const;
    const there = Object.values(forms).every((f) => existsSync(blobFile(storage, f.sha256)));
    const t0 = performance.now();
    const oci = {} as { gzip: OciBlob; zstd: OciBlob };
    for (const [format, f] of Object.entries(forms) as Array<[keyof typeof forms, (typeof forms)[keyof typeof forms]]>) {
      const tag = `${o.tag}-${format}`;
      if (!there) o.log(`bench: pushing the ${format} image (${(f.bytes / 1e6).toFixed(0)} MB) to ${registry.host}/${o.repo}:${tag}`);
      await pushArtifact(registry, o.repo, tag, [{ file: f.file, sha256: f.sha256, mediaType: `${DISK_IMAGE_MEDIA_TYPE}+${format}`, title: format === 'zstd' ? 'bench.img.zst' : 'bench.img.gz' }]);
      const file = blobFile(storage, f.sha256);
      // the rows warm this file, as the other origins' rows warm the image they serve
      if (!existsSync(file) || statSync(file).size !== f.bytes) {
        throw new Error(`bench: the registry took the ${format} image but ${file} is not its blob (a storage layout other than distribution 2.x's filesystem driver?)`);
      }
      oci[format] = { ref: ociRef(registry.host, o.repo, tag), url: blobUrl(registry.host, o.repo, f.sha256), file };
    }
    return {
      host: registry.host,
      dir,
      urls: { gzUrl: oci.gzip.url, zstUrl: oci.zstd.url, oci },
      push: there ? 'already there' : `pushed in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      close: () => registry.close(),
    };
  } catch (e) {
    await registry.close();
    throw e;
  }
}
