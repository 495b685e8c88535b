// The kernel's and dracut's `ip=` parameter and PXELINUX's `BOOTIF=`, parsed into typed values.
// Forms accepted (IPv4 only):
//   ip=dhcp | on | any | both | bootp | single-dhcp         DHCP on the chosen NIC
//   ip=off | none                                            no network
//   ip=<iface>:dhcp[:<mtu>[:<mac>]]                          DHCP on that NIC (dracut)
//   ip=<client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>[:<dns0>[:<dns1>[:<ntp>]]]
//   ip=<client>:<peer>:<gw>:<netmask>:<hostname>:<device>:<autoconf>[:<mtu>[:<mac>]]   (dracut)
// <client> may be `10.0.0.5/24`; <netmask> may be dotted or a prefix length; empty fields are
// allowed as in the kernel's syntax. With autoconf dhcp/on/any the static fields only name the
// device and hostname (the kernel does the same).
import { BootyError } from '../util/errors.ts';
import { isIpv4, maskToPrefix, prefixToMask } from './dhcp/codec.ts';

export type IpParam =
  | { mode: 'off' }
  | { mode: 'dhcp'; iface?: string; hostname?: string; mtu?: number; mac?: string }
  | {
    mode: 'static'; iface?: string; address: string; prefix: number; gateway?: string;
    server?: string; hostname?: string; dns: string[]; mtu?: number; mac?: string;
  };

const DHCP_WORDS = new Set(['dhcp', 'on', 'any', 'both', 'bootp', 'single-dhcp']);
const OFF_WORDS = new Set(['off', 'none', 'static', '']);
const UNSUPPORTED = new Set(['dhcp6', 'auto6', 'either6', 'link6', 'ibft', 'rarp', 'link-local']);

function bad(value: string, why: string): BootyError {
  return new BootyError({
    stage: 'config', code: 'bad-ip-param',
    message: `ip=${value}: ${why}`,
    hint: 'see kernel-cmdline/ for the ip= forms booty understands',
  });
}

function classfulPrefix(ip: string): number {
  const first = Number(ip.split('.')[0]);
  return first < 128 ? 8 : first < 192 ? 16 : 24;
}

function parseMtu(value: string, s: string): number | undefined {
  if (s === '') return undefined;
  if (!/^\d+$/.test(s) || Number(s) < 68 || Number(s) > 65535) throw bad(value, `MTU '${s}' is not a number between 68 and 65535`);
  return Number(s);
}

function parseMac(value: string, groups: string[]): string | undefined {
  if (groups.length === 0 || (groups.length === 1 && groups[0] === '')) return undefined;
  if (groups.length !== 6 || groups.some((g) => !/^[0-9a-fA-F]{2}$/.test(g))) {
    throw bad(value, `MAC '${groups.join(':')}' is not six hex pairs`);
  }
  return groups.join(':').toLowerCase();
}

function checkIp(value: string, field: string, s: string): string | undefined {
  if (s === '') return undefined;
  if (!isIpv4(s)) throw bad(value, `${field} '${s}' is not an IPv4 address`);
  return s;
}

function checkIface(value: string, s: string): string | undefined {
  if (s === '') return undefined;
  // IFNAMSIZ is 16 with the NUL; names cannot hold '/' or whitespace
  if (s.length > 15 || /[\s/]/.test(s)) throw bad(value, `device '${s}' is not an interface name`);
  return s;
}

