// Debian's lldpd playing the switch port of a QEMU lab machine: a veth pair in the lab's
// namespace, one end in the lab's bridge, lldpd on the other; the bridge forwards LLDP's group
// address (01:80:c2:00:00:0e, which Linux bridges keep to themselves unless group_fwd_mask says)
// to the machine's tap. lldpcli reads back what lldpd sends, to compare with what booty heard.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

let counter = 0;

export interface LldpSpeaker {
  /** lldpcli -f json <args...>, parsed */
  json(...args: string[]): unknown;
  close(): void;
}

export async function startLldpSpeaker(ns: string, bridge: string, o: { systemName: string; portDescription: string; txIntervalS?: number }): Promise<LldpSpeaker> {
  const id = `${process.pid % 10000}${counter++}`;
  const inBridge = `lbr${id}`;
  const port = `lsp${id}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-lldpd-'));
  fs.chmodSync(dir, 0o755); // lldpd drops to its own user
  const sock = path.join(dir, 'lldpd.sock');
  const ip = (...a: string[]) => execFileSync('ip', ['-n', ns, ...a], { stdio: ['ignore', 'pipe', 'pipe'] });
  ip('link', 'add', inBridge, 'type', 'veth', 'peer', 'name', port);
  ip('link', 'set', inBridge, 'master', bridge);
  ip('link', 'set', inBridge, 'up');
  ip('link', 'set', port, 'up');
  ip('link', 'set', bridge, 'type', 'bridge', 'group_fwd_mask', String(1 << 0x0e));
  const lldpd: ChildProcess = spawn('ip', ['netns', 'exec', ns, 'lldpd', '-d', '-u', sock, '-I', port, '-S', 'booty lab switch'], { stdio: 'ignore' });
  for (let i = 0; i < 100 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
  if (!fs.existsSync(sock)) { lldpd.kill(); throw new Error('lldpd did not start (no control socket)'); }
  const cli = (...a: string[]) => execFileSync('ip', ['netns', 'exec', ns, 'lldpcli', '-u', sock, ...a], { encoding: 'utf8' });
  cli('configure', 'system', 'hostname', o.systemName);
  cli('configure', 'lldp', 'portidsubtype', 'ifname');
  cli('configure', 'ports', port, 'lldp', 'portdescription', o.portDescription);
  // a switch sends every 30 s; sooner here, so the agent's window surely holds one
  cli('configure', 'lldp', 'tx-interval', String(o.txIntervalS ?? 5));
  return {
    json: (...a) => JSON.parse(cli('-f', 'json', ...a)),
    close: () => {
      lldpd.kill();
      try { ip('link', 'del', inBridge); } catch { /* gone with the namespace */ }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
