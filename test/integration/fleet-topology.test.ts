// The whole fleet of issue 21 in network namespaces on this machine (root), every part a real one:
// a `core` namespace with Debian's PostgreSQL, two `booty server --p2p` replicas on it and Debian's
// haproxy in front (test/helpers/haproxy.ts: health checks, redispatch, tracker announces of a
// rack to one replica); two rack bridges, each behind its own uplink (tc tbf, both ways), each with
// a `booty rack` seed and AGENTS agent namespaces on faster links running
// `booty deploy --disk <file> --p2p --report <haproxy>` with their own machine credential, after
// the operator set each one a one-shot deploy action through haproxy. The image is a real ext4
// filesystem of real files (Python's standard library, Go's binaries), compressed by zstd.
// Beside them in each rack, in the runs BOOTY_FLEET_GUEST_RUNS names (default p2p,unicast): one
// QEMU guest booting the real initramfs agent (PID 1, its own DHCP client, leased by a dnsmasq in
// the seed's namespace: the rack's service machine) on a tap of the rack's bridge, given the same
// one-shot deploy (with "p2p": {} in the p2p run; "grow": false, since the image is a bare
// filesystem that grow refuses, which also leaves the disk as deployed) onto a virtio disk file;
// test/helpers/fleet-guest.ts. It starts with the namespaced agents and counts like them: its disk
// (the image's bytes, then untouched zeros), its one ok run in PostgreSQL, its bytes on the
// uplink's counter.
//
// Runs, in this order, each with fresh machines (MACs) and fresh seeds:
//   single   one agent, unicast HTTP (one machine's time, for the table)
//   p2p      every agent of both racks at once, peer to peer, no fault
//   unicast  the same agents, today's unicast HTTP, same limits, same image
//   faults   peer to peer again, and meanwhile: one agent SIGKILLed at 20 % of its rack's image and
//            started again (a new process deploys from byte 0, from its rack's peers); the replica
//            serving the trackers SIGKILLed at 30 % of all images; rack 1's seed SIGKILLed at 50 %.
// Judged by parts booty does not own: every disk's sha256 equals the raw image's; origin bytes are
// each uplink's own transmit counter in the core; what the server recorded is read from
// PostgreSQL with psql. Asserted rules:
//   every run: every disk bit-exact; per machine exactly one run ended ok and none failed, its
//     one-shot action recorded consumed (one_shot_done) and served as "none" afterwards;
//   p2p (no fault): the origin sent each rack at most 1.1 x the image (so <= 1.1 x image x racks);
//   unicast: each rack's counter saw at least AGENTS x the image (the counter counts);
//   faults: correctness only (above). With the seed of rack 1 dead at half the image, what its
//     agents still lack must come from somewhere; the origin bytes per rack are printed, not
//     bounded (rack 2, whose seed lives, is printed beside rack 1).
// Wall times are printed (the README's table; bench/fleet.ts runs this file at the issue's size),
// never asserted: the machine is shared and loaded.
// Sizes: BOOTY_FLEET_AGENTS (default 3 per rack), BOOTY_FLEET_IMAGE_MIB (128), BOOTY_FLEET_UPLINK_MBIT
// (40), BOOTY_FLEET_LINK_MBIT (400), BOOTY_FLEET_RUNS (single,p2p,unicast,faults),
// BOOTY_FLEET_GUEST_RUNS (p2p,unicast; empty: no QEMU guest, and no QEMU needed); BOOTY_FLEET_LOG_DIR:
// every agent's and seed's log is written there, per run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { link, mkdir, mkdtemp, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createFleetNet, type FleetMember, type FleetNet } from '../helpers/fleet-net.ts';
import { haproxyPresent, startHaproxy, type TestHaproxy } from '../helpers/haproxy.ts';
import { postgresPresent, startPostgres, PG_BIN, type TestPostgres } from '../helpers/postgres.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';
import { runBooty } from '../helpers/booty-cli.ts';
import { agentCredential } from '../../src/server/trust/agent-credential.ts';
import { loadOrCreateSecret } from '../../src/server/trust/server-secret.ts';
import { sha256OfFile, sha256OfFileHead, waitForOutput } from '../helpers/child-output.ts';
import { bootRackGuest, consoleStamp, startRackDnsmasq, zeroFrom, type RackDhcp } from '../helpers/fleet-guest.ts';
import { ensureInitramfs, type BuiltInitramfs } from '../helpers/initramfs-build.ts';
import { detectAccel, type Vm } from '../helpers/qemu.ts';