export function parseIpParam(value: string): IpParam {
  const v = value.trim();
  if (v.includes('[')) throw bad(value, 'IPv6 forms are not supported; use an IPv4 form or dhcp');
  const lower = v.toLowerCase();
  if (DHCP_WORDS.has(lower)) return { mode: 'dhcp' };
  if (OFF_WORDS.has(lower) && !v.includes(':')) return { mode: 'off' };
  if (UNSUPPORTED.has(lower)) throw bad(value, `'${v}' is not supported (IPv4 dhcp or static only)`);

  const f = v.split(':');
  // dracut: <iface>:<autoconf>[:<mtu>[:<mac>]]
  // (an interface name is not made of digits and dots: '10.0.0.300:' is a bad address, not a NIC)
  const word1 = (f[1] ?? '').toLowerCase();
  if (f.length >= 2 && !/^[\d./]*$/.test(f[0]) && word1 !== '' && (DHCP_WORDS.has(word1) || UNSUPPORTED.has(word1) || OFF_WORDS.has(word1))) {
    const auto = f[1].toLowerCase();
    if (UNSUPPORTED.has(auto)) throw bad(value, `autoconf '${f[1]}' is not supported (IPv4 dhcp or static only)`);
    if (!DHCP_WORDS.has(auto)) throw bad(value, `'${f[0]}:${f[1]}' gives no address: a static setup needs <client-ip>:...`);
    return { mode: 'dhcp', iface: checkIface(value, f[0]), mtu: parseMtu(value, f[2] ?? ''), mac: parseMac(value, f.slice(3)) };
  }

  if (f.length > 16) throw bad(value, 'too many fields');
  const [clientField = '', server = '', gw = '', mask = '', hostname = '', device = '', autoconfField = ''] = f;
  const autoconf = autoconfField.toLowerCase();
  if (UNSUPPORTED.has(autoconf)) throw bad(value, `autoconf '${autoconfField}' is not supported (IPv4 dhcp or static only)`);
  if (!DHCP_WORDS.has(autoconf) && !OFF_WORDS.has(autoconf)) throw bad(value, `autoconf '${autoconfField}' is not one of dhcp, on, any, off, none`);
  const iface = checkIface(value, device);
  if (hostname.length > 253 || /[\s]/.test(hostname)) throw bad(value, `hostname '${hostname}' is not a host name`);

  // Fields after autoconf: kernel dns0:dns1:ntp, or dracut mtu:mac
  const rest = f.slice(7);
  let dns: string[] = [];
  let mtu: number | undefined;
  let mac: string | undefined;
  if (rest.length > 0) {
    if (isIpv4(rest[0]) || (rest[0] === '' && rest.length <= 3 && rest.slice(1).every((x) => x === '' || isIpv4(x)))) {
      dns = rest.slice(0, 2).filter((x) => x !== '').map((x) => checkIp(value, 'DNS server', x) as string);
    } else {
      mtu = parseMtu(value, rest[0]);
      mac = parseMac(value, rest.slice(1));
    }
  }

  if (DHCP_WORDS.has(autoconf)) {
    return { mode: 'dhcp', iface, hostname: hostname || undefined, mtu, mac };
  }
  if (clientField === '') {
    if (autoconfField === '' && f.length === 1) return { mode: 'off' };
    // Kernel: no client address and autoconf off means no configuration at all; empty autoconf means "any".
    return autoconf === '' ? { mode: 'dhcp', iface, hostname: hostname || undefined, mtu, mac } : { mode: 'off' };
  }

  const [address, prefixText] = clientField.split('/');
  if (!isIpv4(address)) throw bad(value, `client address '${clientField}' is not an IPv4 address`);
  let prefix: number;
  if (prefixText !== undefined) {
    if (!/^\d{1,2}$/.test(prefixText) || Number(prefixText) > 32) throw bad(value, `prefix length '/${prefixText}' is not 0-32`);
    prefix = Number(prefixText);
  } else if (mask !== '') {
    if (/^\d{1,2}$/.test(mask) && Number(mask) <= 32) prefix = Number(mask);
    else {
      if (!isIpv4(mask)) throw bad(value, `netmask '${mask}' is neither dotted nor a prefix length`);
      try { prefix = maskToPrefix(mask); } catch { throw bad(value, `netmask '${mask}' is not contiguous`); }
    }
  } else {
    prefix = classfulPrefix(address);
  }
  return {
    mode: 'static', iface, address, prefix,
    gateway: checkIp(value, 'gateway', gw),
    server: checkIp(value, 'server', server),
    hostname: hostname || undefined,
    dns, mtu, mac,
  };
}

/** The netmask of a static ip= in dotted form (for logs and post-deploy config). */
export function ipParamNetmask(p: { prefix: number }): string {
  return prefixToMask(p.prefix);
}

/**
 * BOOTIF as PXELINUX (IPAPPEND 2) and iPXE write it: `01-aa-bb-cc-dd-ee-ff`, where 01 is the ARP
 * hardware type (ethernet). A plain MAC with ':' or '-' is accepted too. Returns `aa:bb:...:ff`.
 */
export function parseBootif(value: string): string {
  const groups = value.trim().split(/[-:]/);
  const err = () => new BootyError({
    stage: 'config', code: 'bad-bootif',
    message: `BOOTIF=${value}: expected 01-aa-bb-cc-dd-ee-ff (PXELINUX) or a MAC address`,
  });
  if (groups.some((g) => !/^[0-9a-fA-F]{2}$/.test(g))) throw err();
  if (groups.length === 7) {
    if (groups[0] !== '01') throw err();
    groups.shift();
  }
  if (groups.length !== 6) throw err();
  return groups.join(':').toLowerCase();
}
