// `npm run bench -- vm`: booty's agent against a minimal busybox agent (bench/vm/busybox-agent.ts),
// both booted by QEMU (TCG where KVM does not work) with the same kernel, the same empty 4 GiB
// virtio disk, the same real dnsmasq, deploying the same gzip image (the Debian test image of
// scripts/build-test-image.sh) from the same nginx origin. booty fetches its action from booty
// server, verifies the sha256 and grows the last partition; the busybox agent only writes.
// Prints, per agent and vCPU count, seconds since kernel start at each phase, and the ratios
// (busybox / booty: above 1 means booty is faster).
//
// Options: --cpus 1,2 (default both), --image plain|lvm (default plain), --runs N (default 1),
// --only booty|busybox, --until first-byte (stop each VM once its first bytes are written),
// --booty-initrd FILE[,FILE...] (other builds of booty's initramfs, e.g. an older commit's; several
// are booted in turn in each run, to compare side by side), --booty-compression KIND[:LEVEL][,...]
// (build booty's initramfs this way, e.g. zstd:3 (the e2e build's) or none; default lz4:1),
// --lease new|known (new: a MAC dnsmasq has never seen, which it probes the address of for 3 s
// before offering; known: each MAC has its address in dnsmasq's dhcp-host, as a machine whose
// firmware or iPXE just got a lease has; the same for both agents either way), --rapid-commit
// (dnsmasq offers rapid commit), --append 'WORDS' (more kernel command-line words for both),
// --loud (no `quiet`), --profile (booty's main thread under V8's CPU profiler from /init to the
// first bytes written: BOOTY_PROFILE=1, src/agent/boot-profile.ts; each boot's profile is saved
// in .cache/bench and summarized, bench/vm/profile-summary.ts; implies --until first-byte),
// --profile-until written (the profile runs until the whole image is written instead),
// --boot kernel|ipxe (kernel, the default: QEMU loads the kernel and initramfs itself; ipxe: as a
// server boots, SeaBIOS runs the NIC's iPXE ROM, which gets its lease from dnsmasq with the
// README's PXE recipe, chains to booty server's /ipxe and loads the kernel and the initramfs over
// HTTP; the agent then asks dnsmasq again for the lease iPXE just got: times are still seconds
// since kernel start, and the table adds when the kernel started after power-on).
// Needs root (network namespace, tap, QEMU), qemu, dnsmasq and nginx (and ipxe-qemu for --boot ipxe).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ensureInitramfs, cacheRoot } from '../test/helpers/initramfs-build.ts';
import { detectAccel, repoRoot, startVm } from '../test/helpers/qemu.ts';
import { ConsoleClock, dnsmasqPxeRecipe } from '../test/helpers/firmware-netboot.ts';
import { QemuNetLab } from '../test/helpers/qemu-netns-lab.ts';
import { ensureTestImage } from '../test/helpers/test-image.ts';
import { ensureBusyboxAgent } from './vm/busybox-agent.ts';
import { bootyPhases, busyboxPhases, PHASES, phaseTimes, type PhaseName } from './vm/console-phases.ts';
import { startNginx } from './vm/nginx-origin.ts';
import { bundleOfInitrd, summarizeProfile } from './vm/profile-summary.ts';
import { profileFromConsole } from '../src/agent/boot-profile.ts';

const log = (s: string) => process.stderr.write(s + '\n');
const GiB = 1024 ** 3;
const deployTimeoutMs = 20 * 60_000;

interface Run { agent: 'booty' | 'busybox'; label: string; cpus: number; phases: Partial<Record<PhaseName, number>>; wall: number; ok: boolean; note: string; kernelAfterPowerOn?: number }

/** The initramfs file booty server serves in --boot ipxe runs: a link to the build booted next. */
const IPXE_INITRD = 'bench-initrd.cpio';

/** Seconds from power-on to the kernel's start: when the first line with a kernel time stamp
 *  reached the console, less that stamp (the console clock polls every 250 ms). */
function kernelStartAfterPowerOn(clock: ConsoleClock, output: string): number | undefined {
  const at = clock.seen.get('stamped');
  const stamp = /^\s*\[\s*(\d+\.\d+)\]/m.exec(output)?.[1];
  return at === undefined || stamp === undefined ? undefined : at - Number(stamp);
}

