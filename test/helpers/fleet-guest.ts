// QEMU guests in a rack of a fleet (test/helpers/fleet-net.ts): the real initramfs agent as PID 1,
// booted directly (our kernel and initramfs, the agent's command line: README "Kernel command
// line") on a tap of the rack's bridge, getting its address with its own DHCP client from real
// dnsmasq that runs next to the rack's seed (README "Peer to peer inside a rack": `booty rack`
// next to the rack's dnsmasq). The lease range lies in the rack's /24, so the trackers put the
// guest in the same `auto` rack as the seed and the namespaced agents; the guest reaches the core
// (haproxy) on that subnet through the rack's uplink, so whatever it fetches from the origin is
// on the uplink's counter like theirs.
import type { ChildProcess } from 'node:child_process';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { waitForOutput } from './child-output.ts';
import type { FleetMember, FleetNet, FleetRack } from './fleet-net.ts';
import { startVm, type AfterHook, type Vm } from './qemu.ts';

export interface RackDhcp {
  /** what dnsmasq logged so far (--log-dhcp: every DISCOVER/OFFER/REQUEST/ACK with the MAC) */
  log(): string;
  /** the first three octets of the rack's subnet */
  prefix: string;
  child: ChildProcess;
}

/**
 * dnsmasq in `host`'s namespace (the rack's service machine: the seed's), on its eth0, leasing
 * <prefix>.50-.99 of the rack's /24 for 600 s, the core's address on the uplink as router. DNS off
 * (port 0). Killed with the fleet's namespaces (FleetNet.close).
 */
export async function startRackDnsmasq(net: FleetNet, rack: FleetRack, host: FleetMember, dir: string): Promise<RackDhcp> {
  const prefix = host.ip.split('.').slice(0, 3).join('.');
  const child = net.spawnIn(host.ns, 'dnsmasq', [
    '--no-daemon', '--conf-file=/dev/null', '--port=0', '--bind-interfaces', '--interface=eth0', '--except-interface=lo',
    `--dhcp-range=${prefix}.50,${prefix}.99,600`, `--dhcp-option=option:router,${rack.coreIp}`,
    `--dhcp-leasefile=${join(dir, `dnsmasq-rack${rack.index}.leases`)}`, `--pid-file=${join(dir, `dnsmasq-rack${rack.index}.pid`)}`,
    '--log-facility=-', '--log-dhcp',
  ]);
  let log = '';
  child.stdout!.on('data', (s: Buffer) => { log += s.toString(); });
  child.stderr!.on('data', (s: Buffer) => { log += s.toString(); });
  await waitForOutput(child, /DHCP, IP range/, `rack ${rack.index}'s dnsmasq`, 15_000);
  return { log: () => log, prefix, child };
}

export interface RackGuestOptions {
  /** names the console log: .cache/test-logs/<name>.log */
  name: string;
  /** the rack's tap for it (FleetNet.addGuestPort) */
  port: { ns: string; tap: string };
  mac: string;
  /** a raw disk file: the guest's virtio disk (/dev/vda, the agent's choice) */
  disk: string;
  kernel: string;
  initrd: string;
  /** booty server as the rack reaches it (MYURL: actions and reports) */
  serverUrl: string;
  /** the machine's agent credential (booty.token=) */
  credential: string;
  memMiB?: number;
}

/**
 * Powers the guest on: the agent is /init, asks MYURL for its action by MAC and does it. A failure
 * powers off too (booty.onerror=poweroff, no countdown), so QEMU always ends; the caller tells the
 * two apart by the console and by what the server recorded.
 */
export function bootRackGuest(o: RackGuestOptions, t?: AfterHook): Promise<Vm> {
  return startVm({
    name: o.name, kernel: o.kernel, initrd: o.initrd, memMiB: o.memMiB ?? 1024,
    append: `console=ttyS0 quiet MYURL=${o.serverUrl} booty.token=${o.credential} booty.onerror=poweroff booty.countdown=0`,
    disks: [{ path: o.disk }], nic: { tap: o.port.tap, netns: o.port.ns, mac: o.mac },
  }, t);
}

/** Seconds since kernel start of the first agent console line matching re ("[  12.345] booty: ..."). */
export function consoleStamp(out: string, re: RegExp): number | undefined {
  const line = out.split('\n').find((l) => re.test(l));
  const m = line === undefined ? null : /^\[\s*(\d+\.\d+)\] booty:/.exec(line.trim());
  return m === null ? undefined : Number(m[1]);
}

/** True when every byte of `path` from `offset` to its end is zero (nothing was written there). */
export async function zeroFrom(path: string, offset: number): Promise<boolean> {
  const f = await open(path, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let at = offset; ;) {
      const { bytesRead } = await f.read(buf, 0, buf.length, at);
      if (bytesRead === 0) return true;
      for (let i = 0; i < bytesRead; i++) if (buf[i] !== 0) return false;
      at += bytesRead;
    }
  } finally {
    await f.close();
  }
}
