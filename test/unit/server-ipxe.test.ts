// iPXE scripts of booty server: syntax (checked by test/helpers/ipxe-script-check.ts, which is
// itself shown to catch broken scripts), the command line the agent needs, and no way for a
// MAC, an action summary or a token to inject iPXE syntax.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ipxeBootScript, ipxeChainScript, ipxeExitScript } from '../../src/server/ipxe.ts';
import { checkIpxeScript } from '../helpers/ipxe-script-check.ts';

const opts = {
  serverUrl: 'http://10.0.0.1:3000', bootUrl: 'http://10.0.0.1:3000/boot', kernel: 'vmlinuz', initrd: 'booty.cpio.zst',
  console: 'console=tty0 console=ttyS0,115200',
};

describe('iPXE scripts', () => {
  it('the chain script asks for the per-MAC script by the booting NIC', () => {
    const s = ipxeChainScript('http://10.0.0.1:3000');
    assert.deepEqual(checkIpxeScript(s), []);
    assert.match(s, /^chain --autofree http:\/\/10\.0\.0\.1:3000\/ipxe\/\$\{netX\/mac:hexhyp\} \|\| goto failed$/m);
  });

  it('the boot script loads kernel and initramfs with MYURL, BOOTIF, console and token', () => {
    const s = ipxeBootScript('52-54-00-12-34-56', 'deploy http://h/images/u.img.gz -> /dev/sda', { ...opts, token: 's3cret', extraArgs: 'booty.debug booty.countdown=5' });
    assert.deepEqual(checkIpxeScript(s), []);
    const kernel = s.split('\n').find((l) => l.startsWith('kernel '));
    assert.ok(kernel !== undefined);
    const words = kernel.replace(/ \|\| goto failed$/, '').split(' ');
    assert.equal(words[1], 'http://10.0.0.1:3000/boot/vmlinuz');
    for (const w of ['initrd=booty.cpio.zst', 'console=tty0', 'console=ttyS0,115200', 'MYURL=http://10.0.0.1:3000', 'BOOTIF=01-52-54-00-12-34-56', 'booty.token=s3cret', 'booty.debug', 'booty.countdown=5']) {
      assert.ok(words.includes(w), `${w} in ${kernel}`);
    }
    assert.match(s, /^initrd http:\/\/10\.0\.0\.1:3000\/boot\/booty\.cpio\.zst \|\| goto failed$/m);
    assert.match(s, /^boot \|\| goto failed$/m);
    assert.match(s, /^:failed$/m);
  });

  it('machines with nothing to do exit (boot from disk)', () => {
    const s = ipxeExitScript('52-54-00-12-34-56', 'one-shot deploy done');
    assert.deepEqual(checkIpxeScript(s), []);
    assert.doesNotMatch(s, /^(kernel|initrd|boot)\b/m);
    assert.match(s, /^exit$/m);
  });

  it('nothing from a MAC, a summary or a token can inject iPXE syntax', () => {
    const s = ipxeBootScript('52-54-00-12-34-56', 'deploy http://h/${evil} || shell && reboot', { ...opts, token: 'has space ${x}', extraArgs: 'ok=1 bad${x}=2' });
    assert.deepEqual(checkIpxeScript(s), []);
    assert.doesNotMatch(s, /\$\{evil\}|\|\| shell|booty\.token=|bad/);
    assert.match(s, /ok=1/);
    const e = ipxeExitScript('x\nkernel http://evil/k', 'reason ${y} && shell');
    assert.deepEqual(checkIpxeScript(e), []);
    assert.equal(e.split('\n').filter((l) => l.startsWith('kernel')).length, 0);
  });

  it('the checker catches broken scripts', () => {
    const bad: [string, RegExp][] = [
      ['#!gpxe\nexit\n', /must be "#!ipxe"/],
      ['#!ipxe\nkernal http://h/k\nboot\n', /unknown command "kernal"/],
      ['#!ipxe\nboot || goto nowhere\n', /goto "nowhere" has no label/],
      ['#!ipxe\nchain http://h/${net0/mac\nexit\n', /unclosed/],
      ['#!ipxe\n:a\n:a\nexit\n', /defined twice/],
      ['#!ipxe\nkernel vmlinuz\nboot\n', /kernel needs a URL/],
      ['#!ipxe\necho hi\n', /never boots, chains or exits/],
      ['#!ipxe\nboot || \nexit\n', /empty command/],
    ];
    for (const [text, want] of bad) {
      const p = checkIpxeScript(text);
      assert.ok(p.some((x) => want.test(x)), `${JSON.stringify(text)}: ${p.join('; ')}`);
    }
  });
});
