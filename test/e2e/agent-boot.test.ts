// The agent as PID 1 in QEMU, against real parts: our kernel + initramfs, a VM whose NIC is a
// tap in a network namespace where real dnsmasq hands out the lease and a real `booty server`
// serves the action and the image and receives the reports.
//   (a) deploy: DHCP -> action -> a small zstd image written to the virtio disk, bit-exact,
//       result reported, reboot (QEMU's -no-reboot ends the run)
//   (b) failure: a wrong sha256 ends at the failure box and a job-control shell on the serial
//       console, with the error at the server; `exit` shows the box again and respawns the
//       shell; busybox `poweroff` signals PID 1, which powers off cleanly.
//   (c) trust: the kernel command line comes from the server's /ipxe/<mac> script (the server has
//       an operator token, which the script does not carry): the agent deploys and reports with
//       its per-machine credential, and that credential is refused (403) for another MAC.
// Sized for TCG on a shared 2-core machine: a 32 MiB image, about a minute per boot.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startVm } from '../helpers/qemu.ts';
import { QemuNetLab } from '../helpers/qemu-netns-lab.ts';
import { ensureInitramfs } from '../helpers/initramfs-build.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';

const isRoot = process.getuid?.() === 0;
const have = (cmd: string) => { try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true; } catch { return false; } };
const missing = ['qemu-system-x86_64', 'dnsmasq', 'sfdisk', 'mkfs.ext4', 'zstd', 'apt-get', 'dpkg-deb', 'depmod'].filter((c) => !have(c));
const skip = !isRoot ? 'needs root (network namespaces, tap)' : skipUnlessPresent(missing.length === 0, `missing: ${missing.join(', ')}`);

let kernel = '';
let initrd = '';
const bootMs = 8 * 60_000; // a generous bound for TCG on a busy machine, not a timing assertion
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-agent-e2e-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));

/** A 32 MiB disk image: MBR, one Linux partition from 1 MiB holding ext4 with a marker file. */
function makeImage(): { raw: string; zst: string; sha256: string } {
  const raw = path.join(work, 'small.img');
  const part = path.join(work, 'part.img');
  const content = path.join(work, 'content');
  fs.mkdirSync(content, { recursive: true });
  fs.writeFileSync(path.join(content, 'marker.txt'), `deployed by booty ${crypto.randomUUID()}\n`);
  fs.writeFileSync(raw, '');
  fs.truncateSync(raw, 32 << 20);
  execFileSync('sfdisk', ['-q', raw], { input: 'label: dos\nstart=2048, type=83\n' });
  fs.writeFileSync(part, '');
  fs.truncateSync(part, (32 << 20) - (2048 * 512));
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', content, part]);
  execFileSync('dd', [`if=${part}`, `of=${raw}`, 'bs=512', 'seek=2048', 'conv=notrunc', 'status=none']);
  const zst = `${raw}.zst`;
  execFileSync('zstd', ['-q', '-f', '-3', raw, '-o', zst]);
  return { raw, zst, sha256: crypto.createHash('sha256').update(fs.readFileSync(zst)).digest('hex') };
}

function emptyDisk(name: string, bytes: number): string {
  const p = path.join(work, name);
  fs.writeFileSync(p, '');
  fs.truncateSync(p, bytes);
  return p;
}

let image: { raw: string; zst: string; sha256: string };

before(async () => {
  if (skip !== false) return;
  // The initramfs with the agent as it is in this checkout (built once per source state, shared
  // with the other e2e tests).
  ({ kernel, initrd } = await ensureInitramfs());
  image = makeImage();
});

