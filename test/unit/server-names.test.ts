import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { imageNameProblem, isTempName, isUploadId, normalizeMac, storedNameForBootyUpload, tempNameFor } from '../../src/server/names.ts';

describe('normalizeMac', () => {
  const table: [string, string | undefined][] = [
    ['aa-bb-cc-dd-ee-ff', 'aa-bb-cc-dd-ee-ff'],
    ['AA:BB:CC:DD:EE:FF', 'aa-bb-cc-dd-ee-ff'],
    ['aabbccddeeff', 'aa-bb-cc-dd-ee-ff'],
    ['AABB.CCDD.EEFF', 'aa-bb-cc-dd-ee-ff'],
    ['52:54:00:12:34:56', '52-54-00-12-34-56'],
    ['aa:bb-cc:dd:ee:ff', undefined], // mixed separators
    ['aa:bb:cc:dd:ee', undefined],
    ['aa:bb:cc:dd:ee:ff:00', undefined],
    ['gg:bb:cc:dd:ee:ff', undefined],
    ['', undefined],
    ['images', undefined],
    ['../aa-bb-cc-dd-ee-ff', undefined],
  ];
  for (const [input, want] of table) it(JSON.stringify(input), () => assert.equal(normalizeMac(input), want));
});

describe('imageNameProblem', () => {
  const ok = ['ubuntu-22.04.img.gz', 'a', 'aa-bb-cc-dd-ee-ff.zmg', 'x'.repeat(180), 'name with space.img', 'ü.img'];
  const bad: [string, RegExp][] = [
    ['', /empty/], ['../etc/passwd', /separator|\.\./], ['a/b', /separator/], ['a\\b', /separator/], ['..', /\.\./],
    ['a..b', /\.\./], ['.hidden', /starts with "\."/], ['.x.upload-1', /starts with/], ['a\0b', /NUL/],
    ['x'.repeat(181), /longer/], ['ü'.repeat(91), /longer/], ['a\nb', /control/],
  ];
  for (const n of ok) it(`accepts ${JSON.stringify(n.slice(0, 30))}`, () => assert.equal(imageNameProblem(n), undefined));
  for (const [n, why] of bad) it(`refuses ${JSON.stringify(n.slice(0, 30))}`, () => assert.match(imageNameProblem(n) ?? '', why));
});

describe('upload naming', () => {
  it('temp names are hidden, recognisable and within NAME_MAX', () => {
    const t = tempNameFor('x'.repeat(180), 'i'.repeat(40));
    assert.ok(t.startsWith('.'));
    assert.ok(isTempName(t));
    assert.ok(Buffer.byteLength(t) <= 255);
    assert.equal(isTempName('image.img'), false);
    assert.equal(isTempName('.meta'), false);
  });
  it('upload ids', () => {
    for (const id of ['a', 'abc-DEF_123', 'x'.repeat(40)]) assert.ok(isUploadId(id), id);
    for (const id of ['', 'x'.repeat(41), 'a/b', 'a.b', '..', 'a b']) assert.equal(isUploadId(id), false, id);
  });
  it("BOOTy's capture names are stored under the dashed MAC", () => {
    assert.equal(storedNameForBootyUpload('AA:BB:CC:DD:EE:FF.img'), 'aa-bb-cc-dd-ee-ff.img');
    assert.equal(storedNameForBootyUpload('aa:bb:cc:dd:ee:ff.zmg'), 'aa-bb-cc-dd-ee-ff.zmg');
    assert.equal(storedNameForBootyUpload('server1.img'), 'server1.img');
    assert.equal(storedNameForBootyUpload('../x.img'), '../x.img'); // left for imageNameProblem to refuse
  });
});
