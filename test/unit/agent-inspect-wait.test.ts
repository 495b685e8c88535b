// The inspect action's wait: the agent keeps asking until an operator's action arrives, says so
// once (not at every poll), and hands back that action to be run on the same boot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitForOperator } from '../../src/agent/inspect-wait.ts';
import { parseAction } from '../../src/config/parse.ts';
import type { Logger } from '../../src/util/log.ts';

test('inspect: polls until an action that is not inspect arrives, and returns it', async () => {
  const lines: string[] = [];
  const log = { debug: () => {}, info: (m: string) => { lines.push(m); }, warn: () => {}, error: () => {} } as unknown as Logger;
  const inspect = { ...parseAction({ action: 'inspect' }), pollSeconds: 0.01 };
  const answers = [inspect, inspect, parseAction({ action: 'wipe', disk: '/dev/vda', method: 'zero' })];
  let waited = 0;
  const got = await waitForOperator(inspect, async () => answers.shift()!, log, () => { waited++; });
  assert.equal(got.action, 'wipe');
  assert.equal(answers.length, 0, 'asked three times');
  assert.equal(waited, 1, 'the waiting phase is reported once');
  assert.match(lines[0], /waiting for an operator to give this machine an action \(asking every 0\.01 s\)/);
  assert.equal(lines[1], 'inspect: an operator set an action after 3 tries: wipe');
  // not inspect to begin with: returned at once
  const none = parseAction({ action: 'none' });
  assert.equal(await waitForOperator(none, async () => assert.fail('no poll'), log), none);
});