test('(a) the agent gets a lease from dnsmasq, fetches its action, deploys bit-exact, reports and reboots', { skip, timeout: bootMs + 120_000 }, async (t) => {
  const lab = new QemuNetLab('10.231.7');
  t.after(() => lab.close());
  await lab.startDnsmasq();
  await lab.startServer();
  const mac = '52:54:00:e1:00:0a';
  const url = lab.addImage(image.zst);
  lab.setAction(mac, { action: 'deploy', image: url, sha256: image.sha256, grow: false, after: 'reboot' });
  const disk = emptyDisk('disk-a.img', 64 << 20);

  const vm = await startVm({
    name: 'agent-deploy', kernel, initrd, memMiB: 768,
    // efivarfs on a BIOS machine: its init fails with ENODEV (no EFI), the one load here that
    // fails, asked for on the command line (step 3 loads it first)
    append: `console=ttyS0 quiet ${lab.agentArgs(mac)} booty.onerror=poweroff booty.countdown=0 booty.modules=efivarfs booty.debug`,
    disks: [{ path: disk }], nic: { tap: lab.tap, netns: lab.ns, mac },
  }, t);
  const exit = await vm.waitExit(bootMs);
  assert.equal(exit.code, 0, vm.tail());

  const out = vm.output;
  for (const step of ['1/7: mount filesystems', '3/7: load kernel modules', '4/7: bring up the network', '5/7: fetch the action', '6/7: run the action (deploy)', '7/7: reboot']) {
    assert.match(out, new RegExp(`step ${step.replace(/[()/]/g, '\\$&')}`), `console shows step ${step}`);
  }
  assert.match(out, /loaded virtio_pci/);
  assert.match(out, /loaded virtio_blk/);
  // a module whose init fails: said why (at debug level: no such device is no fault), and the boot goes on
  assert.match(out, /efivarfs: no device \(ENODEV\)/);
  assert.doesNotMatch(out, /loaded efivarfs|could not load module/);
  assert.match(out, new RegExp(`target disk: /dev/vda`));
  assert.match(out, /reboot: Restarting system/);
  assert.doesNotMatch(out, /BOOTY FAILED|Kernel panic/);
  // the lease came from our dnsmasq, to this VM
  assert.match(lab.dnsmasqLog, new RegExp(`DHCPACK\\(${lab.bridge}\\) 10\\.231\\.7\\.\\d+ ${mac}`));

  // the disk holds the image, byte for byte, and the server the agent's result
  const m = await lab.expectDeployed(mac, disk, image, 32 << 20);
  assert.match(JSON.stringify(m.log), /step 4\/7: bring up the network/, 'log lines from before the network came up were sent too');
});

