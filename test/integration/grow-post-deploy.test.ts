// applyPostDeploy for real (root): a loop disk with an empty first ext4 partition and a second one
// holding a Debian-shaped root (ifupdown, resolved, /etc/resolv.conf an absolute symlink into
// /run); the root is found by looking, settings are written, and debugfs reads them back from
// the unmounted filesystem. The agent's own /run must stay untouched.
import { describe, it, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { applyPostDeploy } from '../../src/disk/post-deploy.ts';
import { createLogger } from '../../src/util/log.ts';
import { attachLoop, isRoot, mkExt4, writeAt } from '../helpers/loop-disk.ts';
import { makeImage, tempDir } from '../helpers/sparse-disk-image.ts';

const MiB = 1024 * 1024;
const skip = isRoot() ? false : 'needs root (loop devices)';

function debugfs(dev: string, request: string): string {
  return execFileSync('debugfs', ['-R', request, dev], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

describe('applyPostDeploy on a loop device', { skip }, () => {
  let dir = '';
  before(() => { dir = tempDir('booty-postdeploy-'); });
  after(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

  it('finds the root, writes hostname, static network for ifupdown, resolved DNS and files', async () => {
    const root = path.join(dir, 'root');
    for (const d of ['etc/network/interfaces.d', 'lib/systemd', 'root', 'run']) fs.mkdirSync(path.join(root, d), { recursive: true });
    fs.writeFileSync(path.join(root, 'etc/os-release'), 'ID=debian\n');
    fs.writeFileSync(path.join(root, 'etc/hosts'), '127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n');
    fs.writeFileSync(path.join(root, 'etc/hostname'), 'debian\n');
    fs.writeFileSync(path.join(root, 'etc/network/interfaces'), 'source /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\nallow-hotplug ens3\niface ens3 inet dhcp\n');
    fs.writeFileSync(path.join(root, 'lib/systemd/systemd-resolved'), '', { mode: 0o755 });
    fs.symlinkSync('/run/systemd/resolve/stub-resolv.conf', path.join(root, 'etc/resolv.conf'));

    const disk = path.join(dir, 'disk.img');
    makeImage(disk, 48 * MiB, 'label: gpt\n,8M\n,\n');
    const boot = path.join(dir, 'boot.img');
    mkExt4(boot, 8 * MiB);
    writeAt(disk, boot, 1 * MiB);
    const rootImg = path.join(dir, 'rootfs.img');
    mkExt4(rootImg, 38 * MiB, root);
    writeAt(disk, rootImg, 9 * MiB);

    const hostRunBefore = fs.existsSync('/run/systemd/resolve/stub-resolv.conf') ? fs.readFileSync('/run/systemd/resolve/stub-resolv.conf', 'utf8') : undefined;
    const lines: string[] = [];
    const log = createLogger({ level: 'debug', sinks: [(l, m) => { lines.push(`${l}: ${m}`); }] });
    const loop = attachLoop(disk);
    try {
      await applyPostDeploy({
        disk: loop.dev, mac: '52:54:00:12:34:56', iface: 'eth0', log,
        settings: {
          hostname: 'node7.example.org',
          network: { address: '172.16.1.126/24', gateway: '172.16.1.1', nameservers: ['172.16.1.2'], interface: 'ens3' },
          files: { '/root/.ssh/authorized_keys': 'ssh-ed25519 AAAAC3Nza test\n' },
        },
      });
      const dev = `${loop.dev}p2`;
      assert.equal(debugfs(dev, 'cat /etc/hostname'), 'node7.example.org\n', lines.join('\n'));
      assert.match(debugfs(dev, 'cat /etc/hosts'), /^127\.0\.0\.1\tlocalhost\n127\.0\.1\.1\tnode7\.example\.org node7\n$/);
      assert.match(debugfs(dev, 'cat /etc/network/interfaces.d/booty-ens3'),
        /auto ens3\niface ens3 inet static\n {4}address 172\.16\.1\.126\/24\n {4}gateway 172\.16\.1\.1\n {4}dns-nameservers 172\.16\.1\.2\n/);
      assert.match(debugfs(dev, 'cat /etc/network/interfaces'), /# iface ens3 inet dhcp {3}# disabled by booty/);
      assert.match(debugfs(dev, 'cat /etc/systemd/resolved.conf.d/90-booty.conf'), /DNS=172\.16\.1\.2/);
      assert.match(debugfs(dev, 'stat /etc/resolv.conf'), /Type: symlink/, 'resolv.conf stays a symlink');
      assert.equal(debugfs(dev, 'cat /root/.ssh/authorized_keys'), 'ssh-ed25519 AAAAC3Nza test\n');
      const hostRunAfter = fs.existsSync('/run/systemd/resolve/stub-resolv.conf') ? fs.readFileSync('/run/systemd/resolve/stub-resolv.conf', 'utf8') : undefined;
      assert.equal(hostRunAfter, hostRunBefore, "the agent's own /run is untouched");
      assert.doesNotMatch(fs.readFileSync('/proc/mounts', 'utf8'), /booty-root-/, 'nothing left mounted');
    } finally {
      loop.detach();
    }
  });
});
