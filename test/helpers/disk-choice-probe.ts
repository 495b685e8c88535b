// Run inside a QEMU guest (bundled by test/e2e/disk-hints-sysfs.test.ts, started by the guest's
// node): reads the guest kernel's /sys/class/block with the agent's own code and prints, one line
// each, the snapshot of every whole disk and the choice for every hint set given as a JSON
// argument, so the test asserts on what a real kernel's sysfs yields.
import { readBlockSnapshot } from '../../src/agent/block-snapshot.ts';
import { chooseDisk } from '../../src/agent/disk-choice.ts';
import type { DiskHints } from '../../src/config/action.ts';

const snapshot = readBlockSnapshot();
process.stdout.write(`PROBE-SNAPSHOT ${JSON.stringify(snapshot.filter((e) => !e.partition))}\n`);
for (const arg of process.argv.slice(2)) {
  const hints = JSON.parse(arg) as DiskHints;
  try {
    const c = chooseDisk(snapshot, undefined, undefined, hints);
    process.stdout.write(`PROBE-CHOICE ${JSON.stringify({ hints, disk: c.disk, reason: c.reason })}\n`);
  } catch (e) {
    process.stdout.write(`PROBE-CHOICE ${JSON.stringify({ hints, error: (e as Error).message })}\n`);
  }
}
process.stdout.write('PROBE-END\n');
