// The real Debian 12 disk images the end-to-end tests deploy and boot (scripts/build-test-image.sh).
// ensureTestImage() runs the script, which returns at once when the cached images match its stamp
// and otherwise builds both kinds (they share one debootstrap run; a few minutes, needs root).
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type TestImageKind = 'lvm' | 'plain' | 'uefi';

export interface TestImage {
  kind: TestImageKind;
  /** absolute paths of the raw disk and its compressed forms */
  raw: string;
  gz: string;
  zst: string;
  /** hex sha256 of each file */
  sha256: { raw: string; gz: string; zst: string };
  /** bytes of each compressed file */
  bytes: { gz: number; zst: number };
  /** size of the raw disk in bytes (2 GiB) */
  size: number;
  /** kernel release inside the image, e.g. 6.1.0-50-amd64 */
  kernel: string;
  /** root= of the image's kernel command line: /dev/mapper/bootyvg-root or UUID=... */
  rootDevice: string;
  bootUuid: string;
  rootUuid: string;
  /** msdos partitions, in 512-byte sectors */
  bootPartition: { startSector: number; sectors: number };
  rootPartition: { startSector: number; sectors: number };
  /** uefi kind: the unique GUIDs of the ESP (p1) and the root partition (p2) */
  espPartUuid?: string;
  rootPartUuid?: string;
}

interface Manifest {
  kind: TestImageKind;
  size: number;
  kernel: string;
  rootDevice: string;
  bootUuid: string;
  rootUuid: string;
  bootPartition: { startSector: number; sectors: number };
  rootPartition: { startSector: number; sectors: number };
  espPartUuid?: string;
  rootPartUuid?: string;
  raw: { file: string; bytes: number; sha256: string };
  gz: { file: string; bytes: number; sha256: string };
  zst: { file: string; bytes: number; sha256: string };
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const buildScript = path.join(repoRoot, 'scripts', 'build-test-image.sh');
// the UEFI kind (GPT + ESP) has a script of its own, so its changes never rebuild the BIOS kinds
const buildScriptUefi = path.join(repoRoot, 'scripts', 'build-test-image-uefi.sh');

/** Where the images are cached: $BOOTY_CACHE/test-images, default <repo>/.cache/test-images. */
export function testImageDir(): string {
  return path.join(process.env.BOOTY_CACHE ?? path.join(repoRoot, '.cache'), 'test-images');
}

// One build per process even when several tests ask at once; the script's own lock serialises
// builds between processes (node --test runs test files in parallel).
let building: Promise<void> | undefined;

export async function ensureTestImage(kind: TestImageKind): Promise<TestImage> {
  if (kind === 'uefi') {
    await runBuildScript(buildScriptUefi, []);
    return readTestImage(kind);
  }
  building ??= runBuildScript(buildScript, ['all']).finally(() => {
    building = undefined;
  });
  await building;
  return readTestImage(kind);
}

/** The manifest of an already built image (no build). */
export async function readTestImage(kind: TestImageKind): Promise<TestImage> {
  const dir = testImageDir();
  const manifest = JSON.parse(await readFile(path.join(dir, `debian-${kind}.json`), 'utf8')) as Manifest;
  return {
    kind: manifest.kind,
    raw: path.join(dir, manifest.raw.file),
    gz: path.join(dir, manifest.gz.file),
    zst: path.join(dir, manifest.zst.file),
    sha256: { raw: manifest.raw.sha256, gz: manifest.gz.sha256, zst: manifest.zst.sha256 },
    bytes: { gz: manifest.gz.bytes, zst: manifest.zst.bytes },
    size: manifest.size,
    kernel: manifest.kernel,
    rootDevice: manifest.rootDevice,
    bootUuid: manifest.bootUuid,
    rootUuid: manifest.rootUuid,
    bootPartition: manifest.bootPartition,
    rootPartition: manifest.rootPartition,
    espPartUuid: manifest.espPartUuid,
    rootPartUuid: manifest.rootPartUuid,
  };
}

function runBuildScript(script: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-8000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) {
        // A real build takes minutes: say so in the test output, an up-to-date check stays quiet.
        if (!output.includes('up to date')) process.stderr.write(output);
        resolve();
      } else {
        reject(new Error(`test image: ${script} exited with ${code}:\n${output.trimEnd()}`));
      }
    });
  });
}
