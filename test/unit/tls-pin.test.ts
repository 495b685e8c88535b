// booty.ca= / --ca parsing, and what the kernel command line makes of it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBootParams } from '../../src/agent/boot-params.ts';
import { certSha256, isTrustError, parseTrustSpec, TrustError } from '../../src/net/tls-pin.ts';

const hex = 'a1'.repeat(32);

test('pins: sha256:<hex>, upper case and openssl colon form accepted, normalised to lower-case hex', () => {
  const colon = hex.toUpperCase().match(/../g)!.join(':');
  const r = parseTrustSpec([`sha256:${hex}`, `SHA256:${colon}`, `sha256=${hex}`]);
  assert.deepEqual(r.pins, [hex, hex, hex]);
  assert.deepEqual(r.problems, []);
});

test('CA URLs need https and a pin; lists may be comma-separated', () => {
  const ok = parseTrustSpec([`sha256:${hex},https://10.0.0.1:3443/tls/cert.pem`]);
  assert.deepEqual(ok.pins, [hex]);
  assert.deepEqual(ok.caUrls, ['https://10.0.0.1:3443/tls/cert.pem']);
  const noPin = parseTrustSpec(['https://10.0.0.1/tls/cert.pem']);
  assert.deepEqual(noPin.caUrls, []);
  assert.match(noPin.problems[0], /needs a sha256: pin/);
  const plain = parseTrustSpec([`sha256:${hex}`, 'http://10.0.0.1/ca.pem']);
  assert.match(plain.problems[0], /expected sha256:<hex> or an https:\/\/ URL/);
});

test('malformed pins are named', () => {
  for (const bad of ['sha256:1234', `sha256:${hex}00`, `sha256:${'zz'.repeat(32)}`, 'md5:abcd', '']) {
    const r = parseTrustSpec([bad]);
    assert.deepEqual(r.pins, [], bad);
    if (bad !== '') assert.equal(r.problems.length, 1, bad);
  }
});

test('kernel command line: booty.ca given twice, warnings for problems and for plain-http MYURL', () => {
  const p = parseBootParams(`MYURL=https://10.0.0.1:3443 booty.ca=sha256:${hex} booty.ca=https://10.0.0.1:3443/tls/cert.pem booty.token=t`);
  assert.deepEqual(p.trust, { pins: [hex], caUrls: ['https://10.0.0.1:3443/tls/cert.pem'] });
  assert.deepEqual(p.warnings, []);
  const http = parseBootParams(`MYURL=http://10.0.0.1:3000 booty.ca=sha256:${hex}`);
  assert.match(http.warnings.join('\n'), /MYURL=http:\/\/10\.0\.0\.1:3000 is plain http: the agent will refuse it/);
  const bad = parseBootParams('MYURL=https://10.0.0.1 booty.ca=sha256:xyz');
  assert.deepEqual(bad.trust.pins, []);
  assert.match(bad.warnings.join('\n'), /64 hex digits/);
  assert.deepEqual(parseBootParams('MYURL=http://10.0.0.1').trust, { pins: [], caUrls: [] });
});

test('TrustError is recognised through causes; certSha256 is the sha256 of the DER', () => {
  const inner = new TrustError('refusing');
  assert.ok(isTrustError(new Error('wrapped', { cause: inner })));
  assert.ok(!isTrustError(new Error('other')));
  assert.equal(certSha256(Buffer.from('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});