const root = resolve(import.meta.dirname, '..', '..');
const booty = join(root, 'bin', 'booty');
const env = (k: string, d: number) => { const v = Number(process.env[k] ?? d); return Number.isFinite(v) && v > 0 ? v : d; };
const AGENTS = env('BOOTY_FLEET_AGENTS', 3);
const IMAGE_MIB = env('BOOTY_FLEET_IMAGE_MIB', 128);
const UPLINK_MBIT = env('BOOTY_FLEET_UPLINK_MBIT', 40);
const LINK_MBIT = env('BOOTY_FLEET_LINK_MBIT', 400);
const RUNS = (process.env.BOOTY_FLEET_RUNS ?? 'single,p2p,unicast,faults').split(',');
const GUEST_RUNS = (process.env.BOOTY_FLEET_GUEST_RUNS ?? 'p2p,unicast').split(',').filter((r) => r !== '' && RUNS.includes(r));
const RACKS = 2;
const IMAGE = 'fleet.img.zst';
// a guest's disk: the raw image's size and this much more, which must stay zero
const GUEST_DISK_SPARE = 16 * 2 ** 20;
// real files from packages scripts/host-deps.sh installs; bigger images take more of them
const TREES = ['/usr/lib/python3.11', '/usr/lib/go-1.19/bin', ...(IMAGE_MIB >= 256 ? ['/usr/lib/go-1.19/pkg/tool'] : []), ...(IMAGE_MIB >= 400 ? ['/usr/lib/gcc'] : [])];

const has = (cmd: string) => { try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true; } catch { return false; } };
const isRoot = process.getuid?.() === 0;
// the guests: QEMU, dnsmasq, and what building the initramfs needs (test/helpers/initramfs-build.ts)
const guestTools = GUEST_RUNS.length === 0 ? [] : ['qemu-system-x86_64', 'dnsmasq', 'apt-get', 'dpkg-deb', 'depmod'];
const skip = !isRoot ? 'needs root (network namespaces)'
  : skipUnlessPresent(has('tc') && has('mkfs.ext4') && has('zstd') && postgresPresent() && haproxyPresent() && TREES.every((t) => existsSync(t)) && guestTools.every(has),
    `needs tc (iproute2), mkfs.ext4 (e2fsprogs), zstd, postgresql, haproxy, ${[...guestTools, ''].join(', ')}and ${TREES.join(', ')}`);

interface Ran { code: number | null; signal: NodeJS.Signals | null; out: string; err: string; seconds: number }

function collect(child: ChildProcess, started: number, limitMs: number): Promise<Ran> {
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => { out += s; });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { err += s; });
  const t = setTimeout(() => child.kill('SIGKILL'), limitMs);
  return new Promise((ok) => child.once('close', (code, signal) => { clearTimeout(t); ok({ code, signal, out, err, seconds: (performance.now() - started) / 1000 }); }));
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
const bareMac = (m: string) => m.toLowerCase().replace(/[^0-9a-f]/g, '');

interface GuestRan {
  rack: number; name: string; mac: string; disk: string;
  /** seconds from the run's start to QEMU's exit */
  seconds: number;
  /** seconds from the run's start to the agent's first console line (/init), and to the kernel's "Power down" */
  initAt?: number; offAt?: number;
  exit: { code: number | null; signal: NodeJS.Signals | null };
  console: string;
  /** QEMU would not start, or did not end in time */
  error?: string;
}

