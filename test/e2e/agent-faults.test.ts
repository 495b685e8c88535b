// The agent as PID 1 in QEMU, deploying through a hostile network: one VM, real parts only.
//   - Faults between the VM and the server: the action's image URL points at our seeded TCP fault
//     proxy (test/helpers/fault-proxy.ts, run inside the lab's network namespace), which cuts,
//     resets and stalls (for good) the download a bounded number of times and paces it, so the
//     deploy lasts a while. The agent resumes after each fault with Range/If-Range (a stall once
//     the action's stallTimeout passes) and never starts over: the disk ends bit-exact and the
//     server gets ok.
//   - DHCP during the deploy: dnsmasq gives a 120 s lease with T1 8 s / T2 14 s. The agent renews
//     at T1 while the image flows; then dnsmasq is stopped, the agent's next renewal goes
//     unanswered, dnsmasq comes back (same lease file) and the agent's retry gets the lease
//     extended: same address throughout, the deploy never notices.
// Sized for TCG on a shared 2-core machine: a 28 MiB image (about 23 MiB of random data, zstd),
// paced to 640 KiB/s, so the download lasts about 40 s; about 1.5 minutes in all.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureInitramfs, type BuiltInitramfs } from '../helpers/initramfs-build.ts';
import { startVm } from '../helpers/qemu.ts';
import { QemuNetLab } from '../helpers/qemu-netns-lab.ts';
import type { FaultOptions } from '../helpers/fault-proxy.ts';
import { skipUnlessPresent } from '../helpers/prerequisite.ts';

const isRoot = process.getuid?.() === 0;
const have = (cmd: string) => { try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true; } catch { return false; } };
const missing = ['qemu-system-x86_64', 'dnsmasq', 'sfdisk', 'zstd', 'curl', 'apt-get', 'dpkg-deb', 'depmod'].filter((c) => !have(c));
const skip = !isRoot ? 'needs root (network namespaces, tap)' : skipUnlessPresent(missing.length === 0, `missing: ${missing.join(', ')}`);

const MiB = 1 << 20;
const imageBytes = 28 * MiB;
// the download's pace behind the faults: the deploy outlasts T1, the dnsmasq outage and T2
const paceBytesPerSecond = 640 * 1024;
// seed 33: reset, cut, reset, cut on connections 0-3, a stall on the 5th: 5 resumes
const seed = Number(process.env.BOOTY_FAULT_SEED ?? 33);
const faults: FaultOptions = {
  // every fault forces a resume: cut (FIN), reset (RST), and a stall that never ends, which the
  // agent gives up on after the action's stallTimeout
  probability: { cut: 0.35, reset: 0.35, stall: 0.3 },
  offset: { min: 256 * 1024, max: 3 * MiB },
  stallMs: 'forever',
  maxFaults: 5,
};
const stallTimeoutSeconds = 5;
const leaseSeconds = 120;
const t1 = 8;
const t2 = 14;
// generous bounds for TCG on a busy machine, not timing assertions
const bootMs = 8 * 60_000;
const stepMs = 3 * 60_000;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-agent-faults-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));

let initramfs: BuiltInitramfs;
let image: { raw: string; zst: string; sha256: string; wireBytes: number };

/** A disk image with an MBR and one partition, filled with random data except a 4 MiB zero hole. */
function makeImage(): typeof image {
  const raw = path.join(work, 'random.img');
  const data = crypto.randomBytes(imageBytes);
  data.fill(0, 0, MiB); // the MBR gap: sfdisk writes the label into it
  data.fill(0, 12 * MiB, 16 * MiB);
  fs.writeFileSync(raw, data);
  execFileSync('sfdisk', ['-q', raw], { input: 'label: dos\nstart=2048, type=83\n' });
  const zst = `${raw}.zst`;
  execFileSync('zstd', ['-q', '-f', '-3', raw, '-o', zst]);
  const wire = fs.readFileSync(zst);
  return { raw, zst, sha256: crypto.createHash('sha256').update(wire).digest('hex'), wireBytes: wire.length };
}

before(async () => {
  if (skip !== false) return;
  initramfs = await ensureInitramfs();
  image = makeImage();
});

/** Seconds since kernel start of the console line at character `index`. */
function stampAt(out: string, index: number): string {
  const lineStart = out.lastIndexOf('\n', index) + 1;
  const m = /^\[\s*(\d+\.\d+)\]/.exec(out.slice(lineStart));
  return m === null ? '?' : `${m[1]} s`;
}

