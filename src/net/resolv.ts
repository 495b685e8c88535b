// /etc/resolv.conf from the lease (or ip= DNS fields), written atomically so a reader never sees
// half a file. In the initramfs /etc may not exist yet.
import fs from 'node:fs';
import path from 'node:path';

export function renderResolvConf(p: { nameservers: string[]; domain?: string }): string {
  const lines = ['# written by booty'];
  // Only well-formed search domains: the value comes off the network.
  if (p.domain !== undefined && /^[A-Za-z0-9.-]{1,253}$/.test(p.domain)) lines.push(`search ${p.domain}`);
  // glibc reads at most 3 nameservers
  for (const ns of p.nameservers.slice(0, 3)) lines.push(`nameserver ${ns}`);
  return lines.join('\n') + '\n';
}

export function writeResolvConf(file: string, p: { nameservers: string[]; domain?: string }): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.booty-${process.pid}`;
  fs.writeFileSync(tmp, renderResolvConf(p));
  fs.renameSync(tmp, file);
}