interface RunResult {
  phase: string; seconds: number; origin: number[]; agents: { member: FleetMember; mac: string; ran: Ran; restarted?: Ran }[];
  /** when the last namespaced agent was done (seconds is when everything, guests too, was) */
  agentsSeconds: number;
  guests: GuestRan[];
  events: string[]; load: number[];
}

test('a fleet: replicas on PostgreSQL behind haproxy, two racks deploying peer to peer through one seed each; unicast beside it; faults', { skip, timeout: 40 * 60_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'booty-fleet-'));
  let net: FleetNet | undefined;
  let pg: TestPostgres | undefined;
  let lb: TestHaproxy | undefined;
  const guestVms = new Set<Vm>();
  t.after(async () => {
    for (const vm of guestVms) await vm.kill();
    await lb?.stop();
    await net?.close();
    await pg?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  // the guests' kernel and initramfs: the agent as this checkout has it, built once per source
  // state; and whether QEMU has KVM here (probed once now, not inside a timed run)
  let initramfs: BuiltInitramfs | undefined;
  let accel = '';
  if (GUEST_RUNS.length > 0) {
    initramfs = await ensureInitramfs();
    accel = (await detectAccel(initramfs.kernel)).toUpperCase();
  }

  // the image: a real filesystem of real files, compressed by zstd
  const tree = join(dir, 'tree');
  await mkdir(tree);
  for (const src of TREES) execFileSync('cp', ['-a', src, tree]);
  const raw = join(dir, 'fleet.img');
  execFileSync('truncate', ['-s', `${IMAGE_MIB}M`, raw]);
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, raw], { stdio: ['ignore', 'pipe', 'pipe'] });
  await rm(tree, { recursive: true, force: true });
  const compressed = join(dir, IMAGE);
  execFileSync('zstd', ['-q', '-3', '-T2', raw, '-o', compressed]);
  const imageBytes = (await stat(compressed)).size;
  const rawSha = await sha256OfFile(raw);
  const rawBytes = (await stat(raw)).size;
  await rm(raw);

  net = createFleetNet();
  const racks = Array.from({ length: RACKS }, () => net!.addRack(UPLINK_MBIT));
  const seeds = racks.map((r) => net!.addMember(r, 'seed', LINK_MBIT));
  const agents = racks.map((r) => Array.from({ length: AGENTS }, (_, k) => net!.addMember(r, `r${r.index}agent${k + 1}`, LINK_MBIT)));
  // per rack, for its QEMU guest: a tap on the bridge, and dnsmasq next to the seed
  const guestPorts = GUEST_RUNS.length === 0 ? [] : racks.map((r) => net!.addGuestPort(r, LINK_MBIT));
  const dhcp: RackDhcp[] = [];
  if (GUEST_RUNS.length > 0) for (const [i, r] of racks.entries()) dhcp.push(await startRackDnsmasq(net, r, seeds[i], dir));

  // core: PostgreSQL, two replicas sharing the secret and one image file (hard links: the same
  // inode, so the same ETag from both, as from a shared origin), haproxy
  pg = await startPostgres({ netns: net.core });
  await pg.createDatabase('booty');
  const replicaDirs = ['a', 'b'].map((x) => join(dir, `replica-${x}`));
  for (const d of replicaDirs) await mkdir(join(d, 'images'), { recursive: true });
  await loadOrCreateSecret(join(replicaDirs[0], 'secret'));
  await link(join(replicaDirs[0], 'secret'), join(replicaDirs[1], 'secret'));
  for (const d of replicaDirs) await link(compressed, join(d, 'images', IMAGE));
  const secret = await loadOrCreateSecret(join(replicaDirs[0], 'secret'));
  const replicas = replicaDirs.map((d, i) => net!.spawnIn(net!.core, booty, ['server', '--data', d, '--listen', `127.0.0.1:${3001 + i}`, '--database', pg!.url('booty'),
    '--p2p', '--p2p-trusted-proxy', '127.0.0.1', '--log-format', 'json']));
  const replicaLogs = replicas.map((c) => collect(c, performance.now(), 60 * 60_000));
  await Promise.all(replicas.map((c, i) => waitForOutput(c, /"metainfo built".*fleet\.img\.zst|fleet\.img\.zst.*"metainfo built"/, `replica ${i + 1}: the image's metainfo`, 5 * 60_000)));
  const made = await runBooty(['tokens', 'add', 'fleet', '--database', pg.socketUrl('booty')]);
  assert.equal(made.status, 0, made.err);
  const token = made.out.trim();
  lb = await startHaproxy({ netns: net.core, listen: '0.0.0.0:3000', backends: ['127.0.0.1:3001', '127.0.0.1:3002'] });
  await lb.waitUp();
  const api = `http://${net.mgmtCoreIp}:3000`;
  const op = (path: string, init: { method?: string; body?: unknown } = {}) => fetch(`${api}${path}`, {
    method: init.method ?? 'GET', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const imageUrl = (rack: number) => `http://${racks[rack - 1].coreIp}:3000/images/${IMAGE}`;
  const psql = (sql: string) => execFileSync('runuser', ['-u', 'postgres', '--', join(PG_BIN, 'psql'), '-h', pg!.socketDir, '-p', String(pg!.port), '-U', 'postgres', '-d', 'booty',
    '-At', '-F', '|', '-v', 'ON_ERROR_STOP=1', '-c', sql]).toString().trim().split('\n').filter((l) => l !== '').map((l) => l.split('|'));

  const runPhase = async (phase: string, phaseNo: number): Promise<RunResult> => {
    const p2p = phase !== 'unicast' && phase !== 'single';
    const members = phase === 'single' ? [agents[0][0]] : agents.flat();
    const macOf = (m: FleetMember) => `52:54:00:96:${phaseNo}${m.rack}:${(members.indexOf(m) + 1).toString(16).padStart(2, '0')}`;
    // the operator sets each machine a one-shot deploy action; the machine asks for it (as the
    // agent does at boot) and gets it
    for (const m of members) {
      const put = await op(`/api/machines/${macOf(m)}/action`, { method: 'PUT', body: { action: 'deploy', image: imageUrl(m.rack), ...(p2p ? { p2p: {} } : {}) } });
      assert.equal(put.status, 200, await put.text());
      const served = await (await fetch(`${api}/${macOf(m)}`)).json() as { booty?: { action: string }; action?: string };
      assert.equal(served.booty?.action ?? served.action, 'deploy', `${m.name}: its action`);
    }
    const disks = new Map(members.map((m) => [m, join(dir, `${phase}-${m.name}.disk`)]));
    for (const d of disks.values()) await writeFile(d, '');
    // each rack's QEMU guest: the same one-shot deploy, asked for by the agent itself at boot;
    // "grow": false: the image is a bare ext4 (no partition table), which grow refuses (the run
    // would fail), and so the disk stays exactly the image followed by the zeros it had
    const guests = !GUEST_RUNS.includes(phase) ? [] : racks.map((r) => ({
      rack: r.index, name: `r${r.index}guest`, mac: `52:54:00:96:${phaseNo}${r.index}:fe`, disk: join(dir, `${phase}-r${r.index}guest.disk`),
    }));
    for (const g of guests) {
      const put = await op(`/api/machines/${g.mac}/action`, { method: 'PUT', body: { action: 'deploy', image: imageUrl(g.rack), ...(p2p ? { p2p: {} } : {}), grow: false, after: 'poweroff' } });
      assert.equal(put.status, 200, await put.text());
      const served = await (await fetch(`${api}/${g.mac}`)).json() as { booty?: { action: string }; action?: string };
      assert.equal(served.booty?.action ?? served.action, 'deploy', `${g.name}: its action`);
      await writeFile(g.disk, '');
      await truncate(g.disk, rawBytes + GUEST_DISK_SPARE);
    }
    const events: string[] = [];
    const before = racks.map((r) => net!.originTxBytes(r.index));
    const load = [loadavg()[0]];
    const started = performance.now();
    const at = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
    // the guests power on with everything else; a guest's failure is recorded, not thrown, so it
    // is judged below with the agents
    const guestRuns = guests.map(async (g): Promise<GuestRan> => {
      let vm: Vm | undefined;
      try {
        vm = await bootRackGuest({
          name: `fleet-${phase}-${g.name}`, port: guestPorts[g.rack - 1], mac: g.mac, disk: g.disk, kernel: initramfs!.kernel, initrd: initramfs!.initrd,
          serverUrl: `http://${racks[g.rack - 1].coreIp}:3000`, credential: agentCredential(secret, g.mac),
        });
        guestVms.add(vm);
        const seen = (re: RegExp) => vm!.waitFor(re, 30 * 60_000).then(() => (performance.now() - started) / 1000, () => undefined);
        const [initAt, offAt] = [seen(/booty: \/init: node \S+ started as PID 1/), seen(/reboot: Power down/)];
        const exit = await vm.waitExit(30 * 60_000);
        return { ...g, seconds: (performance.now() - started) / 1000, initAt: await initAt, offAt: await offAt, exit, console: vm.output };
      } catch (e) {
        await vm?.kill();
        return { ...g, seconds: (performance.now() - started) / 1000, exit: { code: null, signal: null }, console: vm?.output ?? '', error: String(e) };
      } finally {
        if (vm !== undefined) guestVms.delete(vm);
      }
    });
    const seedProcs = p2p ? seeds.map((s) => net!.spawnIn(s.ns, booty, ['rack', '--image', imageUrl(s.rack), '--dir', join(dir, `seed-${phase}-${s.rack}`), '--token', token])) : [];
    const seedRuns = seedProcs.map((c) => collect(c, started, 30 * 60_000));
    const deployArgs = (m: FleetMember) => ['deploy', '--image', imageUrl(m.rack), '--disk', disks.get(m)!, '-q', '--report', `http://${racks[m.rack - 1].coreIp}:3000`, '--mac', macOf(m),
      '--token', agentCredential(secret, macOf(m)), ...(p2p ? ['--p2p', '--p2p-stall-timeout', phase === 'faults' ? '15s' : '10s'] : [])];
    const procs = new Map(members.map((m) => [m, net!.spawnIn(m.ns, booty, deployArgs(m))]));
    const runs = new Map(members.map((m) => [m, collect(procs.get(m)!, started, 30 * 60_000)]));
    const restarted = new Map<FleetMember, Promise<Ran>>();
    let sampler: NodeJS.Timeout | undefined;
    const loadSampler = setInterval(() => load.push(loadavg()[0]), 5000);
    if (phase === 'faults') {
      const origin = (r: number) => net!.originTxBytes(r) - before[r - 1];
      const done = new Set<string>();
      let killedReplica = -1;
      sampler = setInterval(() => {
        const victim = agents[1][0];
        if (!done.has('agent') && origin(2) >= 0.2 * imageBytes) {
          done.add('agent');
          procs.get(victim)!.kill('SIGKILL');
          events.push(`${at()}: ${victim.name} SIGKILLed (rack 2 at ${mb(origin(2))}), started again`);
          // its disk is a file: empty, it grows; with bytes, it is a disk of that size. What the killed
          // process wrote would make it a fixed 'disk' smaller than the image: give the new one an empty file
          restarted.set(victim, runs.get(victim)!.then(async () => { await truncate(disks.get(victim)!, 0); return collect(net!.spawnIn(victim.ns, booty, deployArgs(victim)), started, 30 * 60_000); }));
        }
        if (!done.has('replica') && origin(1) + origin(2) >= 0.3 * imageBytes * RACKS) {
          done.add('replica');
          // the replica holding the racks' trackers (haproxy hashes /p2p/auto/announce to one)
          const log = lb!.log();
          killedReplica = (log.match(/trackers\/r2/g)?.length ?? 0) > (log.match(/trackers\/r1/g)?.length ?? 0) ? 1 : 0;
          replicas[killedReplica].kill('SIGKILL');
          events.push(`${at()}: replica ${killedReplica + 1} (the trackers' one) SIGKILLed at ${mb(origin(1) + origin(2))} of ${mb(imageBytes * RACKS)}`);
        }
        if (!done.has('seed') && origin(1) >= 0.5 * imageBytes) {
          done.add('seed');
          seedProcs[0].kill('SIGKILL');
          events.push(`${at()}: rack 1's seed SIGKILLed at ${mb(origin(1))}`);
        }
        if (done.size === 3) clearInterval(sampler);
      }, 100);
    }
    const ran = new Map<FleetMember, Ran>();
    for (const m of members) ran.set(m, await runs.get(m)!);
    const again = new Map<FleetMember, Ran>();
    for (const [m, p] of restarted) again.set(m, await p);
    const agentsSeconds = Math.max(...members.map((m) => (again.get(m) ?? ran.get(m)!).seconds));
    const guestsRan = await Promise.all(guestRuns);
    clearInterval(sampler);
    clearInterval(loadSampler);
    const seconds = (performance.now() - started) / 1000;
    const origin = racks.map((r, i) => net!.originTxBytes(r.index) - before[i]);
    for (const s of seedProcs) s.kill('SIGTERM');
    const seedsRan = await Promise.all(seedRuns);
    // BOOTY_FLEET_LOG_DIR: every agent's and seed's whole log, for reading a stall afterwards
    const logDir = process.env.BOOTY_FLEET_LOG_DIR;
    if (logDir !== undefined && logDir !== '') {
      await mkdir(logDir, { recursive: true });
      for (const m of members) await writeFile(join(logDir, `${phase}-${m.name}.log`), `${ran.get(m)!.err}${again.has(m) ? `\n--- started again ---\n${again.get(m)!.err}` : ''}`);
      for (const [i, s] of seedsRan.entries()) await writeFile(join(logDir, `${phase}-seed${i + 1}.log`), s.err);
    }
    if (phase === 'faults') {
      assert.equal(events.length, 3, `all three faults happened: ${events.join('; ')}`);
      assert.equal(seedsRan[0].signal, 'SIGKILL', 'rack 1\'s seed was killed before it had the whole image');
    }

    for (const m of members) {
      const r = again.get(m) ?? ran.get(m)!;
      assert.equal(r.code, 0, `${phase} ${m.name}: exit ${r.code}\n${r.err.slice(-3000)}\nseed:\n${seedsRan[m.rack - 1]?.err.slice(-1500) ?? ''}`);
      assert.equal(await sha256OfFile(disks.get(m)!), rawSha, `${phase} ${m.name}: the disk is not the image`);
      await rm(disks.get(m)!);
    }
    for (const g of guestsRan) {
      const said = `${phase} ${g.name} (QEMU, console in .cache/test-logs/fleet-${phase}-${g.name}.log)`;
      assert.equal(g.error, undefined, `${said}: ${g.error}`);
      assert.doesNotMatch(g.console, /BOOTY FAILED|Kernel panic/, `${said}: the agent failed:\n${g.console.slice(-4000)}`);
      assert.equal(g.exit.code, 0, `${said}: QEMU ended ${JSON.stringify(g.exit)}:\n${g.console.slice(-3000)}`);
      assert.match(g.console, /reboot: Power down/, `${said}: the agent did not power off as its action said`);
      // its own DHCP client got its address from its rack's dnsmasq, in the rack's subnet
      assert.match(dhcp[g.rack - 1].log(), new RegExp(`DHCPACK\\(eth0\\) ${dhcp[g.rack - 1].prefix.replaceAll('.', '\\.')}\\.\\d+ ${g.mac}`), `${said}: no lease from the rack's dnsmasq`);
      if (p2p) assert.match(g.console, /booty: p2p: \d+ bytes from peers, \d+ from the origin/, `${said}: the agent did not deploy through the swarm`);
      assert.equal(await sha256OfFileHead(g.disk, rawBytes), rawSha, `${said}: the disk's first ${rawBytes} bytes are not the image`);
      assert.ok(await zeroFrom(g.disk, rawBytes), `${said}: something was written after the image`);
      await rm(g.disk);
    }
    // what the server recorded (PostgreSQL, read with psql): per machine one run ended ok, none
    // failed, the one-shot action consumed; and both replicas' answer to the machine is "none"
    const rows = psql('SELECT mac, ok FROM runs');
    const consumed = new Map(psql('SELECT mac, one_shot_done FROM machines').map(([mac, done]) => [bareMac(mac), done]));
    const machines = [...members.map((m) => ({ name: m.name, mac: macOf(m), restarted: again.has(m) })), ...guests.map((g) => ({ name: g.name, mac: g.mac, restarted: false }))];
    for (const m of machines) {
      const mine = rows.filter(([mac]) => bareMac(mac) === bareMac(m.mac));
      const oks = mine.filter(([, ok]) => ok === '1').length;
      const failed = mine.filter(([, ok]) => ok === '0').length;
      assert.equal(oks, 1, `${phase} ${m.name}: ${oks} runs ended ok at the server (${JSON.stringify(mine)})`);
      assert.equal(failed, 0, `${phase} ${m.name}: ${failed} runs failed at the server`);
      // a machine whose agent was killed and started again may have one more run: the interrupted
      // one, without a result (if its first report got through before the kill)
      assert.ok(mine.length === 1 || (m.restarted && mine.length === 2 && mine.some(([, ok]) => ok === '')), `${phase} ${m.name}: runs ${JSON.stringify(mine)}`);
      assert.ok((consumed.get(bareMac(m.mac)) ?? '') !== '', `${phase} ${m.name}: its one-shot action is not recorded consumed`);
      for (let i = 0; i < 2; i++) {
        const served = await (await fetch(`${api}/${m.mac}`)).json() as { booty?: { action: string }; action?: string };
        assert.equal(served.booty?.action ?? served.action, 'none', `${phase} ${m.name}: the consumed one-shot is served again`);
      }
    }
    return { phase, seconds, agentsSeconds, origin, agents: members.map((m) => ({ member: m, mac: macOf(m), ran: ran.get(m)!, restarted: again.get(m) })), guests: guestsRan, events, load };
  };

  const results: RunResult[] = [];
  for (const [i, phase] of ['single', 'p2p', 'unicast', 'faults'].entries()) if (RUNS.includes(phase)) results.push(await runPhase(phase, i + 1));

  const single = results.find((r) => r.phase === 'single');
  const originIn = (text: string) => /p2p: (\d+) bytes from peers, (\d+) from the origin/.exec(text);
  const originOf = (r: Ran) => originIn(r.err);
  const fromOrigin = (r: RunResult) => r.agents.reduce((s, a) => s + Number(originOf(a.restarted ?? a.ran)?.[2] ?? 0), 0) + r.guests.reduce((s, g) => s + Number(originIn(g.console)?.[2] ?? 0), 0);
  // a guest's own clock: seconds since its kernel started, from the agent's console lines
  // (the run's clock: when the kernel started, from the /init line's wall time less its stamp)
  const guestSays = (g: GuestRan) => {
    const init = consoleStamp(g.console, /booty: \/init: node \S+ started as PID 1/);
    const kernelAt = g.initAt === undefined || init === undefined ? undefined : g.initAt - init;
    const action = consoleStamp(g.console, /booty: step 5\/7: fetch the action/);
    const wrote = /booty: deploy: wrote \d+ bytes .* in ([\d.]+) s/.exec(g.console);
    const done = consoleStamp(g.console, /booty: deploy: wrote /);
    const p = originIn(g.console);
    const s1 = (n: number | undefined) => n?.toFixed(1) ?? '?';
    return `${g.name} ${g.seconds.toFixed(1)} s: QEMU start to kernel ${s1(kernelAt)} s; kernel start to /init ${s1(init)} s, to action ${s1(action)} s, to deployed ${s1(done)} s (deploy ${wrote?.[1] ?? '?'} s${p === null ? '' : `: ${mb(Number(p[1]))} peers, ${mb(Number(p[2]))} origin`}); power down at ${s1(g.offAt)} s`;
  };
  const lines = [
    `image: ${mb(imageBytes)} zstd of a ${IMAGE_MIB} MiB ext4 filesystem of real files; ${RACKS} racks x (${AGENTS} agents + 1 seed${GUEST_RUNS.length === 0 ? '' : ` + 1 QEMU guest in ${GUEST_RUNS.join(', ')} (${accel}, 1 vCPU, the initramfs agent)`}); uplinks ${UPLINK_MBIT} Mbit/s, agent links ${LINK_MBIT} Mbit/s (tc tbf); 2 replicas on PostgreSQL behind haproxy`,
    '| run | machines | wall time (all done) | agents in namespaces done | x one machine | origin bytes, rack 1 / rack 2 | x image per rack | from the origin by agents (fallback) | load average (1 min) during |',
    '|---|---|---|---|---|---|---|---|---|',
    ...results.map((r) => `| ${r.phase} | ${r.agents.length}${r.guests.length === 0 ? '' : ` + ${r.guests.length} QEMU`} | ${r.seconds.toFixed(1)} s | ${r.agentsSeconds.toFixed(1)} s | ${single === undefined ? '?' : (r.seconds / single.seconds).toFixed(2)} | ${r.origin.map(mb).join(' / ')} | ${r.origin.map((o) => (o / imageBytes).toFixed(2)).join(' / ')} | ${mb(fromOrigin(r))} | ${Math.min(...r.load).toFixed(1)}-${Math.max(...r.load).toFixed(1)} |`),
    ...results.filter((r) => r.guests.length > 0).map((r) => `${r.phase} guests: ${r.guests.map(guestSays).join('; ')}`),
    ...results.filter((r) => r.events.length > 0).map((r) => `${r.phase}: ${r.events.join('; ')}`),
    ...results.filter((r) => r.phase !== 'unicast' && r.phase !== 'single').map((r) => `${r.phase} per agent: ${r.agents.map((a) => { const m = originOf(a.restarted ?? a.ran); return `${a.member.name} ${(a.restarted ?? a.ran).seconds.toFixed(1)} s${m === null ? '' : ` (${mb(Number(m[1]))} peers, ${mb(Number(m[2]))} origin)`}${a.restarted === undefined ? '' : ' [restarted]'}`; }).join('; ')}`),
    // for whoever reads the figures: what an agent that read most of the image from the origin said of its swarm
    ...results.flatMap((r) => r.agents.filter((a) => Number(originOf(a.restarted ?? a.ran)?.[2] ?? 0) > imageBytes / 2)
      .map((a) => `${r.phase} ${a.member.name}, mostly from the origin: ${(a.restarted ?? a.ran).err.split('\n').filter((l) => /p2p|tracker|peer/.test(l)).slice(0, 6).join(' | ')}`)),
    ...results.flatMap((r) => r.guests.filter((g) => Number(originIn(g.console)?.[2] ?? 0) > imageBytes / 2)
      .map((g) => `${r.phase} ${g.name}, mostly from the origin: ${g.console.split('\n').filter((l) => /p2p|tracker|peer/.test(l)).slice(0, 6).join(' | ')}`)),
  ];
  const table = lines.join('\n');
  t.diagnostic(table);
  process.stdout.write(`\n${table}\n`);

  for (const r of results) {
    if (r.phase === 'p2p') for (const [i, o] of r.origin.entries()) assert.ok(o <= 1.1 * imageBytes, `peer to peer: the origin sent ${o} bytes into rack ${i + 1}, more than 1.1 x the image (${imageBytes})`);
    if (r.phase === 'unicast') {
      for (const [i, o] of r.origin.entries()) {
        const machines = AGENTS + r.guests.filter((g) => g.rack === i + 1).length;
        assert.ok(o >= machines * imageBytes, `unicast: rack ${i + 1}'s uplink counter saw ${o} bytes, less than ${machines} images: it does not count what it should`);
      }
    }
  }
  for (const c of replicas) c.kill('SIGTERM');
  await Promise.all(replicaLogs);
});