test('(b) a wrong checksum ends at the failure box and a shell on the console, with the error at the server', { skip, timeout: bootMs + 120_000 }, async (t) => {
  const lab = new QemuNetLab('10.231.8');
  t.after(() => lab.close());
  await lab.startDnsmasq();
  await lab.startServer();
  const mac = '52:54:00:e1:00:0b';
  const url = lab.addImage(image.zst);
  const wrong = image.sha256.replace(/^./, (c) => (c === '0' ? '1' : '0'));
  lab.setAction(mac, { action: 'deploy', image: url, sha256: wrong, grow: false, after: 'reboot', onError: 'shell' });
  const disk = emptyDisk('disk-b.img', 64 << 20);

  const vm = await startVm({
    name: 'agent-bad-checksum', kernel, initrd, memMiB: 768,
    append: `console=ttyS0 quiet ${lab.agentArgs(mac)}`,
    disks: [{ path: disk }], nic: { tap: lab.tap, netns: lab.ns, mac },
  }, t);

  await vm.waitFor(/BOOTY FAILED at step 6\/7 run the action \(deploy\)/, bootMs);
  await vm.waitFor(/BOOTY FAILED[\s\S]*Next {8}: [\s\S]*booty# /, 60_000);
  const box = vm.output.slice(vm.output.lastIndexOf('BOOTY FAILED'));
  assert.match(box, /What failed : verify: /);
  assert.match(box, /sha256|checksum/i);
  assert.match(box, /Disk {8}: \/dev\/vda: .*NOT/);
  assert.match(box, /Server {6}: http:\/\/10\.231\.8\.1:3000 \(the error was reported to it\)/);
  assert.match(box, /Full log {4}: \/tmp\/booty\.log/);

  // the server has the failure
  const m = await lab.waitForMachine(mac, (x) => x.result !== undefined);
  const result = m.result as Record<string, unknown>;
  assert.equal(result.ok, false);
  assert.match(String(result.message), /sha256|checksum/i);
  assert.notEqual(result.diskState, 'untouched');

  // an interactive shell with job control, and the log file where the box says
  let mark = vm.output.length;
  vm.send('echo jobs-$(( 6 * 7 )); sleep 30 & jobs; grep -q "checksum mismatch" /tmp/booty.log && echo log-$(( 2 * 21 ))\n');
  await vm.waitFor(/jobs-42[\s\S]*\[1\]\+? +Running +sleep 30[\s\S]*log-42/, 60_000, mark);
  assert.doesNotMatch(vm.output.slice(mark), /job control turned off/);

  // exit: the summary comes back and a new shell starts
  mark = vm.output.length;
  vm.send('kill %1; exit\n');
  await vm.waitFor(/BOOTY FAILED at step 6\/7[\s\S]*booty# /, 60_000, mark);

  // busybox poweroff signals PID 1, which unmounts, syncs and powers off
  vm.send('poweroff\n');
  const exit = await vm.waitExit(120_000);
  assert.equal(exit.code, 0);
  assert.match(vm.output, /powering off \(SIGUSR2 \(poweroff\)\)/);
  assert.match(vm.output, /reboot: Power down/);
});

test('(c) booted through the iPXE script of a token-protected server: the machine credential deploys and reports, and speaks for no other MAC', { skip, timeout: bootMs + 120_000 }, async (t) => {
  const lab = new QemuNetLab('10.231.9');
  t.after(() => lab.close());
  await lab.startDnsmasq();
  await lab.startServer();
  const mac = '52:54:00:e1:00:0c';
  const other = '52:54:00:e1:00:0d';
  const url = lab.addImage(image.zst);
  lab.setAction(mac, { action: 'deploy', image: url, sha256: image.sha256, grow: false, after: 'poweroff' });
  lab.setAction(other, { action: 'deploy', image: url, sha256: image.sha256, grow: false, after: 'poweroff' });
  const disk = emptyDisk('disk-c.img', 64 << 20);

  // what firmware would get: the script names this machine's credential, never the operator token
  const args = lab.ipxeKernelArgs(mac);
  assert.ok(!args.includes(lab.operatorToken), 'the operator token is not in the iPXE script');
  const credential = / booty\.token=(\S+)/.exec(args)?.[1];
  assert.ok(credential !== undefined, args);
  assert.match(args, /BOOTIF=01-52-54-00-e1-00-0c/);

  const vm = await startVm({
    name: 'agent-ipxe-credential', kernel, initrd, memMiB: 768,
    append: `${args} quiet booty.onerror=poweroff booty.countdown=0`,
    disks: [{ path: disk }], nic: { tap: lab.tap, netns: lab.ns, mac },
  }, t);
  const exit = await vm.waitExit(bootMs);
  assert.equal(exit.code, 0, vm.tail());
  // 401/403 as HTTP statuses, not as digits inside a logged sha256 or a timestamp ("[   22.403]")
  assert.doesNotMatch(vm.output, /BOOTY FAILED|Kernel panic|(?<![\w.])40[13](?!\w|\.\d)/);

  // deployed bit-exact, the result reported with the machine's credential
  const m = await lab.expectDeployed(mac, disk, image, 32 << 20);
  assert.match(JSON.stringify(m.log), /step 6\/7: run the action \(deploy\)/);
  assert.match(lab.serverLog, /"status":200[^\n]*"mac":"52-54-00-e1-00-0c","events":/, 'events were accepted from the VM');

  // the same credential speaks for no other machine: the forged result is refused, the other's deploy stands
  const forged = lab.postEventsAs(credential, other, [{ type: 'result', time: new Date().toISOString(), ok: true, action: 'deploy', bytes: 1, seconds: 1 }]);
  assert.equal(forged.status, 403, forged.text);
  assert.match(forged.text, /this credential is for 52-54-00-e1-00-0c, not 52-54-00-e1-00-0d/);
  const otherNow = lab.machine(other) as { next?: string; result?: unknown };
  assert.equal(otherNow.result, undefined);
  assert.match(String(otherNow.next), /^deploy /);
});
