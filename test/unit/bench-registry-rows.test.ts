// The bench's OCI registry rows (bench/lib/peers.ts, registry-origin.ts): they run from the
// registry origin only and the other deploy rows never do, BENCH_ONLY picks them by their ids,
// booty's registry rows are compared only with curl of the same blob and the same format's
// limits, and the URLs the rows use are the ones booty's own OCI parser and the distribution
// API read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { perOrigin, selects, type OriginUrls } from '../../bench/lib/origins.ts';
import { comparedWith, rows as allRows, type Context } from '../../bench/lib/peers.ts';
import { blobFile, blobUrl, ociRef, registryDir } from '../../bench/lib/registry-origin.ts';
import { parseOciUrl } from '../../src/config/oci-reference.ts';

const expanded = perOrigin(allRows);
const ids = (rs: Array<{ id: string }>) => rs.map((r) => r.id).sort();

test('the OCI rows run from the registry only; the other deploy rows never from it', () => {
  const fromRegistry = ids(expanded.filter((r) => r.id.endsWith('@registry')));
  assert.deepEqual(fromRegistry, ['deploy-booty-oci-gzip@registry', 'deploy-booty-oci-zstd@registry', 'deploy-oci-gzip@registry', 'deploy-oci-zstd@registry']);
  assert.equal(expanded.filter((r) => r.id.includes('-oci-') && !r.id.endsWith('@registry')).length, 0);
  // the ordinary deploy rows still run once per default origin
  assert.deepEqual(ids(expanded.filter((r) => r.id.startsWith('deploy-zstd@'))), ['deploy-zstd@booty', 'deploy-zstd@nginx']);
});

test("BENCH_ONLY with the issue's list selects the four registry rows and the two limits", () => {
  const only = 'deploy-oci-zstd,deploy-booty-oci-zstd,deploy-oci-gzip,deploy-booty-oci-gzip,limit-zstd,limit-pigz'.split(',');
  assert.deepEqual(ids(expanded.filter((r) => selects(only, r.id))), [
    'deploy-booty-oci-gzip@registry', 'deploy-booty-oci-zstd@registry', 'deploy-oci-gzip@registry', 'deploy-oci-zstd@registry', 'limit-pigz', 'limit-zstd',
  ]);
  assert.equal(expanded.filter((r) => selects([], r.id)).length, expanded.length);
  assert.ok(!selects(['deploy-zstd'], 'deploy-oci-zstd@registry'));
});

test("booty's registry rows: compared with curl of the same blob and their format's limits, and nothing else", () => {
  const row = (id: string) => expanded.find((r) => r.id === id)!;
  assert.deepEqual(ids(comparedWith(row('deploy-booty-oci-zstd@registry'), expanded)), ['deploy-oci-zstd@registry', 'limit-dd', 'limit-node-zstd', 'limit-zstd']);
  assert.deepEqual(ids(comparedWith(row('deploy-booty-oci-gzip@registry'), expanded)), ['deploy-oci-gzip@registry', 'limit-dd', 'limit-go-gunzip', 'limit-node-gunzip', 'limit-pigz']);
  // and the other origins' booty rows are not compared with the registry's curl rows
  for (const id of ['deploy-booty-zstd@booty', 'deploy-booty-gzip@nginx']) {
    assert.deepEqual(comparedWith(row(id), expanded).filter((r) => r.id.endsWith('@registry')), [], id);
  }
});

test('the rows fetch the same blob: curl its distribution API URL, booty the oci+http:// tag; warmed from its file', () => {
  const host = '127.0.0.1:40123';
  const sha = 'ab'.repeat(32);
  const blob = (format: string) => ({ ref: ociRef(host, 'bench/dense', `512M-${format}`), url: blobUrl(host, 'bench/dense', sha), file: blobFile('/s', sha) });
  assert.equal(blobUrl(host, 'bench/dense', sha), `http://${host}/v2/bench/dense/blobs/sha256:${sha}`);
  assert.equal(blobFile('/s', sha), `/s/docker/registry/v2/blobs/sha256/ab/${sha}/data`);
  // booty's own parser reads the reference as plain http to that registry, repository and tag
  assert.deepEqual(parseOciUrl(ociRef(host, 'bench/dense', '512M-zstd')), { scheme: 'http', registry: host, repository: 'bench/dense', reference: '512M-zstd' });
  const registry: OriginUrls = { gzUrl: blob('gzip').url, zstUrl: blob('zstd').url, oci: { gzip: blob('gzip'), zstd: blob('zstd') } };
  const c = { node: '/node', bundle: '/booty.mjs', root: process.cwd(), target: { dev: '/dev/loop9', file: '/t', bytes: 1 }, origins: { registry } } as unknown as Context;
  const cmd = (id: string) => expanded.find((r) => r.id === id)!.command(c);
  assert.equal(cmd('deploy-oci-zstd@registry'), `curl -sSfL ${blob('zstd').url} | zstd -dc | dd of=/dev/loop9 bs=4M oflag=direct iflag=fullblock conv=fsync status=none`);
  assert.match(String(cmd('deploy-booty-oci-gzip@registry')), new RegExp(`deploy --image oci\\+http://${host}/bench/dense:512M-gzip --disk /dev/loop9`));
  assert.deepEqual(expanded.find((r) => r.id === 'deploy-booty-oci-zstd@registry')!.warm(c), [blobFile('/s', sha)]);
  // without a registry in the run: n/a, nothing warmed
  const none = { ...c, origins: {} } as Context;
  assert.deepEqual(expanded.find((r) => r.id === 'deploy-oci-gzip@registry')!.command(none), { na: 'no docker-registry origin in this run' });
  assert.deepEqual(expanded.find((r) => r.id === 'deploy-oci-gzip@registry')!.warm(none), []);
});

test("the registry's storage is keyed by the image's sha256s", () => {
  const a = registryDir('/img', { gzip: { file: '', bytes: 1, sha256: '1'.repeat(64) }, zstd: { file: '', bytes: 1, sha256: '2'.repeat(64) } });
  const b = registryDir('/img', { gzip: { file: '', bytes: 1, sha256: '1'.repeat(64) }, zstd: { file: '', bytes: 1, sha256: '3'.repeat(64) } });
  assert.match(a, /^\/img\/registry-[0-9a-f]{12}$/);
  assert.notEqual(a, b);
});

test("gzip and zstd rows: never compared with the limits or pipes of xz, bzip2 or qcow2 selected in the same run", () => {
  const row = (id: string) => expanded.find((r) => r.id === id)!;
  assert.deepEqual(ids(comparedWith(row('deploy-booty-gzip@nginx'), expanded)), [
    'deploy-bootygo@nginx', 'deploy-pigz@nginx', 'deploy-zstd@nginx', 'limit-dd', 'limit-go-gunzip', 'limit-node-gunzip', 'limit-pigz',
  ]);
  assert.deepEqual(ids(comparedWith(row('deploy-booty-zstd@booty'), expanded)), [
    'deploy-bootygo@booty', 'deploy-pigz@booty', 'deploy-zstd@booty', 'limit-dd', 'limit-node-zstd', 'limit-zstd',
  ]);
});
