// Whose address a rack tracker records for an announce (routes/p2p.ts peerAddressOf): the socket's,
// unless the announce came from a load balancer named by --p2p-trusted-proxy, whose appended
// X-Forwarded-For entry (the last) names the peer. A client's own X-Forwarded-For is never believed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { peerAddressOf } from '../../src/server/routes/p2p.ts';

const req = (xff?: string) => ({ headers: xff === undefined ? {} : { 'x-forwarded-for': xff } }) as unknown as IncomingMessage;

describe('announce address behind a load balancer', () => {
  it('without trusted proxies the header is ignored', () => {
    assert.equal(peerAddressOf(req('10.0.0.9'), '10.1.1.5', undefined), '10.1.1.5');
    assert.equal(peerAddressOf(req('10.0.0.9'), '127.0.0.1', []), '127.0.0.1');
  });
  it('from a trusted proxy: the last entry (what the proxy appended), not what the client wrote before it', () => {
    assert.equal(peerAddressOf(req('10.0.0.9'), '127.0.0.1', ['127.0.0.1']), '10.0.0.9');
    assert.equal(peerAddressOf(req('6.6.6.6, 10.97.3.12'), '::ffff:127.0.0.1', ['127.0.0.1']), '10.97.3.12');
    assert.equal(peerAddressOf(req('fd00::12'), '127.0.0.1', ['127.0.0.1']), 'fd00::12');
  });
  it('from anyone else the header is ignored, and a malformed entry is not taken', () => {
    assert.equal(peerAddressOf(req('10.0.0.9'), '10.97.3.50', ['127.0.0.1']), '10.97.3.50');
    assert.equal(peerAddressOf(req('not an address'), '127.0.0.1', ['127.0.0.1']), '127.0.0.1');
    assert.equal(peerAddressOf(req(), '127.0.0.1', ['127.0.0.1']), '127.0.0.1');
  });
});
