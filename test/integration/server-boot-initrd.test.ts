// Which initramfs booty server's iPXE scripts load: what `booty build-initramfs` wrote into
// --boot-dir under its compression's name (booty.cpio.zst, .lz4, .gz, booty.cpio), the newest
// when there are several, looked up at each request; or the file --initrd names. Against the real
// server process; the scripts are syntax-checked like every other iPXE script in the tests.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { startBootyServer, type BootyServerProcess } from '../helpers/booty-server-process.ts';
import { checkIpxeScript } from '../helpers/ipxe-script-check.ts';

const root = resolve(import.meta.dirname, '..', '..');
const run = promisify(execFile);
const MAC = '52-54-00-1d-00-01';

async function call(url: string): Promise<{ status: number; text: string }> {
  const res = await request(url);
  return { status: res.statusCode, text: await res.body.text() };
}

/** The initramfs file the machine's iPXE script loads (checked: kernel initrd= and the initrd line agree). */
async function scriptInitrd(srv: BootyServerProcess): Promise<string> {
  const r = await call(`${srv.url}/ipxe/${MAC}`);
  assert.equal(r.status, 200, r.text);
  checkIpxeScript(r.text);
  const line = /^initrd \S+\/boot\/(\S+) \|\| goto failed$/m.exec(r.text);
  const arg = /^kernel .* initrd=(\S+)/m.exec(r.text);
  assert.ok(line !== null && arg !== null, `the script loads an initramfs:\n${r.text}`);
  assert.equal(arg[1], line[1], 'the kernel is told the name of the initramfs iPXE loaded');
  return line[1];
}

/** The server says it right after its listening line: wait for it. */
async function eventually(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(ok(), `timed out waiting for ${what}`);
}

async function newerThanOthers(file: string, secondsAgo: number): Promise<void> {
  const t = Date.now() / 1000 - secondsAgo;
  await utimes(file, t, t);
}

describe('booty server: the initramfs of --boot-dir', () => {
  let dataDir: string;
  let bootDir: string;
  let srv: BootyServerProcess;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'booty-initrd-'));
    bootDir = join(dataDir, 'boot');
    await mkdir(bootDir);
    await writeFile(join(bootDir, 'vmlinuz'), 'kernel');
    // (default action inspect: every MAC's script boots booty)
    srv = await startBootyServer({ dataDir: join(dataDir, 'data'), args: ['--boot-dir', bootDir] });
  });
  after(async () => { await srv.close(); await rm(dataDir, { recursive: true, force: true }); });

  it('says at start which files netbooting machines will load, or that they are missing and how to make them', async () => {
    // (started before anything was built: only the kernel is there)
    await eventually('the warning', () => /WARNING: /.test(srv.stderr()));
    assert.match(srv.stderr(), /WARNING: \S+ has no initramfs \(booty\.cpio\.zst, booty\.cpio\.lz4, booty\.cpio\.gz, booty\.cpio\): machines that netboot through \/ipxe will fail to load them; build them with "booty build-initramfs"/);
    await writeFile(join(bootDir, 'booty.cpio.lz4'), 'lz4 build');
    const again = await startBootyServer({ dataDir: join(dataDir, 'data-start'), args: ['--boot-dir', bootDir] });
    try {
      await eventually('the boot files line', () => again.logRecords().some((r) => r.msg === 'boot files'));
      assert.doesNotMatch(again.stderr(), /WARNING: .*has no/);
      assert.ok(again.logRecords().some((r) => r.msg === 'boot files' && String(r.detail).includes(`load vmlinuz and booty.cpio.lz4 from ${bootDir}`)), again.stderr());
    } finally {
      await again.close();
      await rm(join(bootDir, 'booty.cpio.lz4'));
    }
  });

  it('serves the build-initramfs output that is there, the newest of several, chosen at each request', async () => {
    // nothing built yet: the script names the zstd build, whose download says how to build it
    assert.equal(await scriptInitrd(srv), 'booty.cpio.zst');
    const missing = await call(`${srv.url}/boot/booty.cpio.zst`);
    assert.equal(missing.status, 404);
    assert.match(missing.text, /booty build-initramfs/);

    // --compression lz4 alone (the build for machines without KVM)
    await writeFile(join(bootDir, 'booty.cpio.lz4'), 'lz4 build');
    await newerThanOthers(join(bootDir, 'booty.cpio.lz4'), 300);
    assert.equal(await scriptInitrd(srv), 'booty.cpio.lz4');
    assert.deepEqual(await call(`${srv.url}/boot/booty.cpio.lz4`), { status: 200, text: 'lz4 build' });

    // then a zstd build: the newer one is served; the older stays downloadable for a script
    // handed out just before
    await writeFile(join(bootDir, 'booty.cpio.zst'), 'zstd build');
    await newerThanOthers(join(bootDir, 'booty.cpio.zst'), 200);
    assert.equal(await scriptInitrd(srv), 'booty.cpio.zst');
    assert.deepEqual(await call(`${srv.url}/boot/booty.cpio.zst`), { status: 200, text: 'zstd build' });
    assert.equal((await call(`${srv.url}/boot/booty.cpio.lz4`)).status, 200);

    // gzip and uncompressed builds by their names too
    await writeFile(join(bootDir, 'booty.cpio.gz'), 'gzip build');
    await newerThanOthers(join(bootDir, 'booty.cpio.gz'), 100);
    assert.equal(await scriptInitrd(srv), 'booty.cpio.gz');
    await writeFile(join(bootDir, 'booty.cpio'), 'cpio');
    assert.equal(await scriptInitrd(srv), 'booty.cpio');

    // no other file of the directory is served
    await writeFile(join(bootDir, 'notes.txt'), 'private');
    assert.equal((await call(`${srv.url}/boot/notes.txt`)).status, 404);
    assert.equal((await call(`${srv.url}/boot/..%2Fdata%2Fbooty.db`)).status, 404);
  });

  it('--initrd names the file: only it is served, whatever else the directory holds', async () => {
    await writeFile(join(bootDir, 'site-booty.img'), 'site build');
    const named = await startBootyServer({ dataDir: join(dataDir, 'data2'), args: ['--boot-dir', bootDir, '--initrd', 'site-booty.img'] });
    try {
      assert.equal(await scriptInitrd(named), 'site-booty.img');
      assert.deepEqual(await call(`${named.url}/boot/site-booty.img`), { status: 200, text: 'site build' });
      assert.equal((await call(`${named.url}/boot/booty.cpio.zst`)).status, 404);
    } finally {
      await named.close();
    }
  });

  it('an --initrd that is not a plain file name is refused at start', async () => {
    for (const bad of ['../booty.db', 'a b', '/etc/passwd', '..']) {
      const r = await run(join(root, 'bin', 'booty'), ['server', '--data', join(dataDir, 'data3'), '--listen', '127.0.0.1:0', '--initrd', bad]).then(
        () => ({ code: 0, err: '' }), (e: { code: number; stderr: string }) => ({ code: e.code, err: e.stderr }));
      assert.equal(r.code, 2, `--initrd ${JSON.stringify(bad)}: ${r.err}`);
      assert.match(r.err, /--initrd must be a file name inside --boot-dir/);
    }
  });
});
