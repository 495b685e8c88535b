// Peer to peer inside a rack, with real parts in network namespaces (root): `booty server --p2p`
// (origin, metainfo, tracker) in a core namespace behind a 40 Mbit/s uplink (tc tbf, both ways),
// one rack bridge with a `booty rack` seed and four agent namespaces on 400 Mbit/s links, each
// agent running `booty deploy --disk <file> --p2p` with its own machine credential. The image is a
// real ext4 filesystem (mkfs.ext4 -d over Go's toolchain and Python's standard library, 256 MiB)
// compressed by zstd. Then the baseline in the same test: the same four agents, same limits,
// today's unicast HTTP.
// Judged by parts booty does not own: every disk must be bit-exact (sha256 of the raw image),
// and the bytes the origin sent into the rack are the core uplink's own transmit counter: at most
// 1.1 x the image for the peer-to-peer run, at least 4 x for unicast (the counter counts).
// A third run kills the seed (SIGKILL) once half the image crossed the uplink: every agent must
// still end bit-exact; an agent that fell back went on over HTTP Range from the byte it had
// reached (from the origin exactly the bytes after it), the others took the rest from it.
// Wall times are printed for the README's table, not asserted (a shared, loaded machine).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createRackNet, type RackMember, type RackNet } from '../helpers/rack-net.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';
import { agentCredential } from '../../src/server/trust/agent-credential.ts';
import { loadOrCreateSecret } from '../../src/server/trust/server-secret.ts';
import { sha256OfFile, waitForOutput } from '../helpers/child-output.ts';

const root = resolve(import.meta.dirname, '..', '..');
const booty = join(root, 'bin', 'booty');
const AGENTS = 4;
const UPLINK_MBIT = 40;
const LINK_MBIT = 400;
const IMAGE = 'rack.img.zst';
const TOKEN = 'p2p-rack-operator-token';
// real files from packages scripts/host-deps.sh installs (golang-go, python3): Go's toolchain
// binaries and Python's standard library
const TREES = ['/usr/lib/go-1.19/pkg/tool', '/usr/lib/go-1.19/bin', '/usr/lib/python3.11'];

const has = (cmd: string) => { try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true; } catch { return false; } };
const isRoot = process.getuid?.() === 0;
const skip = !isRoot ? 'needs root (network namespaces)'
  : skipUnlessPresent(has('tc') && has('mkfs.ext4') && has('zstd') && TREES.every((t) => existsSync(t)), `needs tc (iproute2), mkfs.ext4 (e2fsprogs), zstd and ${TREES.join(', ')}`);

interface Ran { code: number | null; out: string; err: string; seconds: number; /** seconds from the start to the first line matching `mark` */ marked?: number }

function collect(child: ChildProcess, started: number, limitMs: number, mark?: RegExp): Promise<Ran> {
  let out = '';
  let err = '';
  let marked: number | undefined;
  child.stdout!.setEncoding('utf8').on('data', (s: string) => { out += s; });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { err += s; if (mark !== undefined && marked === undefined && mark.test(err)) marked = (performance.now() - started) / 1000; });
  const t = setTimeout(() => child.kill('SIGKILL'), limitMs);
  return new Promise((ok) => child.once('close', (code) => { clearTimeout(t); ok({ code, out, err, seconds: (performance.now() - started) / 1000, marked }); }));
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

