#!/usr/bin/env node
// booty's single entry point: one binary, one subcommand per file under src/cli/.
import { isBootyError } from '../util/errors.ts';

type Command = { summary: string; load: () => Promise<{ run(argv: string[]): Promise<number> }> };

// Each subcommand is loaded on demand so `booty server` does not pay for the agent's FFI and
// the agent does not load the server.
const commands: Record<string, Command> = {
  // (subcommands register here, one line each)
  deploy: { summary: 'stream an image (gzip, zstd, xz, bzip2, qcow2, raw; http(s) or oci://) onto a disk, verified', load: () => import('./deploy.ts') },
  capture: { summary: 'stream a disk, compressed, to a booty server or a BOOTy receiver', load: () => import('./capture.ts') },
  net: { summary: 'bring a NIC up as the agent does (DHCP or ip=) and print the lease', load: () => import('./net.ts') },
  server: { summary: 'provisioning server: actions per MAC, images, uploads, agent reports', load: () => import('./server.ts') },
  tokens: { summary: 'add, list or revoke operator tokens of a booty server (on its data directory)', load: () => import('./tokens.ts') },
  machines: { summary: 'add, change, list or remove machines on a booty server (its REST API)', load: () => import('./machines.ts') },
  index: { summary: 'write the gzip access-point index of a pigz image (deploy inflates it on every core)', load: () => import('./index-image.ts') },
  rack: { summary: 'seed one image to the peers of a rack: the one machine of the rack that reads the origin', load: () => import('./rack.ts') },
  grow: { summary: 'grow a partition, its LVM and filesystem to fill the disk (as after a deploy)', load: () => import('./grow.ts') },
  'build-initramfs': { summary: 'build the initramfs (node + agent) and kernel from pinned inputs', load: () => import('./build-initramfs.ts') },
};

function usage(): string {
  const lines = ['usage: booty <command> [options]   (booty <command> --help for details)', '', 'commands:'];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(18)}${c.summary}`);
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  // As /init of the initramfs the kernel starts us as PID 1 with no arguments: run the agent.
  // It never returns (PID 1 exiting panics the kernel).
  if (process.pid === 1 && argv.length === 0) {
    const { runAgent } = await import('../agent/main.ts');
    return runAgent();
  }
  const [name, ...rest] = argv;
  // initramfs/init --make-code-cache: load the agent's modules without running it and run its
  // boot's pure paths (src/agent/code-cache-warm.ts), so the V8 code cache of the bundle also
  // holds what the agent compiles as it loads and boots
  if (name === '--load-agent-only') {
    await import('../agent/main.ts');
    await import('../agent/after-lease.ts');
    await (await import('../agent/code-cache-warm.ts')).exerciseBootPaths();
    return 0;
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    process.stdout.write('booty 0.1.0\n');
    return 0;
  }
  const cmd = commands[name];
  if (cmd === undefined) {
    process.stderr.write(`booty: unknown command '${name}'\n${usage()}\n`);
    return 2;
  }
  const mod = await cmd.load();
  return mod.run(rest);
}

// A command whose promise never settles (a stream that stalled with nothing left to wake it) would
// otherwise end with exit status 0 when the event loop runs dry: a deploy that never finished
// must never look like one that succeeded.
let settled = false;
process.on('beforeExit', () => {
  if (settled) return;
  process.stderr.write('booty: internal error: the command stopped before it finished (nothing left to wait for); treat its work as NOT done\n');
  process.exit(70);
});

main(process.argv.slice(2)).finally(() => { settled = true; }).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    if (isBootyError(err)) {
      process.stderr.write(err.describe() + '\n');
      process.exitCode = err.exitCode;
    } else {
      process.stderr.write(`booty: internal error: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exitCode = 70;
    }
  },
);
