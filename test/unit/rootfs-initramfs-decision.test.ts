// When a rootfs deploy keeps the tarball's initramfs and when it runs update-initramfs.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decideInitramfs, initramfsModules } from '../../src/rootfs/initramfs-decision.ts';

const K = '6.1.0-50-amd64';

const trees: string[] = [];
after(() => { for (const d of trees) fs.rmSync(d, { recursive: true, force: true }); });

function tree(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'booty-initramfs-decision-'));
  trees.push(root);
  for (const [p, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), content);
  }
  return root;
}

const debian = {
  [`boot/vmlinuz-${K}`]: 'kernel',
  [`boot/initrd.img-${K}`]: 'initrd',
  'etc/initramfs-tools/initramfs.conf': '# comment\nMODULES=most\nBUSYBOX=auto\n',
};

test('a Debian tree with an initrd for its kernel keeps it when booty writes only fstab, machine-id, hostname and network files', () => {
  const root = tree(debian);
  const d = decideInitramfs(root, [K], ['/etc/fstab', '/etc/machine-id', '/etc/hostname', '/etc/hosts', '/etc/systemd/network/10-booty.network', '/etc/netplan/90-booty.yaml']);
  assert.equal(d.update, false);
  assert.match(d.reason, new RegExp(`initrd\\.img-${K}.*MODULES=most`));
});

test('a kernel without its initrd (or with an empty one) is regenerated', () => {
  const root = tree({ ...debian, [`boot/vmlinuz-6.1.0-51-amd64`]: 'newer kernel' });
  const d = decideInitramfs(root, [K, '6.1.0-51-amd64'], ['/etc/fstab']);
  assert.equal(d.update, true);
  assert.match(d.reason, /no \/boot\/initrd\.img-6\.1\.0-51-amd64 for its kernel 6\.1\.0-51-amd64/);
  const empty = tree({ ...debian, [`boot/initrd.img-${K}`]: '' });
  assert.equal(decideInitramfs(empty, [K], []).update, true);
});

test('MODULES=dep (the build host\'s drivers) is regenerated; conf.d files override initramfs.conf in name order', () => {
  const dep = tree({ ...debian, 'etc/initramfs-tools/conf.d/90-local': 'MODULES="dep"\n' });
  assert.equal(initramfsModules(dep), 'dep');
  const d = decideInitramfs(dep, [K], []);
  assert.equal(d.update, true);
  assert.match(d.reason, /MODULES=dep/);
  const back = tree({ ...debian, 'etc/initramfs-tools/conf.d/10-a': 'MODULES=dep\n', 'etc/initramfs-tools/conf.d/20-b': 'MODULES=list # test drivers\n' });
  assert.equal(initramfsModules(back), 'list');
  assert.equal(decideInitramfs(back, [K], []).update, false);
  assert.equal(initramfsModules(tree({})), 'most', 'mkinitramfs\'s default when nothing sets it');
});

test('a file the action writes that mkinitramfs reads forces regeneration, naming it', () => {
  const root = tree(debian);
  for (const p of ['/etc/modprobe.d/blacklist-x.conf', '/etc/initramfs-tools/modules', '/etc/crypttab', '/etc/modules', '/etc/udev/rules.d/70-net.rules', '/etc/systemd/network/10-lan.link']) {
    const d = decideInitramfs(root, [K], ['/etc/fstab', p]);
    assert.equal(d.update, true, p);
    assert.match(d.reason, new RegExp(`${p.replaceAll('.', '\\.')} was written into the tree`));
  }
  for (const p of ['/etc/modulesfoo', '/etc/ssh/sshd_config', '/etc/udevx']) assert.equal(decideInitramfs(root, [K], [p]).update, false, p);
});

test('the initrd is looked up inside the tree: an absolute symlink does not reach the host', () => {
  const root = tree({ [`boot/vmlinuz-${K}`]: 'kernel', 'etc/initramfs-tools/initramfs.conf': 'MODULES=most\n' });
  // resolved inside the tree the link names its own (missing) /etc/hostname, not the host's
  fs.symlinkSync(`/boot/../../../../../etc/hostname`, path.join(root, 'boot', `initrd.img-${K}`));
  assert.equal(decideInitramfs(root, [K], []).update, true);
});