test('a rack deploys through one seed: origin bytes about one image, every disk bit-exact; unicast baseline beside it', { skip, timeout: 30 * 60_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'booty-p2p-rack-'));
  let net: RackNet | undefined;
  t.after(async () => {
    await net?.close();
    await rm(dir, { recursive: true, force: true });
  });

  // the image: a real filesystem of real files, compressed by zstd
  const tree = join(dir, 'tree');
  await mkdir(tree);
  for (const src of TREES) execFileSync('cp', ['-a', src, tree]);
  const raw = join(dir, 'rack.img');
  execFileSync('truncate', ['-s', '256M', raw]);
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, raw], { stdio: ['ignore', 'pipe', 'pipe'] });
  await rm(tree, { recursive: true, force: true });
  const data = join(dir, 'data');
  await mkdir(join(data, 'images'), { recursive: true });
  execFileSync('zstd', ['-q', '-3', '-T2', raw, '-o', join(data, 'images', IMAGE)]);
  const imageBytes = (await stat(join(data, 'images', IMAGE))).size;
  const rawSha = await sha256OfFile(raw);
  await rm(raw);

  net = createRackNet(UPLINK_MBIT);
  const seedNs = net.addMember('seed', LINK_MBIT);
  const agents: RackMember[] = [];
  for (let k = 1; k <= AGENTS; k++) agents.push(net.addMember(`agent${k}`, LINK_MBIT));

  const server = net.spawnIn(net.core, booty, ['server', '--data', data, '--listen', `${net.coreIp}:3000`, '--p2p', '--token', TOKEN, '--log-format', 'json']);
  const serverLog = collect(server, performance.now(), 40 * 60_000);
  await waitForOutput(server, /"metainfo built".*rack\.img\.zst|rack\.img\.zst.*"metainfo built"/, 'booty server: the image\'s metainfo', 5 * 60_000);
  const secret = await loadOrCreateSecret(join(data, 'secret'));
  const url = `http://${net.coreIp}:3000/images/${IMAGE}`;
  const credentialOf = (k: number) => agentCredential(secret, `52:54:00:77:${net!.n.toString(16).padStart(2, '0')}:${k.toString(16).padStart(2, '0')}`);

  const runAgents = async (phase: 'p2p' | 'unicast' | 'seed-killed'): Promise<{ seconds: number; origin: number; runs: Ran[]; seedDone?: number }> => {
    const disks = agents.map((a) => join(dir, `${phase}-${a.name}.disk`));
    for (const d of disks) await writeFile(d, '');
    const before = net!.originTxBytes();
    const started = performance.now();
    let seed: ChildProcess | undefined;
    if (phase !== 'unicast') seed = net!.spawnIn(seedNs.ns, booty, ['rack', '--image', url, '--dir', join(dir, `seed-${phase}`), '--token', TOKEN]);
    const seedRun = seed === undefined ? undefined : collect(seed, started, 20 * 60_000, /complete \(/);
    // the fault: the seed dies (SIGKILL) once half the image has crossed the uplink
    let killer: NodeJS.Timeout | undefined;
    if (phase === 'seed-killed') killer = setInterval(() => { if (net!.originTxBytes() - before >= imageBytes / 2) { seed!.kill('SIGKILL'); clearInterval(killer); } }, 100);
    const runs = await Promise.all(agents.map((a, i) => collect(net!.spawnIn(a.ns, booty, [
      'deploy', '--image', url, '--disk', disks[i], '-q',
      ...(phase === 'unicast' ? [] : ['--p2p', '--token', credentialOf(i + 1)]), ...(phase === 'seed-killed' ? ['--p2p-stall-timeout', '5s'] : []),
    ]), started, 20 * 60_000, /first bytes reached the writer/)));
    clearInterval(killer);
    const seconds = (performance.now() - started) / 1000;
    const origin = net!.originTxBytes() - before;
    seed?.kill('SIGTERM');
    const s = await seedRun;
    for (const [i, r] of runs.entries()) {
      assert.equal(r.code, 0, `${phase} ${agents[i].name}: exit ${r.code}\n${r.err.slice(-3000)}${s === undefined ? '' : `\nseed:\n${s.err.slice(-2000)}`}`);
      assert.equal(await sha256OfFile(disks[i]), rawSha, `${phase} ${agents[i].name}: the disk is not the image`);
      await rm(disks[i]);
    }
    if (phase === 'seed-killed') assert.equal(s?.code, null, 'the seed was killed before it had the whole image');
    else if (s !== undefined) assert.match(s.err, /complete \(\d+ bytes, \d+ from the origin; sha256 [0-9a-f]{64}, verified\); seeding/, `the seed:\n${s.err.slice(-2000)}`);
    return { seconds, origin, runs, seedDone: s?.marked };
  };

  const p2p = await runAgents('p2p');
  const unicast = await runAgents('unicast');
  const killed = await runAgents('seed-killed');

  const fromPeers = p2p.runs.map((r) => /p2p: (\d+) bytes from peers, (\d+) from the origin/.exec(r.err));
  const table = [
    `image: ${mb(imageBytes)} zstd of a 256 MiB ext4 filesystem; ${AGENTS} agents and 1 seed; uplink ${UPLINK_MBIT} Mbit/s, agent links ${LINK_MBIT} Mbit/s (tc tbf)`,
    '| run | wall time (all agents done) | bytes the origin sent into the rack | x image |',
    '|---|---|---|---|',
    `| unicast HTTP | ${unicast.seconds.toFixed(1)} s | ${mb(unicast.origin)} | ${(unicast.origin / imageBytes).toFixed(2)} |`,
    `| peer to peer, one seed | ${p2p.seconds.toFixed(1)} s | ${mb(p2p.origin)} | ${(p2p.origin / imageBytes).toFixed(2)} |`,
    `seed: had the whole image from the origin ${p2p.seedDone?.toFixed(1) ?? '?'} s after the start`,
    `per agent, p2p: ${p2p.runs.map((r, i) => `${agents[i].name} ${r.seconds.toFixed(1)} s (first write at ${r.marked?.toFixed(1) ?? '?'} s; ${fromPeers[i] === null ? '?' : `${mb(Number(fromPeers[i]![1]))} from peers, ${mb(Number(fromPeers[i]![2]))} from the origin`})`).join('; ')}`,
    `| peer to peer, seed killed (SIGKILL) at half the image | ${killed.seconds.toFixed(1)} s | ${mb(killed.origin)} | ${(killed.origin / imageBytes).toFixed(2)} |`,
    `per agent, seed killed: ${killed.runs.map((r, i) => `${agents[i].name} ${r.seconds.toFixed(1)} s (${/p2p: \d+ bytes from peers, \d+ from the origin( \(fell back at byte \d+\))?/.exec(r.err)?.[0] ?? '?'})`).join('; ')}`,
    `per agent, unicast: ${unicast.runs.map((r, i) => `${agents[i].name} ${r.seconds.toFixed(1)} s (first write at ${r.marked?.toFixed(1) ?? '?'} s)`).join('; ')}`,
    // a stalled agent's own account of its connections (issue 21's stuck agent: which suspect it is)
    ...[['p2p', p2p], ['seed killed', killed]].flatMap(([phase, run]) => (run as typeof p2p).runs.flatMap((r, i) => r.err.split('\n')
      .filter((l) => /p2p: (no piece for \d+ s while waiting|at the fallback)/.test(l)).map((l) => `${phase}, ${agents[i].name}: ${l}`))),
  ].join('\n');
  t.diagnostic(table);
  process.stdout.write(`\n${table}\n`);

  assert.ok(p2p.origin <= 1.1 * imageBytes, `peer to peer: the origin sent ${p2p.origin} bytes into the rack, more than 1.1 x the image (${imageBytes})`);
  assert.ok(unicast.origin >= AGENTS * imageBytes, `unicast: the uplink counter saw ${unicast.origin} bytes, less than ${AGENTS} images: it does not count what it should`);
  for (const [i, m] of fromPeers.entries()) assert.ok(m !== null, `${agents[i].name} printed no p2p summary`);
  // seed killed: what an agent did not get from peers it fetched from the origin over HTTP Range
  // from the byte it had reached, exactly the rest; agents stalled together go to the origin one
  // after the other, so some may have taken everything from a peer that fell back first
  let fellBack = 0;
  for (const [i, r] of killed.runs.entries()) {
    const m = /p2p: (\d+) bytes from peers, (\d+) from the origin(?: \(fell back at byte (\d+)\))?/.exec(r.err);
    assert.ok(m !== null, `${agents[i].name}, seed killed: no p2p summary in its log:\n${r.err.slice(-2000)}`);
    const [peers, origin] = [Number(m[1]), Number(m[2])];
    if (m[3] === undefined) { assert.equal(peers, imageBytes, `${agents[i].name}: no fallback, so every byte from peers`); continue; }
    fellBack++;
    const at = Number(m[3]);
    assert.equal(origin, imageBytes - at, `${agents[i].name}: from the origin exactly the bytes after ${at}`);
    // pieces that had arrived out of order (past the byte reached) are dropped at the fallback:
    // counted as from peers, fetched again from the origin
    assert.ok(peers >= at, `${agents[i].name}: from peers at least the bytes before ${at}`);
  }
  assert.ok(fellBack >= 1, 'with the seed dead at half the image, someone had to read the origin');
  server.kill('SIGTERM');
  await serverLog;
});