async function sha256OfPrefix(file: string, bytes: number): Promise<string> {
  const h = createHash('sha256');
  const s = fs.createReadStream(file, { start: 0, end: bytes - 1, highWaterMark: 4 << 20 });
  for await (const c of s) h.update(c as Buffer);
  return h.digest('hex');
}

function fmt(n: number | undefined): string {
  return n === undefined ? '-' : n.toFixed(1);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2).filter((a) => a !== 'vm'),
    options: {
      cpus: { type: 'string', default: '1,2' }, image: { type: 'string', default: 'plain' }, runs: { type: 'string', default: '1' }, only: { type: 'string' },
      until: { type: 'string' }, 'booty-initrd': { type: 'string' }, 'booty-compression': { type: 'string' }, append: { type: 'string', default: '' }, loud: { type: 'boolean', default: false }, profile: { type: 'boolean', default: false }, 'profile-until': { type: 'string', default: 'first-byte' },
      lease: { type: 'string', default: 'new' }, 'rapid-commit': { type: 'boolean', default: false }, boot: { type: 'string', default: 'kernel' },
    },
  });
  if (process.getuid?.() !== 0) { log('bench vm: needs root (network namespace, tap, QEMU)'); return 2; }
  const cpuList = values.cpus.split(',').map(Number).filter((n) => n > 0);
  const runs = Math.max(1, Number(values.runs) | 0);
  const kind = values.image === 'lvm' ? 'lvm' : 'plain';
  const agents = (['booty', 'busybox'] as const).filter((a) => values.only === undefined || values.only === a);
  if (values.lease !== 'new' && values.lease !== 'known') { log('bench vm: --lease is new or known'); return 2; }
  if (values.boot !== 'kernel' && values.boot !== 'ipxe') { log('bench vm: --boot is kernel or ipxe'); return 2; }
  const ipxe = values.boot === 'ipxe';
  const compressions = (values['booty-compression'] ?? '').split(',').filter((x) => x !== '').map((x) => {
    const [kind, lvl] = x.split(':');
    if (!['zstd', 'gzip', 'lz4', 'none'].includes(kind) || (lvl !== undefined && !/^\d+$/.test(lvl))) throw new Error(`bench vm: --booty-compression: '${x}' is not KIND[:LEVEL] (zstd, gzip, lz4, none)`);
    return { compression: kind as 'zstd' | 'gzip' | 'lz4' | 'none', level: lvl === undefined ? undefined : Number(lvl), label: x };
  });

  const built = await ensureInitramfs();
  const bb = await ensureBusyboxAgent(repoRoot, cacheRoot, log);
  const image = await ensureTestImage(kind);
  const accel = await detectAccel(built.kernel);
  log(`bench vm: ${accel}, image ${path.basename(image.gz)} (${(image.bytes.gz / 1e6).toFixed(0)} MB gzip, ${(image.size / GiB).toFixed(1)} GiB raw)`);
  if (values['profile-until'] !== 'first-byte' && values['profile-until'] !== 'written') { log('bench vm: --profile-until is first-byte or written'); return 2; }
  const profileWritten = values.profile && values['profile-until'] === 'written';
  const untilFirstByte = values.until === 'first-byte' || (values.profile && !profileWritten);
  // --loud: every kernel message on the serial console (it costs boot time under TCG: measure it)
  const consoleArgs = values.loud ? 'console=ttyS0' : 'console=ttyS0 quiet';
  const extra = values.append === '' ? '' : ` ${values.append}`;
  const loadAtStart = os.loadavg();

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-bench-vm-'));
  // copies of the kernel and booty's initramfs builds: the shared build cache drops builds of
  // other source states (test/helpers/initramfs-build.ts), and a run takes long
  const initramfs = { kernel: path.join(work, 'vmlinuz') };
  fs.copyFileSync(built.kernel, initramfs.kernel);
  // booty's builds, each booted in turn: given files, builds of the asked compressions, or the
  // default lz4 -1 build
  const bootyBuilds: { label: string; initrd: string; bundle?: string }[] = [];
  for (const f of (values['booty-initrd'] ?? '').split(',').filter((x) => x !== '')) bootyBuilds.push({ label: path.basename(f), initrd: f });
  for (const c of compressions) {
    const b = await ensureInitramfs(c);
    const copy = path.join(work, `${c.label.replace(':', '-')}-${path.basename(b.initrd)}`);
    fs.copyFileSync(b.initrd, copy);
    bootyBuilds.push({ label: c.label, initrd: copy, bundle: b.bundle });
  }
  // the default: lz4 -1, the build for machines without KVM (its unpack under TCG takes half of
  // zstd -3's; README "In the VM")
  if (bootyBuilds.length === 0) {
    const b = await ensureInitramfs({ compression: 'lz4', level: 1 });
    const copy = path.join(work, `lz4-1-${path.basename(b.initrd)}`);
    fs.copyFileSync(b.initrd, copy);
    bootyBuilds.push({ label: 'lz4:1', initrd: copy, bundle: b.bundle });
  }
  for (const b of bootyBuilds) log(`bench vm: booty build ${b.label}: ${b.initrd} (${(fs.statSync(b.initrd).size / 1e6).toFixed(1)} MB)`);
  type Boot = { agent: 'booty' | 'busybox'; label: string; initrd: string; bundle?: string };
  const boots: Boot[] = agents.flatMap((a): Boot[] =>
    a === 'booty' ? bootyBuilds.map((b) => ({ agent: a, ...b })) : [{ agent: a, label: 'busybox', initrd: '' }]);
  const prefix = `10.233.${20 + (process.pid % 200)}`;
  // every boot's MAC, known before dnsmasq starts (--lease known gives each its address)
  const macOf = (n: number) => `52:54:00:b7:${(process.pid % 250).toString(16).padStart(2, '0')}:${n.toString(16).padStart(2, '0')}`;
  const totalBoots = runs * cpuList.length * boots.length;
  if (totalBoots > 150) { log('bench vm: more than 150 boots in one run: split it'); fs.rmSync(work, { recursive: true, force: true }); return 2; }
  const dnsmasqArgs: string[] = [];
  if (values.lease === 'known') for (let n = 1; n <= totalBoots; n++) dnsmasqArgs.push(`--dhcp-host=${macOf(n)},${prefix}.${100 + n}`);
  if (values['rapid-commit']) dnsmasqArgs.push('--dhcp-rapid-commit');
  const lab = new QemuNetLab(prefix);
  const results: Run[] = [];
  let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
  const cleanup = async () => { await nginx?.close(); await lab.close(); fs.rmSync(work, { recursive: true, force: true }); };
  process.on('SIGINT', () => { void cleanup().finally(() => process.exit(130)); });
  // --boot ipxe: what booty server serves under /boot/ (the same kernel; the initramfs a link
  // switched to each boot's build)
  const bootDir = path.join(work, 'boot');
  try {
    // (iPXE waits for IPv6 router advertisements as well as DHCPv4: without a router it sits out its
    // solicitations first; qemu-netns-lab.ts)
    await lab.startDnsmasq({ extraArgs: [...dnsmasqArgs, ...(ipxe ? dnsmasqPxeRecipe(lab.serverUrl) : [])], routerAdvertisements: ipxe });
    nginx = await startNginx({ netns: lab.ns, host: `${prefix}.1`, port: 8080 });
    fs.symlinkSync(image.gz, path.join(nginx.root, path.basename(image.gz)));
    const url = `${nginx.url}/${path.basename(image.gz)}`;
    if (ipxe) {
      fs.mkdirSync(bootDir);
      fs.copyFileSync(initramfs.kernel, path.join(bootDir, 'vmlinuz'));
      // the command line the direct boots get (test/helpers/qemu.ts kernelCmdline), through the
      // server's iPXE script: both agents' words, each ignores the other's
      const words = `${values.loud ? '' : 'quiet '}no_timer_check booty.countdown=0 BBURL=${url}${values.profile ? ` BOOTY_PROFILE=${profileWritten ? 'written' : '1'}` : ''}${extra}`;
      await lab.startServer(['--boot-dir', bootDir, '--initrd', IPXE_INITRD, '--console', 'console=ttyS0', '--kernel-args', words]);
    } else {
      await lab.startServer();
    }
    let n = 0;
    for (let r = 0; r < runs; r++) {
      for (const cpus of cpuList) {
        // alternate who goes first, so drifting load does not always favour the same agent
        const order = (r + cpus) % 2 === 0 ? boots : [...boots].reverse();
        for (const { agent, label, initrd, bundle } of order) {
          n++;
          // a fresh MAC per boot: with --lease new dnsmasq treats each as a new client (address
          // probe and all), with --lease known each has its dhcp-host address (no probe)
          const mac = macOf(n);
          const disk = path.join(work, `${agent}-${cpus}.img`);
          fs.writeFileSync(disk, '');
          fs.truncateSync(disk, 4 * GiB);
          let append = '';
          if (agent === 'booty') {
            lab.setAction(mac, { action: 'deploy', image: url, sha256: image.sha256.gz, grow: { partition: 'last' }, after: 'reboot', onError: 'poweroff' });
            if (!ipxe) append = `${consoleArgs} ${lab.agentArgs(mac)} booty.countdown=0${values.profile ? ` BOOTY_PROFILE=${profileWritten ? 'written' : '1'}` : ''}${extra}`;
          } else if (!ipxe) {
            append = `${consoleArgs} BBURL=${url}${extra}`;
          }
          if (ipxe) {
            // (the busybox agent's MAC has no action: the server's default, inspect, boots it too)
            const link = path.join(bootDir, IPXE_INITRD);
            fs.rmSync(link, { force: true });
            fs.symlinkSync(agent === 'booty' ? initrd : bb.initrd, link);
          }
          log(`bench vm: ${label}, ${cpus} vCPU${cpus === 1 ? '' : 's'}`);
          const started = Date.now();
          // one console log per boot (by build and run when there are several)
          const name = `bench-vm-${agent}-${cpus}${ipxe ? '-ipxe' : ''}${boots.length > agents.length ? `-${label.replace(/[^\w.-]+/g, '_')}` : ''}${runs > 1 ? `-run${r + 1}` : ''}`;
          const machine = { name, memMiB: 768, cpus, accel, disks: [{ path: disk, cache: 'writeback' as const }], nic: { tap: lab.tap, netns: lab.ns, mac } };
          const vm = await startVm(ipxe ? { ...machine, firmwareBoot: 'network' }
            : { ...machine, kernel: initramfs.kernel, initrd: agent === 'booty' ? initrd : bb.initrd, append });
          const clock = new ConsoleClock(vm, { stamped: /^\s*\[\s*\d+\.\d+\]/m });
          let note = '';
          try {
            if (untilFirstByte) await vm.waitFor(agent === 'booty' ? bootyPhases['first byte'] : busyboxPhases['first byte'], deployTimeoutMs);
            else if (profileWritten && agent === 'booty') await vm.waitFor(bootyPhases.written, deployTimeoutMs);
            else await vm.waitExit(deployTimeoutMs);
          } catch (e) { note = (e as Error).message.split('\n')[0]; }
          if (values.profile && agent === 'booty') {
            try {
              await vm.waitFor(/^booty-profile-end \d+/m, 300_000);
              const json = profileFromConsole(vm.output);
              if (json === undefined) throw new Error('the profile lines on the console are incomplete');
              const file = path.join(repoRoot, '.cache', 'bench', `${path.basename(vm.logFile, '.log')}.cpuprofile`);
              fs.mkdirSync(path.dirname(file), { recursive: true });
              fs.writeFileSync(file, json);
              const text = bundle !== undefined ? fs.readFileSync(bundle, 'utf8') : bundleOfInitrd(initrd);
              log(`bench vm: boot profile of ${label}, ${cpus} vCPUs: ${file} (open it in Chrome's DevTools, Performance)`);
              for (const l of summarizeProfile(json, text, vm.output)) log(`  ${l}`);
            } catch (e) { log(`bench vm: no boot profile: ${(e as Error).message.split('\n')[0]}`); }
          }
          await vm.kill();
          clock.stop();
          const wall = (Date.now() - started) / 1000;
          const phases = phaseTimes(vm.output, agent === 'booty' ? bootyPhases : busyboxPhases);
          let ok = false;
          if (untilFirstByte) {
            ok = phases['first byte'] !== undefined;
            if (!ok) note ||= 'no first byte';
          } else if (profileWritten && agent === 'booty') {
            // stopped once written and profiled: the verified write is the agent's own line
            ok = phases.written !== undefined;
            if (!ok) note ||= 'the image was not written';
          } else if (agent === 'booty') {
            const m = lab.machine(mac);
            const result = m?.result as { ok?: boolean; sha256?: string } | undefined;
            ok = result?.ok === true && result.sha256 === image.sha256.gz;
            if (!ok) note ||= `no good result on the server: ${JSON.stringify(result)}`;
          } else {
            ok = /bb: image written/.test(vm.output) && await sha256OfPrefix(disk, image.size) === image.sha256.raw;
            if (!ok) note ||= 'the disk does not hold the image';
          }
          if (!ok) log(`bench vm: ${agent} failed (${note}); console in ${vm.logFile}`);
          const kernelAt = ipxe ? kernelStartAfterPowerOn(clock, vm.output) : undefined;
          results.push({ agent, label, cpus, phases, wall, ok, note, ...(kernelAt === undefined ? {} : { kernelAfterPowerOn: kernelAt }) });
          fs.rmSync(disk, { force: true });
        }
      }
    }
  } finally {
    await cleanup();
  }
  const dhcp = `dnsmasq: ${values.lease === 'known' ? 'each MAC known (dhcp-host), no address probe' : 'new MACs (3 s address probe)'}${values['rapid-commit'] ? ', rapid commit offered' : ''}${ipxe ? '; booted by SeaBIOS and the NIC\'s iPXE ROM through booty server\'s /ipxe (the agent asks for the lease iPXE got)' : ''}`;
  process.stdout.write(report(results, image.size, accel, loadAtStart, `${consoleArgs}${extra}`, dhcp));
  return results.every((r) => r.ok) ? 0 : 1;
}

