// The deploy action's "p2p" field (peer to peer inside a rack): accepted as written, normalized,
// carried through the wire form booty server serves, and refused by name when wrong.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseAction, toBootyJson } from '../../src/config/parse.ts';
import { BootyError } from '../../src/util/errors.ts';
import { metainfoUrlFor } from '../../src/p2p/metainfo-url.ts';

const base = { action: 'deploy', image: 'http://10.0.0.1:3000/images/debian.img.zst' };

describe('deploy action: p2p', () => {
  it('is off unless given; {} and every setting are kept', () => {
    assert.equal((parseAction(base) as { p2p?: unknown }).p2p, undefined);
    assert.deepEqual((parseAction({ ...base, p2p: {} }) as { p2p?: unknown }).p2p, {});
    const all = { rack: 'r12-a', metainfo: 'http://cdn.example/debian.torrent', stallTimeout: 15, windowMiB: 32, cacheMiB: 0 };
    const a = parseAction({ ...base, p2p: all });
    assert.deepEqual((a as { p2p?: unknown }).p2p, all);
    // the wire form the server serves parses back to the same action
    assert.deepEqual(parseAction(JSON.parse(toBootyJson(a))), a);
  });

  const refused: [string, unknown, string, string][] = [
    ['a rack name with a slash', { rack: 'a/b' }, 'p2p.rack', 'rack name'],
    ['an unknown setting', { seeds: 3 }, 'p2p.seeds', 'not a known field'],
    ['a window below 4 MiB', { windowMiB: 1 }, 'p2p.windowMiB', 'from 4 to 1024'],
    ['a metainfo that is no URL', { metainfo: 'ftp://x/y' }, 'p2p.metainfo', 'URL'],
    ['true instead of an object', true, 'p2p', 'object'],
  ];
  for (const [name, p2p, field, words] of refused) {
    it(`refuses ${name}, naming the field`, () => {
      assert.throws(() => parseAction({ ...base, p2p }), (e: unknown) => {
        assert.ok(e instanceof BootyError, String(e));
        assert.equal(e.stage, 'config');
        assert.ok(e.message.includes(`"${field}"`), e.message);
        assert.ok(e.message.toLowerCase().includes(words.toLowerCase()), e.message);
        return true;
      });
    });
  }

  it('finds the metainfo beside an image of booty server, and nowhere else', () => {
    assert.equal(metainfoUrlFor('http://10.0.0.1:3000/images/debian.img.zst'), 'http://10.0.0.1:3000/image-torrent/debian.img.zst');
    assert.equal(metainfoUrlFor('https://h/prefix/images/a%20b.img'), 'https://h/prefix/image-torrent/a%20b.img');
    assert.equal(metainfoUrlFor('http://cdn.example/os/debian.img.zst'), undefined);
    assert.equal(metainfoUrlFor('oci://registry/os/debian:12'), undefined);
    assert.equal(metainfoUrlFor('/srv/debian.img'), undefined);
  });
});
