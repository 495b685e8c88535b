// iPXE scripts served by booty server. A machine's firmware (or an iPXE binary chainloaded by
// dnsmasq) asks `GET /ipxe`, which chains to `GET /ipxe/<mac>` with the MAC iPXE booted from;
// that answers either "boot booty's kernel and initramfs, with the command line that points
// the agent back here", or `exit` (boot from the local disk) for machines with nothing to do.
// Pure text generation; the accepted command set is checked by a test (ipxe-script-check).

export interface IpxeBootOptions {
  /** base URL the agent uses for its action and reports (MYURL) */
  serverUrl: string;
  /** where vmlinuz and the initramfs are downloaded from */
  bootUrl: string;
  kernel: string;
  initrd: string;
  /** e.g. "console=tty0 console=ttyS0,115200" */
  console: string;
  /** the machine's agent credential (booty.token=) */
  token?: string;
  /** sha256 of the server's TLS certificate: booty.ca=sha256:<hex>, so the agent talks to this server only */
  caPin?: string;
  extraArgs?: string;
}

/** Text that is safe inside an iPXE `echo`: no `${}` expansion, no `||`/`&&`, one line. */
export function ipxeSafeText(s: string): string {
  return s.replace(/[^A-Za-z0-9 .,:;/_()\->=+@'%]/g, '?').slice(0, 200);
}

/** A word that iPXE passes to the kernel unchanged (no spaces, no expansion, no operators). */
export function ipxeSafeWord(s: string): boolean {
  return /^[A-Za-z0-9._~:/?=,+@%\-[\]]+$/.test(s);
}

/** The generic script: chain to the per-MAC one. `netX` is the NIC iPXE last opened (the one it booted from). */
export function ipxeChainScript(serverUrl: string): string {
  return [
    '#!ipxe',
    '# booty server: ask for the script of this machine by the MAC iPXE booted from',
    `chain --autofree ${serverUrl}/ipxe/\${netX/mac:hexhyp} || goto failed`,
    'exit',
    ':failed',
    'echo booty: could not reach the booty server; booting from the local disk',
    'sleep 10',
    'exit',
    '',
  ].join('\n');
}

/** Boot booty's agent on `mac` (aa-bb-cc-dd-ee-ff), which will run `what`. */
export function ipxeBootScript(mac: string, what: string, o: IpxeBootOptions): string {
  const args = [`initrd=${o.initrd}`, ...o.console.split(/\s+/).filter((w) => w !== ''), 'panic=10', `MYURL=${o.serverUrl}`, `BOOTIF=01-${mac}`];
  if (o.token !== undefined && ipxeSafeWord(o.token)) args.push(`booty.token=${o.token}`);
  if (o.caPin !== undefined && /^[0-9a-f]{64}$/.test(o.caPin)) args.push(`booty.ca=sha256:${o.caPin}`);
  if (o.extraArgs !== undefined) args.push(...o.extraArgs.split(/\s+/).filter((w) => w !== '' && ipxeSafeWord(w)));
  return [
    '#!ipxe',
    `# booty server: ${ipxeSafeText(mac)}`,
    `echo booty: ${ipxeSafeText(mac)}: ${ipxeSafeText(what)}`,
    `kernel ${o.bootUrl}/${o.kernel} ${args.join(' ')} || goto failed`,
    `initrd ${o.bootUrl}/${o.initrd} || goto failed`,
    'boot || goto failed',
    ':failed',
    'echo booty: could not load the booty kernel or initramfs; booting from the local disk',
    'sleep 10',
    'exit',
    '',
  ].join('\n');
}

/** Nothing to do: leave iPXE so the firmware boots the next device (the local disk). */
export function ipxeExitScript(mac: string, reason: string): string {
  return [
    '#!ipxe',
    `# booty server: ${ipxeSafeText(mac)}`,
    `echo booty: ${ipxeSafeText(mac)}: ${ipxeSafeText(reason)}; booting from the local disk`,
    'exit',
    '',
  ].join('\n');
}