function report(results: Run[], rawBytes: number, accel: string, loadAtStart: number[], cmdline: string, dhcp: string): string {
  const lines: string[] = [];
  const load = (l: number[]) => l.map((x) => x.toFixed(1)).join(' ');
  lines.push(`# VM deploy: seconds since kernel start (QEMU ${accel}, ${os.cpus()[0]?.model ?? 'unknown CPU'}, host load ${load(loadAtStart)} at the start, ${load(os.loadavg())} at the end; kernel command line: ${cmdline} ...; ${dhcp})`);
  const powerOn = results.some((r) => r.kernelAfterPowerOn !== undefined);
  lines.push(`| agent | vCPUs |${powerOn ? ' kernel start (s after power-on) |' : ''} ${PHASES.join(' | ')} | MB/s (raw, first byte -> written) | ok |`);
  lines.push(`|---|---|${powerOn ? '---|' : ''}${PHASES.map(() => '---').join('|')}|---|---|`);
  for (const r of results) {
    const p = r.phases;
    const rate = p['first byte'] !== undefined && p.written !== undefined ? (rawBytes / 1e6 / (p.written - p['first byte'])).toFixed(1) : '-';
    lines.push(`| ${r.agent === 'booty' ? `booty ${r.label}` : r.agent} | ${r.cpus} |${powerOn ? ` ${fmt(r.kernelAfterPowerOn)} |` : ''} ${PHASES.map((x) => fmt(p[x])).join(' | ')} | ${rate} | ${r.ok ? 'yes' : `NO: ${r.note}`} |`);
  }
  lines.push('');
  for (const cpus of [...new Set(results.map((r) => r.cpus))]) {
    const med = (label: string, ph: PhaseName) => median(results.filter((r) => r.label === label && r.cpus === cpus && r.ok).map((r) => r.phases[ph]).filter((x): x is number => x !== undefined));
    for (const label of [...new Set(results.filter((r) => r.agent === 'booty').map((r) => r.label))]) {
      const fb = [med(label, 'first byte'), med('busybox', 'first byte')];
      const done = [med(label, 'done'), med('busybox', 'done')];
      lines.push(`${cpus} vCPU${cpus === 1 ? '' : 's'}, booty ${label}: first byte (median) booty ${fmt(fb[0])} s, busybox ${fmt(fb[1])} s; done (booty grown too) booty ${fmt(done[0])} s, busybox ${fmt(done[1])} s; ` +
        `end to end busybox/booty ${done[0] !== undefined && done[1] !== undefined ? `${(done[1] / done[0]).toFixed(2)}x` : '-'}`);
    }
  }
  return lines.join('\n') + '\n';
}

function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

process.exitCode = await main();
