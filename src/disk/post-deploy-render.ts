// Post-deploy settings (hostname, static network, nameservers, files) rendered into the files a
// deployed OS reads, in the formats it actually uses. Pure: given the settings, what the OS has
// (RootFacts) and how to recognise the NIC, planPostDeploy returns the files to write. The NIC is
// matched by MAC wherever the format allows: the initramfs names it eth0, the OS ens3 or enp1s0.
import net from 'node:net';
import type { NetworkSettings, PostDeploy } from '../config/action.ts';
import { BootyError } from '../util/errors.ts';

export interface RootFacts {
  /** /etc/netplan is a directory: netplan renders the network config (Ubuntu) */
  netplan: boolean;
  /** systemd-networkd is installed */
  networkd: boolean;
  /** /etc/network/interfaces exists (ifupdown) */
  ifupdown: boolean;
  /** /etc/NetworkManager is a directory */
  networkManager: boolean;
  /** systemd-resolved is installed */
  resolved: boolean;
  /** /etc/resolv.conf: a plain file we may rewrite, a symlink (resolved, resolvconf) we leave alone */
  resolvConf: 'file' | 'symlink' | 'absent';
  /** current /etc/hosts */
  hosts?: string;
  /** current /etc/network/interfaces */
  interfaces?: string;
}

export interface NicIdentity {
  /** MAC of the NIC the agent used; matched by MAC where the format allows */
  mac?: string;
  /** the NIC's name in the deployed OS (settings.network.interface) */
  osName?: string;
  /** its name in the initramfs (eth0): a guess for the OS, used only when nothing better is known */
  initramfsName?: string;
}

export interface FileWrite {
  /** absolute path inside the deployed root */
  path: string;
  content: string;
  mode: number;
}

export interface PostDeployPlan {
  writes: FileWrite[];
  warnings: string[];
}

const HEADER = 'written by booty at deploy time';

function invalid(message: string): BootyError {
  return new BootyError({
    stage: 'grow', code: 'post-deploy-invalid', message: `post-deploy: ${message}`,
    hint: 'the image is written and grown; fix the action and deploy again to apply the settings',
  });
}

export interface StaticAddress {
  cidr: string;
  ip: string;
  prefix: number;
  family: 4 | 6;
}

export function parseCidr(cidr: string): StaticAddress {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr.trim());
  if (m === null) throw invalid(`address "${cidr}" is not in CIDR form (like 172.16.1.126/24)`);
  const family = net.isIP(m[1]);
  const prefix = Number(m[2]);
  if (family === 0) throw invalid(`address "${cidr}": "${m[1]}" is not an IP address`);
  if (prefix > (family === 4 ? 32 : 128)) throw invalid(`address "${cidr}": prefix /${prefix} is too long`);
  return { cidr: `${m[1]}/${prefix}`, ip: m[1], prefix, family: family as 4 | 6 };
}

export function validHostname(h: string): boolean {
  if (h.length === 0 || h.length > 253) return false;
  return h.split('.').every((l) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l));
}

export function normalizeMac(mac: string): string {
  const hex = mac.toLowerCase().replace(/[^0-9a-f]/g, '');
  if (hex.length !== 12) throw invalid(`"${mac}" is not a MAC address`);
  return hex.match(/../g)!.join(':');
}

interface NetPlan {
  address?: StaticAddress;
  gateway?: string;
  dns: string[];
}

function checkNetwork(n: NetworkSettings): NetPlan {
  const address = n.address === undefined || n.address === '' ? undefined : parseCidr(n.address);
  const gateway = n.gateway === undefined || n.gateway === '' ? undefined : n.gateway.trim();
  if (gateway !== undefined) {
    const fam = net.isIP(gateway);
    if (fam === 0) throw invalid(`gateway "${gateway}" is not an IP address`);
    if (address !== undefined && fam !== address.family) throw invalid(`gateway ${gateway} and address ${address.cidr} are of different IP versions`);
  }
  const dns = (n.nameservers ?? []).map((s) => s.trim()).filter((s) => s !== '');
  for (const d of dns) if (net.isIP(d) === 0) throw invalid(`nameserver "${d}" is not an IP address`);
  return { address, gateway, dns };
}

// ---- renderers ---------------------------------------------------------------------------

export function renderHostname(hostname: string): string {
  return `${hostname}\n`;
}

/** /etc/hosts with the Debian-style 127.0.1.1 line naming this host; other lines kept. */
export function renderHosts(existing: string | undefined, hostname: string): string {
  const short = hostname.split('.')[0];
  const names = short === hostname ? hostname : `${hostname} ${short}`;
  const own = `127.0.1.1\t${names}`;
  if (existing === undefined || existing.trim() === '') {
    return `127.0.0.1\tlocalhost\n${own}\n\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n`;
  }
  const lines = existing.replace(/\n$/, '').split('\n').filter((l) => !/^\s*127\.0\.1\.1\s/.test(l));
  const at = lines.findIndex((l) => /^\s*127\.0\.0\.1\s/.test(l));
  lines.splice(at === -1 ? 0 : at + 1, 0, own);
  return lines.join('\n') + '\n';
}