test('deploy through cuts, resets and stalls, with dnsmasq gone and back mid-deploy: bit-exact, same lease, ok at the server', { skip, timeout: bootMs + 5 * stepMs }, async (t) => {
  const started = performance.now();
  const lab = new QemuNetLab('10.231.31');
  t.after(() => lab.close());
  await lab.startDnsmasq({ leaseSeconds, extraArgs: [`--dhcp-option=option:T1,${t1}`, `--dhcp-option=option:T2,${t2}`] });
  await lab.startServer();
  const proxy = await lab.startFaultProxy({ seed, faults, throttleBytesPerSecond: paceBytesPerSecond });
  t.after(() => proxy.close());
  const mac = '52:54:00:e1:00:31';
  const name = path.basename(image.zst);
  lab.addImage(image.zst);
  lab.setAction(mac, {
    action: 'deploy', image: `${proxy.url}/images/${name}`, sha256: image.sha256, grow: false, after: 'reboot',
    stallTimeout: stallTimeoutSeconds,
  });
  const disk = path.join(work, 'disk.img');
  fs.writeFileSync(disk, '');
  fs.truncateSync(disk, 64 * MiB);

  const vm = await startVm({
    name: 'agent-faults', kernel: initramfs.kernel, initrd: initramfs.initrd, memMiB: 768,
    append: `console=ttyS0 quiet ${lab.agentArgs(mac)} booty.onerror=poweroff booty.countdown=0`,
    disks: [{ path: disk }], nic: { tap: lab.tap, netns: lab.ns, mac },
  }, t);

  // 1. the lease, with the short times dnsmasq was told to give
  const bound = await vm.waitFor(/dhcp: bound eth0: (\d+\.\d+\.\d+\.\d+)\/24 .*lease (\d+)s \(T1 (\d+)s, T2 (\d+)s\)/, bootMs);
  const address = bound[1];
  assert.deepEqual([Number(bound[2]), Number(bound[3]), Number(bound[4])], [leaseSeconds, t1, t2], 'the lease carries the lease time, T1 and T2 dnsmasq was given');
  await vm.waitFor(/deploy: format zstd/, stepMs);

  // 2. a renewal at T1 while the image flows
  const renewed = await vm.waitFor(/dhcp: renewed eth0: (\d+\.\d+\.\d+\.\d+)\//, stepMs);
  assert.equal(renewed[1], address);
  const firstRenewalAt = renewed.index;

  // 3. dnsmasq goes away; the agent's next renewal goes unanswered
  await lab.stopDnsmasq();
  const stoppedMark = vm.output.length;
  const unanswered = await vm.waitFor(new RegExp(`dhcp: RENEWING ${address.replaceAll('.', '\\.')}: REQUEST to \\S+ \\(attempt 1\\)`), stepMs, stoppedMark);
  const unansweredAt = stoppedMark + unanswered.index;

  // 4. dnsmasq comes back with its lease file; a retry (renewing or rebinding) gets the lease extended
  await lab.restartDnsmasq();
  const restartedMark = vm.output.length;
  const back = await vm.waitFor(/dhcp: renewed eth0: (\d+\.\d+\.\d+\.\d+)\//, stepMs, restartedMark);
  assert.equal(back[1], address, 'the lease extended after the restart is the same address');
  const renewedAfterRestartAt = restartedMark + back.index;

  // 5. the deploy ends on its own, the VM reboots
  const exit = await vm.waitExit(bootMs);
  assert.equal(exit.code, 0, vm.tail());
  const out = vm.output;
  assert.doesNotMatch(out, /BOOTY FAILED|Kernel panic/);
  assert.match(out, /reboot: Restarting system/);

  // The deploy was still running when the lease was extended after the outage: the DHCP work
  // above happened during the transfer, not after it.
  const wroteAt = out.search(/deploy: wrote \d+ bytes/);
  assert.ok(wroteAt > renewedAfterRestartAt, 'the renewal after dnsmasq came back happened during the deploy');

  // DHCP: never lost, never moved, same address in every bound/renewed line
  assert.doesNotMatch(out, /dhcp: lost lease|server moved us|network: .*reconfiguring/);
  const leases = [...out.matchAll(/dhcp: (bound|renewed) eth0: (\d+\.\d+\.\d+\.\d+)\//g)];
  assert.ok(leases.filter((m) => m[1] === 'renewed').length >= 2, 'at least two renewals (before and after the outage)');
  for (const m of leases) assert.equal(m[2], address, `every lease line names ${address}: ${m[0]}`);
  const renewalTries = [...out.matchAll(/dhcp: (RENEWING|REBINDING) \S+: REQUEST to (\S+) \(attempt (\d+)\)/g)];
  // dnsmasq acknowledged the same address to the same MAC after it came back
  const afterRestart = lab.dnsmasqLog.slice(lab.dnsmasqLog.lastIndexOf('dnsmasq starting again'));
  assert.match(afterRestart, new RegExp(`DHCPACK\\(${lab.bridge}\\) ${address.replaceAll('.', '\\.')} ${mac}`), 'the restarted dnsmasq acknowledged the same lease');

  // Faults: what the proxy did, and what the agent made of it
  const st = await proxy.stats();
  const resumeLines = [...out.matchAll(/deploy: resumed at byte (\d+)(?: of (\d+))? \(resume (\d+)/g)];
  const resumeOffsets = resumeLines.map((m) => Number(m[1]));
  const forcedResumes = st.faults.cut + st.faults.reset + st.faults.stall;
  assert.ok(st.faults.cut + st.faults.reset > 0, `the proxy cut or reset the download at least once (fired: ${JSON.stringify(st.fired)})`);
  assert.equal(resumeLines.length, forcedResumes, 'one resume per fault');
  const stalls = [...out.matchAll(/deploy: connection lost after \d+ of \d+ bytes received \(no data for (\d+) s \(stalled\)\)/g)];
  assert.equal(stalls.length, st.faults.stall, 'each stall was given up on, after the action\'s stallTimeout');
  for (const x of stalls) assert.equal(Number(x[1]), stallTimeoutSeconds);
  resumeLines.forEach((m, i) => assert.equal(Number(m[3]), i + 1));
  for (let i = 0; i < resumeOffsets.length; i++) {
    assert.ok(resumeOffsets[i] > (i === 0 ? 0 : resumeOffsets[i - 1]), `resume ${i + 1} continues after what it had (byte ${resumeOffsets[i]}), never from 0`);
    assert.ok(resumeOffsets[i] < image.wireBytes);
  }
  assert.doesNotMatch(out, /deploy: .*(starting over from byte 0|restarts? from byte 0)/, 'no restart from zero');
  const summary = /deploy: wrote .*\((zstd), ([\d.]+ [kMG]?B) served\).*; (\d+) resumes? after network faults/.exec(out);
  assert.ok(summary !== null, 'the deploy summary line counts the resumes');
  assert.equal(Number(summary[3]), forcedResumes);
  const wrote = /deploy: wrote (\d+) bytes \(zstd, (\d+) bytes over the network\)/.exec(out);
  assert.ok(wrote !== null);
  assert.equal(Number(wrote[1]), imageBytes);
  assert.equal(Number(wrote[2]), image.wireBytes, 'every byte of the file went through the sha256 exactly once');

  // the disk holds the image, bit-exact; the server's word: ok, with the checksum and size;
  // resumes where the agent reports them
  const m = await lab.expectDeployed(mac, disk, image, imageBytes);
  const result = m.result as Record<string, unknown>;
  if (result.resumes !== undefined) assert.equal(result.resumes, forcedResumes, 'the result event counts the resumes');
  assert.match(JSON.stringify(m.log), /deploy: resumed at byte/, 'the resume log lines reached the server');

  const fired = st.fired.map((f) => `#${f.ordinal} ${f.kind} at ${f.offset}`).join(', ');
  t.diagnostic(`seed ${seed}: proxy saw ${st.connections} connections, fired ${st.faultsTotal} faults (${fired}); ${st.bytes.download} bytes to the VM for a ${image.wireBytes}-byte file`);
  t.diagnostic(`agent: ${resumeLines.length} resumes at bytes ${resumeOffsets.join(', ')}; ${summary[0].replace(/^.*deploy: /, '')}`);
  t.diagnostic(`result at the server: ok ${String(result.ok)}, resumes ${result.resumes === undefined ? '(not in the result event; counted from the console)' : String(result.resumes)}`);
  t.diagnostic(`dhcp: ${address}, lease ${leaseSeconds}s T1 ${t1}s T2 ${t2}s; bound at ${stampAt(out, bound.index)}, first renewal ${stampAt(out, firstRenewalAt)}, dnsmasq stopped, unanswered RENEWING ${stampAt(out, unansweredAt)}, renewed after the restart ${stampAt(out, renewedAfterRestartAt)}, deploy done ${stampAt(out, wroteAt)}`);
  t.diagnostic(`dhcp: ${leases.filter((x) => x[1] === 'renewed').length} renewals, ${renewalTries.length} renewal REQUESTs (${renewalTries.map((x) => `${x[1].toLowerCase()} #${x[3]}`).join(', ')})`);
  t.diagnostic(`wall time ${((performance.now() - started) / 1000).toFixed(0)} s`);
});
