// Reading an agent's phases off its serial console: every line the bench needs carries a stamp
// in seconds since the kernel started ("[   11.163] booty: ..." from booty, "[12.34] bb: ..."
// from the busybox agent, "[   99.712345] reboot: ..." from the kernel), so both agents are
// timed by the guest's own clock, not by when the host happened to read the pipe.

export interface PhaseSpec { name: string; re: RegExp }

/** The phases in the order the report prints them; a missing one is undefined. */
export const PHASES = ['unpacked', 'init', 'agent', 'modules', 'link', 'lease', 'action', 'first byte', 'written', 'done'] as const;
export type PhaseName = typeof PHASES[number];

// 'unpacked': the kernel finished unpacking the initramfs ("Freeing initrd memory"): a time
// inside the line (group 1), since the line itself is printed later (booty's line from
// /dev/kmsg, src/agent/kernel-timeline.ts; busybox's /init runs dmesg).
export const bootyPhases: Record<PhaseName, RegExp> = {
  unpacked: /booty: kernel: initramfs unpacked [\d.]+ -> ([\d.]+) s/,
  init: /booty: \/init: node \S+ started/,
  agent: /booty: step 1\/7/,
  modules: /booty: hardware: \d+ modules loaded/,
  link: /booty: dhcp: DISCOVER on /,
  lease: /booty: dhcp: bound /,
  action: /booty: step 6\/7/,
  'first byte': /booty: deploy: first bytes reached the writer/,
  written: /booty: deploy: wrote \d+ bytes/,
  done: /\] reboot: (?:Restarting system|Power down)/,
};

export const busyboxPhases: Record<PhaseName, RegExp> = {
  unpacked: /^\s*\[\s*(\d+\.\d+)\] Freeing initrd memory/,
  init: /bb: init started/,
  agent: /bb: init started/,
  modules: /bb: modules loaded/,
  link: /bb: link up/,
  lease: /bb: lease/,
  action: /bb: lease/,
  'first byte': /bb: first block written/,
  written: /bb: image written/,
  done: /\] reboot: (?:Restarting system|Power down)/,
};

/** A line up to its last terminal control sequence: after a netboot, iPXE's last words and its
 *  screen resets (ESC c, ESC [?7l, ESC [2J) run into the kernel's first line on the serial
 *  console, e.g. `http://.../boot/initrd... o<ESC>c<ESC>[?7l<ESC>[2J[2.10] bb: init started`. */
const LEADING_CONTROL = /^.*\x1b(?:\[[0-9;?]*[A-Za-z]|[A-Za-z])/;

/** Seconds since kernel start of the first console line matching each phase (the regex's group 1 when it has one). */
export function phaseTimes(console: string, spec: Record<PhaseName, RegExp>): Partial<Record<PhaseName, number>> {
  const lines = console.split(/\r?\n/).map((l) => l.replace(LEADING_CONTROL, ''));
  const out: Partial<Record<PhaseName, number>> = {};
  for (const p of PHASES) {
    const line = lines.find((l) => spec[p].test(l));
    if (line === undefined) continue;
    const m = spec[p].exec(line)?.[1] !== undefined ? spec[p].exec(line) : /^\s*\[\s*(\d+(?:\.\d+)?)\]/.exec(line);
    if (m !== null && m[1] !== undefined) out[p] = Number(m[1]);
  }
  return out;
}
