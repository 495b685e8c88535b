// The embedded default of booty's main job, end to end on one machine:
//   1. build the initramfs (dist/initramfs) and the Debian 12 test image (.cache/test-images)
//   2. a network namespace with a bridge, a tap, real dnsmasq and `booty server`
//   3. a QEMU VM with an empty 4 GiB disk powers on: its firmware (SeaBIOS, or OVMF with
//      --firmware uefi) netboots with the NIC's iPXE ROM, dnsmasq (the README's recipe) points iPXE
//      at booty server's /ipxe, which loads booty's kernel + initramfs over HTTP; the agent asks
//      the server what to do by its MAC, deploys the Debian image (zstd, sha256-checked), grows
//      partition (+ LVM) + ext4 and reboots (on UEFI after writing a Boot#### entry for it)
//   4. the VM powers on again: iPXE asks /ipxe, gets `exit` (the deploy was one-shot) and the
//      firmware boots the deployed disk, which prints the size of its root filesystem
// --boot kernel skips the firmware and iPXE (QEMU -kernel/-initrd with the same command line).
// The serial consoles stream to this terminal. QEMU uses KVM when a probe boot shows it works.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot, startVm, type Vm } from '../test/helpers/qemu.ts';
import { dnsmasqPxeRecipe, newVarsFile, powerOn } from '../test/helpers/firmware-netboot.ts';
import { QemuNetLab } from '../test/helpers/qemu-netns-lab.ts';
import { ensureTestImage } from '../test/helpers/test-image.ts';

const { values: opt } = parseArgs({
  options: {
    image: { type: 'string', default: 'lvm' },
    format: { type: 'string', default: 'zst' },
    'disk-size': { type: 'string', default: '4' },
    disk: { type: 'string', default: 'virtio' },
    mem: { type: 'string', default: '1024' },
    boot: { type: 'string', default: 'firmware' },
    firmware: { type: 'string', default: 'bios' },
    help: { type: 'boolean', default: false },
  },
});
if (opt.help) {
  process.stdout.write(`usage: scripts/demo.sh [--boot firmware|kernel] [--firmware bios|uefi] [--image lvm|plain] [--format zst|gz] [--disk-size GiB] [--disk virtio|nvme|sata] [--mem MiB]
  --boot firmware (default): power on with SeaBIOS or OVMF, netboot through the NIC's iPXE ROM and booty server's /ipxe
  --boot kernel: QEMU loads booty's kernel and initramfs itself (-kernel/-initrd), then boots the disk alone
  --firmware uefi: OVMF, the GPT/ESP test image, a SATA disk; booty writes the UEFI boot entry\n`);
  process.exit(0);
}

const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(0).padStart(4) + 's';
const say = (m: string) => process.stdout.write(`\n[demo ${secs()}] ${m}\n`);
const viaFirmware = opt.boot !== 'kernel';
const uefi = viaFirmware && opt.firmware === 'uefi';
const kind = uefi ? 'uefi' : opt.image === 'plain' ? 'plain' : 'lvm';
const diskBytes = Number(opt['disk-size']) * 2 ** 30;
const bus = opt.disk === 'nvme' ? 'nvme' : opt.disk === 'sata' || uefi ? 'sata' : 'virtio';
if (viaFirmware && bus === 'nvme') {
  process.stderr.write('demo: --disk nvme needs --boot kernel (the firmware path here uses virtio or SATA)\n');
  process.exit(2);
}
if (!viaFirmware && bus === 'sata') {
  process.stderr.write('demo: --disk sata needs --boot firmware\n');
  process.exit(2);
}
const mac = '52:54:00:b0:07:01';

/** Streams the VM's serial console to this terminal as it arrives. */
function mirror(vm: Vm): () => void {
  let shown = 0;
  const timer = setInterval(() => {
    if (vm.output.length > shown) { process.stdout.write(vm.output.slice(shown)); shown = vm.output.length; }
  }, 200);
  return () => { clearInterval(timer); process.stdout.write(vm.output.slice(shown)); };
}

