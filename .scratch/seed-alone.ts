import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRackNet } from '../test/helpers/rack-net.ts';
const booty = join(import.meta.dirname, '..', 'bin', 'booty');
const dir = await mkdtemp(join(tmpdir(), 'bt-seed-alone-'));
const net = createRackNet(40);
try {
  const m = net.addMember('seed', 400);
  const a = net.addMember('a1', 400);
  await mkdir(join(dir, 'data', 'images'), { recursive: true });
  await writeFile(join(dir, 'data', 'images', 'x.img'), execFileSync('sh', ['-c', 'cat /usr/lib/gcc/x86_64-linux-gnu/*/cc1 /usr/lib/gcc/x86_64-linux-gnu/*/lto1 | head -c 58000000'], { maxBuffer: 1 << 30 }));
  const srv = net.spawnIn(net.core, booty, ['server', '--data', join(dir, 'data'), '--listen', `${net.coreIp}:3000`, '--p2p', '--insecure-open']);
  srv.stderr!.on('data', () => {});
  await new Promise((ok) => setTimeout(ok, 8000));
  const url = `http://${net.coreIp}:3000/images/x.img`;
  for (const [what, ns, args] of [['curl one flow', a.ns, ['curl', '-s', '-o', '/dev/null', '-w', '%{speed_download}', url]], ['seed alone', m.ns, [booty, 'rack', '--image', url, '--dir', join(dir, 's'), '--exit-when-complete']]] as const) {
    const t = performance.now();
    const c = net.spawnIn(ns, args[0], args.slice(1));
    let out = ''; c.stdout!.on('data', (b) => { out += b; }); c.stderr!.on('data', (b) => { out += b; });
    await new Promise((ok) => c.once('close', ok));
    console.log(what, ((performance.now() - t) / 1000).toFixed(1), 's', out.slice(-300));
  }
} finally { await net.close(); await rm(dir, { recursive: true, force: true }); }
