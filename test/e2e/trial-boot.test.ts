// Trial boot through the real chain (README "Trial boot"): OVMF with its own variable store, a
// SATA disk, the e1000's iPXE ROM, dnsmasq with the README's recipe, `booty server`'s /ipxe. The
// agent deploys the UEFI Debian image with bootOrder "trial": it writes booty's Boot####, keeps
// the network first in BootOrder, sets BootNext, and installs the confirmation unit into the
// deployed OS. At the next power-on the firmware takes BootNext straight into the new Debian.
//   (confirms)  the unit posts to /api/machines/<mac>/trial with the machine's credential: the
//               server holds the trial as confirmed; efibootmgr in the OS shows BootCurrent =
//               booty's entry, BootNext gone (the firmware used it) and the network still first.
//   (not confirmed) the image's confirmation unit is disabled (a drop-in condition that never
//               holds, sent through post.files): nothing confirms. Past confirmWithin the server
//               reports the trial failed (log, summary); at the power-on after, the firmware
//               netboots (BootNext was used up) and /ipxe boots the agent for onTrialFailure
//               "redeploy": the deploy starts again (seen on the console, then the VM is stopped).
// The first machine's lab also has Debian's lldpd on its bridge (test/helpers/lldp-speaker.ts):
// the agent hears it while it deploys and the server's inventory holds the neighbour as lldpcli
// describes it (README "LLDP neighbours").
// The test image's marker unit powers the OS off; a drop-in (post.files) orders it after the
// confirmation unit, so the OS does not power off before it had its chance to confirm.
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureInitramfs } from '../helpers/initramfs-build.ts';
import { QemuNetLab } from '../helpers/qemu-netns-lab.ts';
import { blankDisk, ConsoleClock, dnsmasqPxeRecipe, IPXE_ROM_E1000, newVarsFile, OVMF_CODE, OVMF_VARS, powerOn, saveTimings } from '../helpers/firmware-netboot.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';
import { startLldpSpeaker } from '../helpers/lldp-speaker.ts';
import { ensureTestImage } from '../helpers/test-image.ts';

const isRoot = process.getuid?.() === 0;
const have = (cmd: string) => { try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true; } catch { return false; } };
const missing = [
  ...['qemu-system-x86_64', 'dnsmasq', 'debootstrap', 'mcopy', 'mkfs.vfat', 'zstd', 'curl', 'lldpd', 'lldpcli'].filter((c) => !have(c)),
  ...[OVMF_CODE, OVMF_VARS, IPXE_ROM_E1000].filter((f) => !fs.existsSync(f)),
];
const skip = !isRoot ? skipUnlessPresent(false, 'needs root (network namespaces, tap, loop devices)')
  : skipUnlessPresent(missing.length === 0, `missing: ${missing.join(', ')} (bash scripts/host-deps.sh)`);

const bootMs = 15 * 60_000; // a generous bound for TCG on a busy machine, not a timing assertion
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-trial-e2e-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));
let bootDir = '';

before(async () => {
  if (skip !== false) return;
  ({ dir: bootDir } = await ensureInitramfs());
});

const deployMarks = { ipxe: /iPXE \d/, kernel: /Linux version \d/, init: /\/init: node .* started/, firstByte: /deploy: format /, installed: /trial boot: installed/, reboot: /reboot: Restarting system/ };
const trialMarks = { ipxe: /iPXE \d/, kernel: /Linux version \d/, confirmed: /booty-trial-confirm: trial boot confirmed/, marker: /BOOTY-TEST-MARKER/ };
const markerAfterConfirm = { '/etc/systemd/system/booty-test-marker.service.d/after-trial.conf': '[Unit]\nAfter=booty-trial-confirm.service\n' };

type T = { after(fn: () => unknown): void; diagnostic(s: string): void };

