// LLDP neighbours against a real speaker: Debian's lldpd plays the switch in one network
// namespace, on one end of a veth pair; booty's listener (src/inventory/lldp.ts: a raw AF_PACKET
// socket through koffi, the LLDPDU parser) runs in another namespace on the other end, as the
// agent does, in a child process (a socket belongs to the namespace it was made in). What it
// heard must be what lldpd says it sends: `lldpcli show chassis` and `show interfaces`.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';
import type { LldpNeighbor } from '../../src/net/lldp/lldpdu.ts';

const have = (cmd: string) => { try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true; } catch { return false; } };
const isRoot = process.getuid?.() === 0;
const skip = !isRoot ? skipUnlessPresent(false, 'needs root (network namespaces, veth, AF_PACKET)')
  : skipUnlessPresent(have('lldpd') && have('lldpcli'), 'needs lldpd and lldpcli (bash scripts/host-deps.sh)');

const repo = path.resolve(import.meta.dirname, '..', '..');
const id = `${process.pid % 100000}`;
const sw = `booty-lldp-sw${id}`;
const host = `booty-lldp-h${id}`;
const swIf = `bls${id}`;
const hostIf = `blh${id}`;
const ip = (...a: string[]) => execFileSync('ip', a, { stdio: ['ignore', 'pipe', 'pipe'] });

describe('LLDP: booty\'s listener hears Debian\'s lldpd', { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-lldp-'));
  const sock = path.join(dir, 'lldpd.sock');
  let lldpd: ChildProcess | undefined;
  const lldpcli = (...a: string[]) => execFileSync('ip', ['netns', 'exec', sw, 'lldpcli', '-u', sock, ...a], { encoding: 'utf8' });

  before(async () => {
    fs.chmodSync(dir, 0o755); // lldpd drops to its own user
    ip('netns', 'add', sw);
    ip('netns', 'add', host);
    ip('link', 'add', swIf, 'netns', sw, 'type', 'veth', 'peer', 'name', hostIf, 'netns', host);
    ip('-n', sw, 'link', 'set', swIf, 'up');
    ip('-n', host, 'link', 'set', hostIf, 'up');
    lldpd = spawn('ip', ['netns', 'exec', sw, 'lldpd', '-d', '-u', sock, '-I', swIf, '-S', 'booty test switch'], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(fs.existsSync(sock), 'lldpd started');
    // a switch's names: the system name, the port id as its interface name, a port description
    lldpcli('configure', 'system', 'hostname', 'booty-tor-7');
    lldpcli('configure', 'lldp', 'portidsubtype', 'ifname');
    lldpcli('configure', 'ports', swIf, 'lldp', 'portdescription', 'rack7 port 12');
    // the LLDPDU lldpd sends at its start (before the names above) is out before the listener starts
    await new Promise((r) => setTimeout(r, 2000));
  });
  after(() => {
    lldpd?.kill();
    for (const ns of [sw, host]) { try { ip('netns', 'del', ns); } catch { /* already gone */ } }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('chassis id, port id, system name and port description match lldpcli', async (t) => {
    const script = `import { listenLldp } from ${JSON.stringify(path.join(repo, 'src/inventory/lldp.ts'))};
      const heard = await listenLldp({ ifaces: [${JSON.stringify(hostIf)}], windowMs: 20000, log: { debug() {}, info: (m) => console.error(m), warn: (m) => console.error(m) } });
      console.log(JSON.stringify(Object.fromEntries(heard)));`;
    const child = spawn('ip', ['netns', 'exec', host, process.execPath, '--disable-warning=ExperimentalWarning', '--input-type=module', '-e', script], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = ''; let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => { out += s; });
    child.stderr.setEncoding('utf8').on('data', (s: string) => { err += s; });
    const started = Date.now();
    await new Promise((r) => setTimeout(r, 1500));
    lldpcli('update'); // lldpd sends at once after a change, as a switch does on link up
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    assert.equal(code, 0, err);
    t.diagnostic(`listener: ${err.trim()} (${Date.now() - started} ms)`);
    const heard = (JSON.parse(out) as Record<string, LldpNeighbor>)[hostIf];
    assert.ok(heard !== undefined, `heard a neighbour on ${hostIf}: ${out} ${err}`);

    const chassis = (JSON.parse(lldpcli('-f', 'json', 'show', 'chassis')) as { 'local-chassis': { chassis: Record<string, { id: { type: string; value: string }; descr: string; 'mgmt-ip'?: string | string[] }> } })['local-chassis'].chassis;
    const [name, c] = Object.entries(chassis)[0];
    const ports = (JSON.parse(lldpcli('-f', 'json', 'show', 'interfaces')) as { lldp: { interface: Record<string, { port: { id: { type: string; value: string }; descr: string }; ttl: { ttl: string } }> } }).lldp.interface[swIf];
    assert.equal(heard.systemName, name);
    assert.equal(heard.systemName, 'booty-tor-7');
    assert.equal(heard.chassisIdSubtype, c.id.type);
    assert.equal(heard.chassisId, c.id.value);
    assert.equal(heard.systemDescription, c.descr);
    assert.equal(heard.portIdSubtype === 'interface-name' ? 'ifname' : heard.portIdSubtype, ports.port.id.type);
    assert.equal(heard.portId, ports.port.id.value);
    assert.equal(heard.portId, swIf);
    assert.equal(heard.portDescription, ports.port.descr);
    assert.equal(heard.portDescription, 'rack7 port 12');
    assert.equal(heard.ttl, Number(ports.ttl.ttl));
    const mgmt = [c['mgmt-ip'] ?? []].flat();
    assert.deepEqual(heard.managementAddresses ?? [], mgmt);
    const mac = spawnSync('ip', ['-n', sw, '-j', 'link', 'show', swIf], { encoding: 'utf8' }).stdout;
    assert.equal(heard.sourceMac, (JSON.parse(mac) as { address: string }[])[0].address, 'sent from the switch port\'s MAC');
  });

  it('nothing spoken: the listener gives up at the end of its window with nothing heard', async () => {
    lldpd?.kill();
    await new Promise((r) => setTimeout(r, 500));
    const script = `import { listenLldp } from ${JSON.stringify(path.join(repo, 'src/inventory/lldp.ts'))};
      const t0 = Date.now();
      const heard = await listenLldp({ ifaces: [${JSON.stringify(hostIf)}], windowMs: 2000, log: { debug() {}, info() {}, warn: (m) => console.error(m) } });
      console.log(JSON.stringify({ n: heard.size, ms: Date.now() - t0 }));`;
    const r = spawnSync('ip', ['netns', 'exec', host, process.execPath, '--disable-warning=ExperimentalWarning', '--input-type=module', '-e', script], { cwd: repo, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { n: number; ms: number };
    assert.equal(res.n, 0);
    assert.ok(res.ms >= 2000, 'it listened for its whole window');
  });
});