async function main(): Promise<number> {
  say('building the initramfs (booty build-initramfs; the first build downloads the pinned Debian packages)');
  execFileSync(path.join(repoRoot, 'bin', 'booty'), ['build-initramfs'], { stdio: 'inherit', cwd: repoRoot });
  const kernel = path.join(repoRoot, 'dist', 'initramfs', 'vmlinuz');
  const initrd = path.join(repoRoot, 'dist', 'initramfs', 'booty.cpio.zst');

  say(`building the Debian 12 test image (${kind}; cached after the first run)`);
  const img = await ensureTestImage(kind);
  const file = opt.format === 'gz' ? img.gz : img.zst;
  const sha256 = opt.format === 'gz' ? img.sha256.gz : img.sha256.zst;

  say('starting dnsmasq and booty server in a network namespace');
  const lab = new QemuNetLab('10.237.1');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-demo-'));
  const vms: Vm[] = [];
  const cleanup = async () => {
    for (const vm of vms) await vm.kill();
    await lab.close();
    fs.rmSync(work, { recursive: true, force: true });
  };
  process.once('SIGINT', () => { void cleanup().then(() => process.exit(130)); });
  try {
    await lab.startDnsmasq(viaFirmware ? { extraArgs: dnsmasqPxeRecipe(lab.serverUrl) } : {});
    await lab.startServer(['--boot-dir', path.dirname(kernel)]);
    const url = lab.addImage(file);
    const action = {
      action: 'deploy', image: url, sha256, ...(uefi ? { bootOrder: 'network-first' } : {}),
      grow: kind === 'lvm' ? { partition: 'last', lvmRoot: '/dev/bootyvg/root' } : { partition: 'last' },
      after: 'reboot',
    };
    lab.setAction(mac, action);
    say(`server ${lab.serverUrl}: action for ${mac}: ${JSON.stringify(action)}`);

    const disk = path.join(work, 'disk.img');
    fs.writeFileSync(disk, '');
    fs.truncateSync(disk, diskBytes);
    const machine = {
      firmware: uefi ? 'uefi' as const : 'bios' as const, disk, diskBus: bus === 'sata' ? 'sata' as const : 'virtio' as const,
      netns: lab.ns, tap: lab.tap, mac, memMiB: Number(opt.mem), ...(uefi ? { varsFile: newVarsFile(work, 'demo') } : {}),
    };
    const tBoot = Date.now();
    let vm: Vm;
    if (viaFirmware) {
      say(`powering on the VM: ${uefi ? 'OVMF (UEFI)' : 'SeaBIOS'}, e1000 with QEMU's iPXE ROM, empty ${opt['disk-size']} GiB ${bus} disk; ` +
        `iPXE -> dnsmasq -> ${lab.serverUrl}/ipxe -> /boot/vmlinuz + /boot/booty.cpio.zst`);
      vm = await powerOn({ ...machine, name: 'demo-agent' });
    } else {
      say(`booting the VM: kernel + booty initramfs, empty ${opt['disk-size']} GiB ${bus} disk`);
      vm = await startVm({
        name: 'demo-agent', kernel, initrd, memMiB: Number(opt.mem),
        append: `console=ttyS0 rootfstype=ramfs ${lab.agentArgs(mac)} booty.onerror=poweroff booty.countdown=0`,
        disks: [{ path: disk, bus: bus as 'virtio' | 'nvme' }], nic: { tap: lab.tap, netns: lab.ns, mac },
      });
    }
    vms.push(vm);
    let stop = mirror(vm);
    await vm.waitExit(30 * 60_000);
    stop();
    const deploySeconds = (Date.now() - tBoot) / 1000;
    const m = lab.machine(mac);
    const result = m?.result as Record<string, unknown> | undefined;
    if (result?.ok !== true) {
      say(`the agent did not report success: ${JSON.stringify(result)}; console log: ${vm.logFile}`);
      return 1;
    }
    say(`agent done in ${deploySeconds.toFixed(0)} s (VM start to reboot): ${JSON.stringify(result)}`);

    let os2: Vm;
    if (viaFirmware) {
      say('powering on again: iPXE asks /ipxe, which answers exit (the deploy was one-shot); the firmware boots the disk');
      os2 = await powerOn({ ...machine, name: 'demo-deployed' });
    } else {
      say('booting the deployed disk alone');
      os2 = await startVm({ name: 'demo-deployed', memMiB: Number(opt.mem), disks: [{ path: disk, bus: bus as 'virtio' | 'nvme' }] });
    }
    vms.push(os2);
    stop = mirror(os2);
    // the whole line, up to its end: the console arrives in chunks that can split it
    const marker = await os2.waitFor(/BOOTY-TEST-MARKER[^\r\n]*(?=[\r\n])/, 20 * 60_000);
    await os2.waitExit(5 * 60_000).catch(() => os2.kill());
    stop();
    const rootfs = Number(/rootfs_bytes=(\d+)/.exec(marker[0])?.[1] ?? NaN);
    say(`deployed Debian booted: ${marker[0].trim()}`);
    say(`root filesystem ${(rootfs / 2 ** 30).toFixed(2)} GiB on a ${opt['disk-size']} GiB disk (the image was 2 GiB): ` +
      (rootfs > diskBytes * 0.8 ? 'grown to fill the disk' : 'NOT grown'));
    return rootfs > diskBytes * 0.8 ? 0 : 1;
  } finally {
    await cleanup();
  }
}

main().then((code) => { process.exitCode = code; }, (err: unknown) => {
  process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