/** Power-on 1: netboot, deploy with bootOrder trial, reboot. Returns the lab and the machine. */
async function deployTrial(t: T, o: { name: string; prefix: string; mac: string; confirmWithin: number; files: Record<string, string>; lldp?: boolean }) {
  const image = await ensureTestImage('uefi');
  const lab = new QemuNetLab(o.prefix);
  t.after(() => lab.close());
  const speaker = o.lldp === true ? await startLldpSpeaker(lab.ns, lab.bridge, { systemName: 'booty-tor-7', portDescription: 'rack7 port 12' }) : undefined;
  if (speaker !== undefined) t.after(() => speaker.close());
  await lab.startDnsmasq({ extraArgs: dnsmasqPxeRecipe(lab.serverUrl), routerAdvertisements: true });
  await lab.startServer(['--boot-dir', bootDir]);
  const url = lab.addImage(image.zst);
  lab.setAction(o.mac, {
    action: 'deploy', image: url, sha256: image.sha256.zst, grow: { partition: 'last' }, after: 'reboot',
    bootOrder: 'trial', confirmWithin: o.confirmWithin, onTrialFailure: 'redeploy', post: { files: o.files },
  });
  const machine = {
    firmware: 'uefi', disk: blankDisk(path.join(work, `${o.name}.img`), 3 * 2 ** 30), diskBus: 'sata',
    netns: lab.ns, tap: lab.tap, mac: o.mac, varsFile: newVarsFile(work, o.name),
  } as const;
  const vm = await powerOn({ ...machine, name: `${o.name}-deploy` }, t);
  const clock = new ConsoleClock(vm, deployMarks);
  const exit = await vm.waitExit(bootMs);
  const timings = clock.stop();
  assert.equal(exit.code, 0, vm.tail());
  assert.doesNotMatch(vm.output, /BOOTY FAILED|Kernel panic/, vm.tail());
  const entry = /boot entry: wrote Boot([0-9A-F]{4}) "Debian \(booty, sda\)"/.exec(vm.output)?.[1];
  assert.ok(entry !== undefined, `booty wrote its boot entry; log ${vm.logFile}`);
  assert.match(vm.output, new RegExp(`boot entry: BootNext ${entry} \\(trial`), 'and BootNext for the trial');
  assert.match(vm.output, /trial boot: installed booty-trial-confirm\.service/);
  const m = await lab.waitForMachine(o.mac, (x) => x.result !== undefined);
  assert.equal((m.result as { ok: boolean }).ok, true, JSON.stringify(m.result));
  const trial = (await lab.waitForMachine(o.mac, (x) => x.trial !== undefined)).trial as { state: string; confirmWithin: number };
  assert.equal(trial.state, 'pending');
  assert.equal(trial.confirmWithin, o.confirmWithin);
  if (speaker !== undefined) {
    // the agent heard lldpd through the e1000 while it deployed, and sent it with its inventory
    assert.match(vm.output, /lldp: eth0: switch booty-tor-7 \(chassis mac [0-9a-f:]{17}\) port lsp\d+ \(interface-name\) "rack7 port 12"/, `the agent heard the neighbour; log ${vm.logFile}`);
    const inv = JSON.parse(lab.api('GET', `/api/machines/${o.mac.replaceAll(':', '-')}/inventory`)) as { inventory: { nics: { name: string; lldp?: Record<string, unknown> }[] } };
    const heard = inv.inventory.nics.find((n) => n.name === 'eth0')?.lldp;
    const chassis = Object.entries((speaker.json('show', 'chassis') as { 'local-chassis': { chassis: Record<string, { id: { type: string; value: string }; descr: string }> } })['local-chassis'].chassis)[0];
    const ports = (speaker.json('show', 'interfaces') as { lldp: { interface: Record<string, { port: { id: { type: string; value: string }; descr: string } }> } }).lldp.interface;
    const [portName, port] = Object.entries(ports)[0];
    t.diagnostic(`LLDP at the server: ${JSON.stringify(heard)}`);
    assert.ok(heard !== undefined, 'the server holds eth0\'s neighbour');
    assert.equal(heard.systemName, chassis[0]);
    assert.equal(heard.chassisIdSubtype, chassis[1].id.type);
    assert.equal(heard.chassisId, chassis[1].id.value);
    assert.equal(heard.systemDescription, chassis[1].descr);
    assert.equal(heard.portId, port.port.id.value);
    assert.equal(heard.portId, portName);
    assert.equal(heard.portDescription, port.port.descr);
  }
  return { lab, machine, entry, deployTimings: timings };
}

