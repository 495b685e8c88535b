// The boot profile's trip from the guest to the bench (src/agent/boot-profile.ts): a real V8 CPU
// profile (node:inspector, taken here) printed as console lines, read back from a console where
// the kernel's and the agent's own lines come in between, and summarized by the bench
// (bench/vm/profile-summary.ts) with the windows between the agent's lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Session } from 'node:inspector/promises';
import { createHash } from 'node:crypto';
import { profileEndLine, profileFromConsole, profileLines } from '../../src/agent/boot-profile.ts';
import { summarizeProfile } from '../../bench/vm/profile-summary.ts';

async function realProfile(): Promise<{ json: string; startS: number; endS: number }> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  // something to sample: hashing, the way a deploy's main thread spends its time
  const until = performance.now() + 150;
  let h = createHash('sha256');
  while (performance.now() < until) h = h.update(Buffer.alloc(64 << 10, 7));
  const { profile } = await session.post('Profiler.stop');
  session.disconnect();
  return { json: JSON.stringify(profile), startS: profile.startTime / 1e6, endS: profile.endTime / 1e6 };
}

test('a profile printed as console lines comes back whole, with other lines in between', async () => {
  const { json } = await realProfile();
  const lines = profileLines(json, 500);
  assert.ok(lines.length > 3, 'several lines');
  assert.match(lines.at(-1)!, /^booty-profile-end \d+ \d+$/);
  // the serial console: CRLF, kernel messages and agent lines between the profile's lines
  const console = lines.flatMap((l, i) => [l, i % 2 === 0 ? `[   12.${i}00000] virtio_net virtio0 eth0: link up` : `[   12.${i}00] booty: deploy: ${i} MB`]).join('\r\n');
  assert.equal(profileFromConsole(console), json);
  // a line lost on the way: no profile rather than a wrong one
  assert.equal(profileFromConsole(lines.filter((_, i) => i !== 1).join('\n')), undefined);
});

test('the summary names where the time went, by module, by function and between the agent\'s lines', async () => {
  const { json, startS, endS } = await realProfile();
  const mid = (startS + endS) / 2;
  const consoleText = [`[ ${startS.toFixed(3)}] booty: step 5/7: fetch the action`, `[ ${mid.toFixed(3)}] booty: deploy: format gzip`, `[ ${endS.toFixed(3)}] booty: deploy: first bytes reached the writer (gzip)`].join('\n');
  const out = summarizeProfile(json, undefined, consoleText).join('\n');
  assert.match(out, /^profile: 0\.\d+ s sampled/);
  assert.match(out, /self time by module:\n\s+\d\.\d{3} s/);
  // the hashing loop is the busiest thing in this profile
  assert.match(out, /node:internal\/crypto\/hash|\(garbage collector\)|createHash|update/);
  assert.match(out, /after "step 5\/7: fetch the action": /);
  assert.match(out, /after "deploy: format gzip": /);
});

test('BOOTY_PROFILE says where the profile ends: the first bytes (1), the whole image (written), step 7 either way', () => {
  const first = 'deploy: first bytes reached the writer (gzip)';
  const written = 'deploy: wrote 2147483648 bytes (gzip, 131 MB over the network) in 16.6 s; sha256 ab12';
  const step7 = 'step 7/7: reboot';
  for (const setting of ['1', undefined]) {
    assert.ok(profileEndLine(setting).test(first) && profileEndLine(setting).test(step7) && !profileEndLine(setting).test(written), String(setting));
  }
  assert.ok(!profileEndLine('written').test(first));
  assert.ok(profileEndLine('written').test(written) && profileEndLine('written').test(step7));
});
