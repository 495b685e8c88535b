// reboot(2) and sync(2). PID 1 must never exit (the kernel panics), so the end of every run is
// one of these calls; they return only on failure.
import { check, fn } from './libc.ts';

const RB_AUTOBOOT = 0x01234567;
const RB_POWER_OFF = 0x4321fedc;

type RebootFn = (cmd: number) => number;

/** Flush every filesystem's dirty data to disk (blocks until the kernel has issued it). */
export function sync(): void {
  fn<() => void>('void sync(void)')();
}

export function rebootNow(): void {
  check(fn<RebootFn>('int reboot(int cmd)')(RB_AUTOBOOT), 'reboot(RB_AUTOBOOT)');
}

export function powerOffNow(): void {
  check(fn<RebootFn>('int reboot(int cmd)')(RB_POWER_OFF), 'reboot(RB_POWER_OFF)');
}
