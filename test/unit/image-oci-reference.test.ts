import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseOciUrl } from '../../src/config/oci-reference.ts';
import { parseChallenge } from '../../src/image/source/oci.ts';
import { parseAction } from '../../src/config/parse.ts';

test('oci:// references: registry, repository, tag or digest, layer selector, scheme', () => {
  assert.deepEqual(parseOciUrl('oci://registry.example:5000/os/debian:12'),
    { scheme: 'https', registry: 'registry.example:5000', repository: 'os/debian', reference: '12' });
  assert.deepEqual(parseOciUrl('oci+http://127.0.0.1:5000/debian'), { scheme: 'http', registry: '127.0.0.1:5000', repository: 'debian', reference: 'latest' });
  const d = `sha256:${'a'.repeat(64)}`;
  assert.equal(parseOciUrl(`oci://r/os/debian@${d}`)?.reference, d);
  assert.equal(parseOciUrl('oci://r/os/two:v1#layer=b.img.gz')?.layer, 'b.img.gz');
  for (const bad of ['oci://r', 'oci://r/', 'oci://r/Upper/case:1', 'oci://r/a@sha256:short', 'oci://r/a:bad tag', 'http://r/a:1', 'oci://r/a:-x']) {
    assert.equal(parseOciUrl(bad), undefined, bad);
  }
});

test('WWW-Authenticate challenges', () => {
  assert.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:os/debian:pull"'),
    { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:os/debian:pull' } });
  assert.deepEqual(parseChallenge('Basic realm="booty"'), { scheme: 'basic', params: { realm: 'booty' } });
});

test('actions take oci:// images and registryAuth; other schemes and bad credentials are refused by name', () => {
  const a = parseAction({ action: 'deploy', image: 'oci://registry.example/os/debian:12', registryAuth: { username: 'u', password: 'p' } });
  assert.ok(a.action === 'deploy' && a.image.startsWith('oci://') && a.registryAuth?.username === 'u');
  assert.throws(() => parseAction({ action: 'deploy', image: 'ftp://x/y.img' }), /image/);
  assert.throws(() => parseAction({ action: 'deploy', image: 'oci://r/UP:1' }), /image/);
  assert.throws(() => parseAction({ action: 'deploy', image: 'oci://r/a:1', registryAuth: { username: 'u' } }), /registryAuth/);
});
