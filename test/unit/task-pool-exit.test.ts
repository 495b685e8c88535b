// A worker pool that was started and never closed must not keep the process alive
// (task-pool.ts: workers are unref'd while idle). A 'message' listener added after unref() refs
// the worker's port again: the pools of a deploy that failed before using them kept
// `booty deploy` running after its error. Each pool here is created in a child process that
// then has nothing left to do: it must exit by itself.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-pool-exit-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const pools: Array<[string, string]> = [
  ['qcow2 decode', `import { ClusterDecodePool } from '${root}/src/image/qcow2/cluster-decode-pool.ts'; new ClusterDecodePool(1);`],
  ['block decode', `import { BlockDecodePool } from '${root}/src/image/parallel/block-decode-pool.ts'; new BlockDecodePool(2);`],
  ['codec', `import { CodecPool } from '${root}/src/image/parallel/codec-pool.ts'; new CodecPool(1);`],
];

for (const [what, code] of pools) {
  test(`an unused ${what} pool, never closed, lets the process exit`, () => {
    // a module file, as booty runs (with -e the same code exited even with the bug)
    const file = path.join(dir, `${what.replace(/\s+/g, '-')}.mjs`);
    fs.writeFileSync(file, `${code}\nconsole.log('started');\n`);
    const r = spawnSync(process.execPath, ['--disable-warning=ExperimentalWarning', file], { timeout: 20_000, encoding: 'utf8' });
    assert.equal(r.error, undefined, `the process did not exit within 20 s (${String(r.error)})`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /started/);
  });
}
