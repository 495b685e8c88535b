// `booty net`: bring an interface up exactly the way the agent does (same NIC choice, DHCP client,
// rtnetlink calls, resolv.conf) and print the result. For debugging a PXE network on real
// hardware, and the entry the integration tests run inside a network namespace.
import { parseArgs } from 'node:util';
import { createLogger, stderrSink } from '../util/log.ts';
import { BootyError } from '../util/errors.ts';
import { bringUpNetwork } from '../net/configure.ts';
import type { Lease, NetworkHandle } from '../net/configure.ts';
import { parseBootif, parseIpParam } from '../net/ip-param.ts';
import type { IpParam } from '../net/ip-param.ts';
import { describeInterface, listInterfaces } from '../net/interfaces.ts';

const HELP = `usage: booty net [--iface NAME | --bootif MAC] [--dhcp | --ip IP=SYNTAX] [options]

Brings a network interface up the way the booty agent does and prints the result.

  --iface NAME          use this interface (default: BOOTIF's, else the first with carrier)
  --bootif MAC          choose the NIC by MAC (01-aa-bb-cc-dd-ee-ff or aa:bb:cc:dd:ee:ff)
  --dhcp                get an address by DHCP (default)
  --ip VALUE            kernel/dracut ip= syntax, e.g. 10.0.0.5::10.0.0.1:255.255.255.0::eth0:off
  --hold SECONDS        keep the lease (renewing it) for SECONDS, then release it and remove the
                        address; without --hold the interface stays configured and booty exits
  --resolv-conf PATH    write DNS servers here (default /etc/resolv.conf)
  --no-resolv-conf      do not write resolv.conf
  --link-timeout S      wait this long for the NIC and its carrier (default 30)
  --dhcp-timeout S      wait this long for a lease (default 90)
  --renew-retry-min S   shortest retransmission interval while renewing (default 10)
  --json                print events as JSON lines on stdout
  --list                list the interfaces and exit
  --debug               log every packet
`;

function seconds(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) {
    throw new BootyError({ stage: 'config', code: 'bad-argument', message: `--${name} '${v}' is not a number of seconds` });
  }
  return n;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      iface: { type: 'string' }, bootif: { type: 'string' }, dhcp: { type: 'boolean' }, ip: { type: 'string' },
      hold: { type: 'string' }, 'resolv-conf': { type: 'string' }, 'no-resolv-conf': { type: 'boolean' },
      'link-timeout': { type: 'string' }, 'dhcp-timeout': { type: 'string' }, 'renew-retry-min': { type: 'string' },
      json: { type: 'boolean' }, list: { type: 'boolean' }, debug: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) { process.stdout.write(HELP); return 0; }
  if (values.list) {
    for (const i of listInterfaces()) process.stdout.write(describeInterface(i) + '\n');
    return 0;
  }
  if (values.dhcp && values.ip !== undefined) {
    throw new BootyError({ stage: 'config', code: 'bad-argument', message: '--dhcp and --ip exclude each other' });
  }
  const ip: IpParam | undefined = values.ip !== undefined ? parseIpParam(values.ip) : undefined;
  const hold = seconds('hold', values.hold);
  const renewMin = seconds('renew-retry-min', values['renew-retry-min']);
  const linkTimeout = seconds('link-timeout', values['link-timeout']);
  const dhcpTimeout = seconds('dhcp-timeout', values['dhcp-timeout']);
  const log = createLogger({ level: values.debug ? 'debug' : 'info', sinks: [stderrSink('booty net')] });
  const out = (event: string, fields: Record<string, unknown>) => {
    if (values.json) process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
    else process.stdout.write(`${event}: ${Object.entries(fields).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`).join(' ')}\n`);
  };
  const leaseFields = (l: Lease) => ({
    address: l.address, prefix: l.prefix, gateway: l.gateway, dns: l.dns, server: l.serverId,
    leaseTime: l.leaseTime, t1: l.renewalTime, t2: l.rebindingTime,
  });

  const handle: NetworkHandle = await bringUpNetwork({
    iface: values.iface,
    bootif: values.bootif !== undefined ? parseBootif(values.bootif) : undefined,
    ip, log,
    linkTimeoutMs: linkTimeout !== undefined ? linkTimeout * 1000 : undefined,
    dhcpTimeoutMs: dhcpTimeout !== undefined ? dhcpTimeout * 1000 : undefined,
    resolvConf: values['no-resolv-conf'] ? false : values['resolv-conf'],
    dhcp: renewMin !== undefined ? { renewRetryMinMs: renewMin * 1000 } : undefined,
    onLeaseEvent: (event, l) => out(event, { iface: handle.iface, ...leaseFields(l) }),
  });
  out(handle.lease ? 'bound' : 'configured', {
    iface: handle.iface, mac: handle.mac, address: handle.address, prefix: handle.prefix, gateway: handle.gateway,
    dns: handle.dns, hostname: handle.hostname, ...(handle.lease ? leaseFields(handle.lease) : {}),
  });
  if (hold === undefined) {
    await handle.stop({ release: false, deconfigure: false });
    return 0;
  }
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, hold * 1000);
    const onSignal = () => { clearTimeout(timer); resolve(); };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  await handle.stop();
  out('stopped', { iface: handle.iface });
  return 0;
}
