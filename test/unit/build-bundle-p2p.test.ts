// Peer to peer in a bundle (scripts/bundle.mjs embedP2p, src/p2p/load.ts): its code is one
// embedded CommonJS text, not part of the code the agent parses at start; the text holds no
// WebRTC, WebSocket or node-fetch code (scripts/stubs/bundle-p2p), and evaluated through load.ts
// it gives the module's exports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import vm from 'node:vm';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '../..');
const bundler = await import(pathToFileURL(path.join(root, 'scripts', 'bundle.mjs')).href) as { embedP2p: unknown; bundle(out: string): Promise<string> };

test('the bundle carries p2p as one embedded text that load.ts evaluates on first use', { timeout: 120_000 }, async () => {
  mkdirSync(path.join(root, 'dist'), { recursive: true });
  const dir = mkdtempSync(path.join(root, 'dist', '.test-p2p-'));
  try {
    const out = path.join(dir, 'booty.mjs');
    await bundler.bundle(out);
    const text = readFileSync(out, 'utf8');
    const m = /^\s*(?:export const |var )?bundledP2p = ('(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*");$/m.exec(text);
    assert.ok(m !== null, 'the bundle embeds p2p-entry as a string');
    const code = vm.runInNewContext(m[1]) as string;
    // outside the string: no module of the webtorrent family (esbuild names each bundled file)
    const outside = text.replace(m[0], '');
    assert.doesNotMatch(outside, /^\/\/ node_modules\/(bittorrent-|bencode|create-torrent|ws\/)/m, 'p2p modules are parsed with the agent');
    assert.doesNotThrow(() => new vm.Script(code, { filename: 'p2p-entry.js' }), 'the text compiles as a script');
    assert.doesNotMatch(code, /import\.meta|^import |^export /m, 'the text is CommonJS without import.meta');
    assert.doesNotMatch(code, /RTCPeerConnection|Sec-WebSocket-Accept|node-fetch|web-streams-polyfill/, 'WebRTC, WebSocket and node-fetch are left out');
    assert.ok(code.length < 400_000, `the text is ${code.length} bytes`);

    const load = path.join(dir, 'load.mjs');
    await build({
      absWorkingDir: root, entryPoints: [path.join(root, 'src', 'p2p', 'load.ts')], outfile: load, bundle: true, format: 'esm', platform: 'node', target: 'node26',
      external: ['koffi'], plugins: [bundler.embedP2p as never], logLevel: 'silent',
      banner: { js: "import { createRequire as __bootyCreateRequire } from 'node:module';\nconst require = __bootyCreateRequire(import.meta.url);" },
    });
    const { loadP2p } = await import(pathToFileURL(load).href) as typeof import('../../src/p2p/load.ts');
    const p2p = await loadP2p();
    for (const name of ['SwarmSource', 'swarmsLingering', 'startRackSeed', 'MetainfoBuilder', 'RackTracker', 'torrentFile', 'useHttp'] as const) {
      assert.equal(typeof p2p[name], 'function', `${name} is exported`);
    }
    assert.equal(await loadP2p(), p2p, 'evaluated once');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
