// Fuzz test of the DHCP decoder: thousands of seeded mutations and truncations of valid packets.
// Every input must end in either a decoded message or a DhcpDecodeError: never another exception
// (RangeError from a Buffer read, TypeError) and never a hang. Decoded messages must survive
// re-encoding with their typed options unchanged. A failure prints the seed and case number.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BOOTREPLY, DhcpDecodeError, FLAG_BROADCAST, MAX_PACKET_LEN, MessageType, Opt, decodeDhcp, encodeDhcp, macToBytes,
} from '../../src/net/dhcp/codec.ts';
import type { DhcpMessage } from '../../src/net/dhcp/codec.ts';
import { randomInt, seededRandom } from '../helpers/seeded-random.ts';

const SEED = Number(process.env.BOOTY_FUZZ_SEED ?? 20261105);
const CASES = Number(process.env.BOOTY_FUZZ_CASES ?? 20_000);
const chaddr = macToBytes('02:00:00:aa:bb:cc');

function seeds(): Buffer[] {
  const full = encodeDhcp({
    op: BOOTREPLY, xid: 0x1234, chaddr, flags: FLAG_BROADCAST, yiaddr: '10.0.0.9',
    options: {
      messageType: MessageType.ACK, serverId: '10.0.0.1', leaseTime: 120, renewalTime: 60, rebindingTime: 100,
      subnetMask: '255.255.255.0', routers: ['10.0.0.1'], dns: ['10.0.0.1', '10.0.0.2'], domainName: 'x.test',
      hostname: 'h', broadcast: '10.0.0.255', mtu: 1500, message: 'ok',
      classlessRoutes: [{ destination: '172.16.0.0', prefix: 12, gateway: '10.0.0.3' }],
    },
  });
  const long = encodeDhcp({
    op: BOOTREPLY, xid: 5, chaddr, options: { messageType: MessageType.OFFER, dns: Array.from({ length: 90 }, (_, i) => `10.2.${i}.1`) },
  });
  // overloaded: options continue in file and sname
  const over = Buffer.from(encodeDhcp({ op: BOOTREPLY, xid: 9, chaddr, options: { messageType: MessageType.ACK } }));
  const at = over.indexOf(Opt.END, 240);
  Buffer.from([Opt.OVERLOAD, 1, 3, Opt.END]).copy(over, at);
  Buffer.from([Opt.ROUTER, 4, 10, 0, 0, 1, Opt.END]).copy(over, 108);
  Buffer.from([Opt.HOSTNAME, 2, 0x61, 0x62, Opt.END]).copy(over, 44);
  return [full, long, over];
}

function mutate(rand: () => number, base: Buffer): Buffer {
  let b = Buffer.from(base);
  const rounds = randomInt(rand, 1, 4);
  for (let r = 0; r < rounds; r++) {
    switch (randomInt(rand, 0, 8)) {
      case 0: { // flip bits
        for (let i = randomInt(rand, 1, 8); i > 0 && b.length > 0; i--) b[randomInt(rand, 0, b.length - 1)] ^= 1 << randomInt(rand, 0, 7);
        break;
      }
      case 1: // truncate
        b = b.subarray(0, randomInt(rand, 0, b.length));
        break;
      case 2: { // random bytes in the option area
        for (let i = randomInt(rand, 1, 16); i > 0 && b.length > 240; i--) b[randomInt(rand, 240, b.length - 1)] = randomInt(rand, 0, 255);
        break;
      }
      case 3: { // rewrite an option length byte to something else
        const pos = randomInt(rand, 241, Math.max(241, b.length - 1));
        if (pos < b.length) b[pos] = [0, 1, 2, 3, 4, 5, 254, 255][randomInt(rand, 0, 7)];
        break;
      }
      case 4: // append garbage
        b = Buffer.concat([b, Buffer.from(Array.from({ length: randomInt(rand, 1, 600) }, () => randomInt(rand, 0, 255)))]);
        break;
      case 5: // oversized
        if (rand() < 0.1) b = Buffer.concat([b, Buffer.alloc(MAX_PACKET_LEN)]);
        break;
      case 6: { // insert a random (code, len, bytes) option right after the cookie
        const len = randomInt(rand, 0, 40);
        const opt = Buffer.from([randomInt(rand, 0, 255), len, ...Array.from({ length: randomInt(rand, 0, len) }, () => randomInt(rand, 0, 255))]);
        b = Buffer.concat([b.subarray(0, 240), opt, b.subarray(240)]);
        break;
      }
      case 7: // overload flags with random file/sname contents
        if (b.length > 243) {
          Buffer.from([Opt.OVERLOAD, 1, randomInt(rand, 0, 4)]).copy(b, 240);
          for (let i = 44; i < 236; i++) if (rand() < 0.2) b[i] = randomInt(rand, 0, 255);
        }
        break;
      default: // pure noise of a plausible size
        b = Buffer.from(Array.from({ length: randomInt(rand, 200, 700) }, () => randomInt(rand, 0, 255)));
        if (rand() < 0.5 && b.length > 240) b.writeUInt32BE(0x63825363, 236);
    }
  }
  return b;
}

function reencode(m: DhcpMessage): Buffer {
  return encodeDhcp({
    op: m.op, xid: m.xid, secs: m.secs, flags: m.flags, ciaddr: m.ciaddr, yiaddr: m.yiaddr, siaddr: m.siaddr,
    giaddr: m.giaddr, chaddr: m.chaddr, options: m.options,
  });
}

test(`decodeDhcp survives ${CASES} seeded mutations (seed ${SEED})`, () => {
  const rand = seededRandom(SEED);
  const bases = seeds();
  for (const b of bases) decodeDhcp(b); // the seeds themselves are valid
  const tally = { decoded: 0, rejected: 0 } as Record<string, number>;
  for (let i = 0; i < CASES; i++) {
    const input = mutate(rand, bases[randomInt(rand, 0, bases.length - 1)]);
    let m: DhcpMessage;
    try {
      m = decodeDhcp(input);
    } catch (e) {
      if (!(e instanceof DhcpDecodeError)) {
        assert.fail(`seed ${SEED} case ${i}: ${e instanceof Error ? e.stack : String(e)}\ninput ${input.toString('hex')}`);
      }
      tally.rejected++;
      tally[e.code] = (tally[e.code] ?? 0) + 1;
      continue;
    }
    tally.decoded++;
    assert.ok(m.chaddr.length <= 16);
    // what decoded must re-encode to the same typed options
    let again: DhcpMessage;
    try {
      again = decodeDhcp(reencode(m));
    } catch (e) {
      assert.fail(`seed ${SEED} case ${i}: re-encoding a decoded message failed: ${String(e)}\ninput ${input.toString('hex')}`);
    }
    assert.deepEqual(again.options, m.options, `seed ${SEED} case ${i}`);
    assert.equal(again.xid, m.xid);
  }
  // both outcomes must be exercised, or the mutations are not doing their job
  assert.ok(tally.decoded > CASES / 20, `only ${tally.decoded} decoded`);
  assert.ok(tally.rejected > CASES / 20, `only ${tally.rejected} rejected`);
  process.stderr.write(`dhcp fuzz: ${Object.entries(tally).map(([k, v]) => `${k}=${v}`).join(' ')}\n`);
});