export interface NicMatch {
  mac?: string;
  name?: string;
}

export function renderNetworkd(m: NicMatch, n: NetPlan): string {
  const out = [`# ${HEADER}`, '[Match]'];
  if (m.mac !== undefined) out.push(`MACAddress=${m.mac}`);
  else if (m.name !== undefined) out.push(`Name=${m.name}`);
  out.push('', '[Network]');
  if (n.address === undefined) out.push('DHCP=yes');
  else out.push(`Address=${n.address.cidr}`);
  if (n.gateway !== undefined) out.push(`Gateway=${n.gateway}`);
  for (const d of n.dns) out.push(`DNS=${d}`);
  return out.join('\n') + '\n';
}

export function renderNetplan(m: NicMatch, n: NetPlan): string {
  const id = m.mac !== undefined ? 'booty0' : (m.name as string);
  const out = [`# ${HEADER}`, 'network:', '  version: 2', '  ethernets:', `    ${id}:`];
  if (m.mac !== undefined) out.push('      match:', `        macaddress: "${m.mac}"`);
  if (n.address === undefined) {
    out.push('      dhcp4: true');
  } else {
    out.push('      dhcp4: false', '      dhcp6: false', '      addresses:', `        - "${n.address.cidr}"`);
  }
  if (n.gateway !== undefined) {
    // "to: 0.0.0.0/0" rather than "default": netplan before 0.104 knows only the former.
    out.push('      routes:', `        - to: "${net.isIPv6(n.gateway) ? '::/0' : '0.0.0.0/0'}"`, `          via: "${n.gateway}"`);
  }
  if (n.dns.length > 0) out.push('      nameservers:', '        addresses:', ...n.dns.map((d) => `          - "${d}"`));
  return out.join('\n') + '\n';
}

export function renderIfupdown(name: string, n: NetPlan): string {
  const family = n.address?.family === 6 ? 'inet6' : 'inet';
  const out = [`# ${HEADER}`, `auto ${name}`];
  if (n.address === undefined) {
    out.push(`iface ${name} ${family} dhcp`);
  } else {
    out.push(`iface ${name} ${family} static`, `    address ${n.address.cidr}`);
    if (n.gateway !== undefined) out.push(`    gateway ${n.gateway}`);
  }
  if (n.dns.length > 0) out.push(`    dns-nameservers ${n.dns.join(' ')}`);
  return out.join('\n') + '\n';
}

/**
 * /etc/network/interfaces with every stanza for `name` commented out (ifupdown refuses an
 * interface defined twice), and a `source` line for interfaces.d if it lacked one.
 */
export function disableIfupdownStanzas(existing: string, name: string): string {
  const lines = existing.replace(/\n$/, '').split('\n');
  const out: string[] = [];
  let inStanza = false;
  const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const stanzaStart = /^\s*(iface|mapping|auto|allow-[\w-]+|source|source-directory|rename)\b/;
  for (const line of lines) {
    if (stanzaStart.test(line)) inStanza = false;
    const own = new RegExp(`^\\s*iface\\s+${esc}\\s`).test(line);
    const autoLine = new RegExp(`^\\s*(auto|allow-[\\w-]+)\\s+(.*\\s)?${esc}(\\s|$)`).test(line);
    if (own) inStanza = true;
    if (own || inStanza || autoLine) {
      if (autoLine && !own) {
        // "auto lo eth0": drop only our name from the list.
        const rest = line.trim().split(/\s+/);
        const kept = rest.slice(1).filter((w) => w !== name);
        out.push(`# ${line}   # disabled by booty`);
        if (kept.length > 0) out.push(`${rest[0]} ${kept.join(' ')}`);
      } else {
        out.push(line.trim() === '' ? line : `# ${line}   # disabled by booty`);
      }
      continue;
    }
    out.push(line);
  }
  if (!out.some((l) => /^\s*source(-directory)?\s+\/etc\/network\/interfaces\.d/.test(l))) {
    out.push('', 'source /etc/network/interfaces.d/*');
  }
  return out.join('\n') + '\n';
}

export function renderNmKeyfile(m: NicMatch, n: NetPlan): string {
  const out = ['[connection]', 'id=booty', 'type=ethernet', 'autoconnect=true', 'autoconnect-priority=100'];
  if (m.mac === undefined && m.name !== undefined) out.push(`interface-name=${m.name}`);
  out.push('', '[ethernet]');
  if (m.mac !== undefined) out.push(`mac-address=${m.mac.toUpperCase()}`);
  const ip = (fam: 4 | 6) => {
    const sec = [`[ipv${fam}]`];
    if (n.address === undefined) sec.push('method=auto');
    else if (n.address.family === fam) {
      sec.push('method=manual', `address1=${n.address.cidr}${n.gateway === undefined ? '' : `,${n.gateway}`}`);
    } else sec.push(fam === 6 ? 'method=ignore' : 'method=disabled');
    const dns = n.dns.filter((d) => (net.isIPv6(d) ? 6 : 4) === fam);
    if (dns.length > 0) sec.push(`dns=${dns.join(';')};`);
    return sec;
  };
  out.push('', ...ip(4), '', ...ip(6));
  return `# ${HEADER}\n` + out.join('\n') + '\n';
}