// the two machines boot side by side (each in its own network namespace): half the wall time
describe('trial boot through OVMF, iPXE and dnsmasq', { concurrency: 2 }, () => {
test('(trial, confirms) BootNext boots the new Debian once, its unit confirms with the machine\'s credential, the server holds the trial confirmed', { skip, timeout: 3 * bootMs }, async (t) => {
  const mac = '52:54:00:7a:01:01';
  const { lab, machine, entry, deployTimings } = await deployTrial(t, { name: 'trial-ok', prefix: '10.233.171', mac, confirmWithin: 900, files: markerAfterConfirm, lldp: true });
  const serverMark = lab.serverLog.length;
  const vm = await powerOn({ ...machine, name: 'trial-ok-boot' }, t);
  const clock = new ConsoleClock(vm, trialMarks);
  const marker = await vm.waitForUser(/BOOTY-TEST-MARKER[^\r\n]*(?=[\r\n])/, bootMs);
  await vm.waitExit(5 * 60_000).catch(() => vm.kill());
  const timings = clock.stop();
  assert.match(marker[0], /variant=uefi/);
  assert.doesNotMatch(vm.output, /iPXE \d/, 'BootNext: the firmware went to the new OS without netbooting');
  assert.doesNotMatch(lab.serverLog.slice(serverMark), /GET \/ipxe/);
  assert.match(vm.output, /booty-trial-confirm: trial boot confirmed/, `the unit confirmed (console); log ${vm.logFile}`);
  const efi = [...vm.userOutput.matchAll(/BOOTY-EFI ([^\r\n]*)\r*\n/g)].map((x) => x[1].trim());
  t.diagnostic(`efibootmgr -v in the trial boot:\n${efi.join('\n')}`);
  assert.ok(efi.includes(`BootCurrent: ${entry}`), `the firmware booted booty's entry Boot${entry}`);
  assert.ok(!efi.some((l) => l.startsWith('BootNext:')), 'BootNext was used up by that boot');
  const order = /BootOrder: ([0-9A-F,]+)/.exec(efi.join('\n'))?.[1].split(',') ?? [];
  assert.ok(order.indexOf(entry) > 0, `the network stays first in BootOrder (${order.join(',')})`);
  const m = await lab.waitForMachine(mac, (x) => (x.trial as { state?: string } | undefined)?.state === 'confirmed');
  const trial = m.trial as { message: string };
  t.diagnostic(`server: ${trial.message}`);
  assert.match(trial.message, /trial boot confirmed at .*\(kernel 6\.1\.\S+, boot [0-9a-f-]{36}\)/, 'the OS said which kernel and boot');
  assert.match(lab.serverLog.slice(serverMark), /POST \/api\/machines\/52-54-00-7a-01-01\/trial.*status=200|"msg":"POST \/api\/machines\/52-54-00-7a-01-01\/trial","status":200/);
  // the confirmation forgot the credential it was given: the OS asked again would fail; the server
  // agrees there is nothing pending any more (a second confirmation is a no-op, not a new trial)
  saveTimings('trial-boot-timings.json', 'trial-ok', { ...Object.fromEntries(Object.entries(deployTimings).map(([k, v]) => [`deploy.${k}`, v])), ...Object.fromEntries(Object.entries(timings).map(([k, v]) => [`trial.${k}`, v])) });
  t.diagnostic(`timings (s since power-on): deploy ${JSON.stringify(deployTimings)}; trial boot ${JSON.stringify(timings)}`);
});

test('(trial, not confirmed) the confirmation unit is disabled: the next netboot reports the failed trial and redeploys', { skip, timeout: 3 * bootMs }, async (t) => {
  const mac = '52:54:00:7a:01:02';
  const confirmWithin = 20;
  const files = { ...markerAfterConfirm, '/etc/systemd/system/booty-trial-confirm.service.d/disabled.conf': '[Unit]\nConditionPathExists=/booty-test-never-there\n' };
  const { lab, machine, entry, deployTimings } = await deployTrial(t, { name: 'trial-fail', prefix: '10.233.172', mac, confirmWithin, files });
  const started = Date.now();
  // power-on 2: BootNext into the new Debian, which does not confirm and powers off
  const vm2 = await powerOn({ ...machine, name: 'trial-fail-boot' }, t);
  const c2 = new ConsoleClock(vm2, trialMarks);
  await vm2.waitForUser(/BOOTY-TEST-MARKER[^\r\n]*(?=[\r\n])/, bootMs);
  await vm2.waitExit(5 * 60_000).catch(() => vm2.kill());
  const t2 = c2.stop();
  assert.doesNotMatch(vm2.output, /iPXE \d/, 'BootNext took the firmware to the new OS');
  assert.ok(new RegExp(`BOOTY-EFI BootCurrent: ${entry}`).test(vm2.userOutput), 'booty\'s entry booted');
  assert.doesNotMatch(vm2.output, /booty-trial-confirm: trial boot confirmed/);
  // the deadline has passed (the boot alone took longer than confirmWithin under TCG; wait if not)
  const wait = confirmWithin * 1000 + 1000 - (Date.now() - started);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  // the server says so as soon as anyone looks (here the operator's API), before any netboot
  const seen = lab.machine(mac) as { trial: { state: string } };
  assert.equal(seen.trial.state, 'failed');
  // power-on 3: BootNext is gone, the network is first: iPXE asks /ipxe, the server finds the
  // trial expired and boots the agent, which gets the deploy again
  const serverMark = lab.serverLog.length;
  const vm3 = await powerOn({ ...machine, name: 'trial-fail-netboot' }, t);
  const c3 = new ConsoleClock(vm3, { ipxe: /iPXE \d/, chained: /booty: [0-9a-f-]{17}: deploy/, init: /\/init: node .* started/, firstByte: /deploy: format / });
  await vm3.waitFor(/deploy: format /, bootMs);
  await lab.waitForMachine(mac, (x) => x.phase === 'writing');
  const t3 = c3.stop();
  await vm3.kill();
  assert.match(vm3.output, /booty: 52-54-00-7a-01-02: deploy http/, 'iPXE got the boot script for the redeploy');
  assert.match(lab.serverLog.slice(serverMark), /GET \/ipxe\/52-54-00-7a-01-02.*"ipxe":"boot"|GET \/ipxe\/52-54-00-7a-01-02.*ipxe=boot/, 'the netboot after the failed trial got the agent, not exit');
  const m = lab.machine(mac) as { trial: { state: string; message: string; attempt: number }; log: string[]; next: string };
  t.diagnostic(`server: ${m.trial.message}`);
  assert.equal(m.trial.state, 'failed');
  assert.match(m.trial.message, new RegExp(`^trial boot not confirmed within ${confirmWithin} s \\(deadline [^)]+\\); what its console showed is unknown to booty .*running onTrialFailure: redeploy$`));
  assert.ok(m.log.some((l) => new RegExp(`error trial boot not confirmed within ${confirmWithin} s`).test(l)), 'the machine\'s log says it');
  assert.match(m.next, /^deploy http/, 'its next boot is the redeploy');
  saveTimings('trial-boot-timings.json', 'trial-fail', {
    ...Object.fromEntries(Object.entries(deployTimings).map(([k, v]) => [`deploy.${k}`, v])),
    ...Object.fromEntries(Object.entries(t2).map(([k, v]) => [`trial.${k}`, v])),
    ...Object.fromEntries(Object.entries(t3).map(([k, v]) => [`netboot.${k}`, v])),
  });
  t.diagnostic(`timings (s since power-on): deploy ${JSON.stringify(deployTimings)}; trial boot ${JSON.stringify(t2)}; the netboot after ${JSON.stringify(t3)}`);
});
});
