// What `initramfs/init --make-code-cache` runs besides loading the agent's modules, so that the
// V8 code cache of the bundle (src/build/initramfs.ts) also holds the functions the agent's boot
// calls before its first byte is written: V8 compiles a function on its first call, and under
// QEMU's TCG that costs tens of milliseconds for a large one (the action's validators, undici's
// request path; README "In the VM"). Only the paths that touch nothing outside this process:
// parsing a sample action, matching sample modaliases, one HTTP request to this process itself.
import { parseAction } from '../config/parse.ts';
import { silentLogger } from '../util/log.ts';
import { warmHttp } from './http-warm-up.ts';
import { buildIndex, modulesForModalias, planLoad } from './modalias.ts';

// the shapes a booty server sends (a deploy with its options) and BOOTy's combined form
const sampleActions: unknown[] = [
  { action: 'deploy', image: 'http://10.0.0.1:8080/os.img.gz', sha256: 'a'.repeat(64), grow: { partition: 'last' }, after: 'reboot', onError: 'poweroff' },
  { booty: { action: 'deploy', image: 'http://10.0.0.1:8080/os.img.zst', after: 'reboot' } },
];

const sampleModules = {
  alias: 'alias pci:v00001AF4d00001000sv*sd*bc*sc*i* virtio_pci\nalias virtio:d00000001v* virtio_net\nalias cpu:type:x86,ven*fam*mod*:feature:*0094* crc32c_intel\n',
  dep: 'kernel/drivers/virtio/virtio_pci.ko.zst: kernel/drivers/virtio/virtio.ko.zst\nkernel/drivers/virtio/virtio.ko.zst:\nkernel/drivers/net/virtio_net.ko.zst: kernel/drivers/virtio/virtio.ko.zst\nkernel/arch/x86/crypto/crc32c-intel.ko.zst:\n',
};

/** Runs the boot's pure paths once (never throws: a sample the code no longer takes only means less in the cache). */
export async function exerciseBootPaths(): Promise<void> {
  for (const a of sampleActions) {
    try { parseAction(a); } catch { /* less in the cache, nothing else */ }
  }
  const index = buildIndex(sampleModules);
  const wanted = ['pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00', 'virtio:d00000001v00001AF4'].flatMap((m) => modulesForModalias(index, m));
  planLoad(index, wanted, new Set());
  await warmHttp(silentLogger);
}