export function renderResolvConf(dns: string[]): string {
  return `# ${HEADER}\n` + dns.map((d) => `nameserver ${d}`).join('\n') + '\n';
}

export function renderResolvedDropIn(dns: string[]): string {
  return `# ${HEADER}\n[Resolve]\nDNS=${dns.join(' ')}\n`;
}

// ---- the plan ----------------------------------------------------------------------------

export function planPostDeploy(settings: PostDeploy, facts: RootFacts, nic: NicIdentity): PostDeployPlan {
  const writes: FileWrite[] = [];
  const warnings: string[] = [];

  if (settings.hostname !== undefined && settings.hostname !== '') {
    const h = settings.hostname.trim();
    if (!validHostname(h)) throw invalid(`hostname "${h}" is not a valid host name`);
    writes.push({ path: '/etc/hostname', content: renderHostname(h), mode: 0o644 });
    writes.push({ path: '/etc/hosts', content: renderHosts(facts.hosts, h), mode: 0o644 });
  }

  const n = settings.network === undefined ? undefined : checkNetwork(settings.network);
  if (n !== undefined && n.gateway !== undefined && n.address === undefined) {
    warnings.push(`gateway ${n.gateway} given without an address: ignored (the NIC keeps its own configuration)`);
  }
  if (n !== undefined && n.address !== undefined) {
    const mac = nic.mac === undefined ? undefined : normalizeMac(nic.mac);
    const osName = settings.network?.interface ?? nic.osName;
    const match: NicMatch = mac !== undefined ? { mac } : { name: osName ?? nic.initramfsName };
    if (match.mac === undefined && match.name === undefined) throw invalid('a static address needs the NIC: give network.interface or the MAC');
    if (match.mac === undefined && osName === undefined) {
      warnings.push(`NIC matched by its initramfs name ${match.name}; the deployed OS may name it differently (set network.interface)`);
    }
    let wrote = false;
    if (facts.netplan) {
      writes.push({ path: '/etc/netplan/90-booty.yaml', content: renderNetplan(match, n), mode: 0o600 });
      wrote = true;
    } else {
      if (facts.networkManager) {
        writes.push({ path: '/etc/NetworkManager/system-connections/booty.nmconnection', content: renderNmKeyfile(match, n), mode: 0o600 });
        wrote = true;
      }
      if (facts.networkd || !(facts.ifupdown || facts.networkManager)) {
        writes.push({ path: '/etc/systemd/network/10-booty.network', content: renderNetworkd(match, n), mode: 0o644 });
        if (!facts.networkd) warnings.push('no network configuration system found in the deployed OS; wrote a systemd-networkd file anyway');
        wrote = true;
      }
    }
    if (facts.ifupdown) {
      const name = osName ?? nic.initramfsName;
      if (name === undefined) {
        warnings.push('ifupdown needs the NIC name in the deployed OS (network.interface): /etc/network/interfaces left alone');
      } else {
        if (osName === undefined) warnings.push(`ifupdown configured for ${name}, the initramfs's name for the NIC; set network.interface if the OS names it differently`);
        writes.push({ path: `/etc/network/interfaces.d/booty-${name}`, content: renderIfupdown(name, n), mode: 0o644 });
        if (facts.interfaces !== undefined) {
          writes.push({ path: '/etc/network/interfaces', content: disableIfupdownStanzas(facts.interfaces, name), mode: 0o644 });
        }
        wrote = true;
      }
    }
    if (!wrote) warnings.push('static network settings could not be written');
  }

  if (n !== undefined && n.dns.length > 0) {
    // Per-NIC files above carry DNS with a static address; the resolver config carries it always.
    if (facts.resolvConf === 'symlink') {
      if (facts.resolved) writes.push({ path: '/etc/systemd/resolved.conf.d/90-booty.conf', content: renderResolvedDropIn(n.dns), mode: 0o644 });
      else warnings.push('/etc/resolv.conf is a symlink managed by something booty does not know; nameservers set only in the NIC configuration');
    } else {
      writes.push({ path: '/etc/resolv.conf', content: renderResolvConf(n.dns), mode: 0o644 });
    }
  }

  for (const [p, content] of Object.entries(settings.files ?? {})) {
    if (!p.startsWith('/') || p.includes('\0') || p.split('/').includes('..')) throw invalid(`file path "${p}" must be absolute and without ".."`);
    writes.push({ path: p, content, mode: 0o644 });
  }
  return { writes, warnings };
}
