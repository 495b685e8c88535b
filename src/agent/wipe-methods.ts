// The `wipe` action's methods (README "Wiping a disk"), each followed by the verification of
// wipe-verify.ts, and the result saying which method actually ran:
//   quick    zero the first 100 MiB and the last MiB (wipe.ts); verified inside those ranges
//   discard  BLKDISCARD of the whole disk; zeros are verified only where the device promises them
//            (queue/discard_zeroes_data), otherwise the reads are reported as what they are
//   zero     the whole disk zeroed: BLKZEROOUT (write-zeroes offload or the kernel's zero pages),
//            or zeros written where the ioctl is refused
//   secure   the device erases itself: NVMe Format NVM with Secure Erase Settings 1 (user data
//            erase) through the admin passthrough; other devices have no secure erase here
// A method that cannot run on the disk falls back to `zero` when the action allows it, and the
// result names both; otherwise the run fails before anything is written. A verification that reads
// anything but zeros where zeros were promised fails the run: it is never reported as done.
import fs from 'node:fs';
import path from 'node:path';
import type { WipeMethod } from '../config/action.ts';
import { blockDeviceSize, discard, zeroOut } from '../sys/blockdev.ts';
import { formatNvm, identifyController, identifyNamespace, namespaceId, parseIdentifyController, parseIdentifyNamespace } from '../sys/nvme.ts';
import { BootyError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { rereadPartitions } from '../sys/blockdev.ts';
import { verifyPlan, verifyZero, type Verification } from './wipe-verify.ts';
import { wipeDisk, wipeRanges } from './wipe.ts';

const MiB = 1 << 20;
/** whole-disk zeroing goes in steps of this size, for progress */
const ZERO_STEP = 256 * MiB;
/** how long a Format NVM may take before the kernel gives up on it */
const FORMAT_TIMEOUT_MS = 4 * 3600 * 1000;

export interface WipeRequest {
  disk: string;
  method: WipeMethod;
  fallback: 'zero' | 'none';
  log: Logger;
  onProgress?: (bytes: number, total: number) => void;
  /** sysfs root (tests) */
  sysRoot?: string;
}

export interface WipeOutcome {
  /** what ran, in words: "secure (nvme format)", "zero (BLKZEROOUT)", "zero (fallback: ...)" */
  method: string;
  /** every sample read back as zeros where the method promises zeros */
  verified: boolean;
  verification: string;
  bytesZeroed: number;
  size: number;
}

/** A method that cannot run on this disk (nothing was written). */
class Unavailable extends Error {}

function queueAttr(disk: string, attr: string, sysRoot: string): string | undefined {
  const name = path.basename(fs.realpathSync(disk));
  try { return fs.readFileSync(path.join(sysRoot, 'class', 'block', name, 'queue', attr), 'utf8').trim(); } catch { return undefined; }
}

function deviceSize(disk: string): { size: number; block: boolean } {
  const fd = fs.openSync(disk, fs.constants.O_RDONLY);
  try {
    const st = fs.fstatSync(fd);
    return st.isBlockDevice() ? { size: blockDeviceSize(fd), block: true } : { size: st.size, block: false };
  } finally { fs.closeSync(fd); }
}

async function zeroWhole(disk: string, size: number, req: WipeRequest): Promise<string> {
  const fd = fs.openSync(disk, fs.constants.O_RDWR | fs.constants.O_EXCL);
  let how = 'BLKZEROOUT';
  try {
    const chunk = Buffer.alloc(4 * MiB);
    for (let off = 0; off < size;) {
      const len = Math.min(ZERO_STEP, size - off);
      if (how === 'BLKZEROOUT') {
        try { await zeroOut(fd, off, len); } catch (e) {
          req.log.info(`BLKZEROOUT refused on ${disk} (${(e as Error).message}): writing zeros instead`);
          how = 'written zeros';
        }
      }
      if (how === 'written zeros') {
        for (let done = 0; done < len;) done += fs.writeSync(fd, chunk, 0, Math.min(chunk.length, len - done), off + done);
      }
      off += len;
      req.onProgress?.(off, size);
    }
    fs.fdatasyncSync(fd);
    try { rereadPartitions(fd); } catch { /* a regular file, or partitions in use: they go at reboot */ }
  } finally { fs.closeSync(fd); }
  return how;
}

async function nvmeFormat(disk: string, req: WipeRequest): Promise<string> {
  const name = path.basename(fs.realpathSync(disk));
  if (!/^nvme\d+n\d+$/.test(name)) throw new Unavailable(`${disk} is not an NVMe namespace${/^sd[a-z]+$/.test(name) ? ' (ATA Secure Erase and SCSI SANITIZE are not implemented by booty)' : ''}`);
  const fd = fs.openSync(disk, fs.constants.O_RDWR | fs.constants.O_EXCL);
  try {
    let ctrl, ns, nsid;
    try {
      nsid = namespaceId(fd);
      ctrl = parseIdentifyController(await identifyController(fd));
      ns = parseIdentifyNamespace(await identifyNamespace(fd, nsid));
    } catch (e) { throw new Unavailable(`NVMe Identify failed on ${disk}: ${(e as Error).message}`); }
    // namespaces of this controller the kernel sees (NN in Identify is the most it supports)
    const ctrlName = /^(nvme\d+)n\d+$/.exec(name)![1];
    let siblings = 1;
    try { siblings = fs.readdirSync(path.join(req.sysRoot ?? '/sys', 'class', 'block')).filter((n) => new RegExp(`^${ctrlName}n\\d+$`).test(n)).length; } catch { /* keep 1 */ }
    req.log.info(`${disk}: NVMe "${ctrl.model}" serial ${ctrl.serial}, namespace ${nsid} (${siblings} active on this controller), LBA format ${ns.lbaf} (${ns.blockSize}-byte blocks); format ${ctrl.formatSupported ? 'supported' : 'NOT supported'}, crypto erase ${ctrl.cryptoEraseSupported ? 'supported' : 'not supported'}, sanitize ${ctrl.sanitize.crypto || ctrl.sanitize.block || ctrl.sanitize.overwrite ? 'supported' : 'not supported'}`);
    if (!ctrl.formatSupported) throw new Unavailable(`${disk}: the controller does not support Format NVM (Identify Controller OACS bit 1 is 0)`);
    if ((ctrl.formatAllNamespaces || ctrl.eraseAllNamespaces) && siblings > 1) {
      throw new Unavailable(`${disk}: a secure erase on this controller applies to all its ${siblings} namespaces (Identify Controller FNA), not just this one`);
    }
    req.log.info(`${disk}: Format NVM with Secure Erase Settings 1 (user data erase), keeping LBA format ${ns.lbaf}`);
    const started = performance.now();
    try { await formatNvm(fd, nsid, ns, 1, FORMAT_TIMEOUT_MS); } catch (e) {
      throw new BootyError({ stage: 'write', code: 'wipe-nvme-format-failed', diskState: 'unknown', message: `Format NVM on ${disk} failed: ${(e as Error).message}`, hint: 'the drive may be partially erased: run the wipe again, or with method "zero"' });
    }
    req.log.info(`${disk}: Format NVM done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    try { rereadPartitions(fd); } catch { /* the old partitions go at reboot */ }
  } finally { fs.closeSync(fd); }
  return 'nvme format, user data erase';
}

async function discardWhole(disk: string, size: number): Promise<void> {
  const fd = fs.openSync(disk, fs.constants.O_RDWR | fs.constants.O_EXCL);
  try {
    try { await discard(fd, 0, size); } catch (e) { throw new Unavailable(`${disk} refuses BLKDISCARD (${(e as Error).message})`); }
    try { rereadPartitions(fd); } catch { /* idem */ }
  } finally { fs.closeSync(fd); }
}

function failVerification(disk: string, method: string, v: Verification): never {
  throw new BootyError({
    stage: 'verify', code: 'wipe-not-verified', diskState: 'unknown',
    message: `wipe of ${disk} (${method}) did not verify: ${v.summary}`,
    hint: 'the data may still be readable: run the wipe again with method "zero", or destroy the disk',
  });
}

export async function runWipeMethod(req: WipeRequest): Promise<WipeOutcome> {
  const sysRoot = req.sysRoot ?? '/sys';
  const { disk } = req;
  const { size } = deviceSize(disk);
  const wholeDiskVerify = (method: string): WipeOutcome => {
    const v = verifyZero(disk, verifyPlan(size));
    if (!v.zero) failVerification(disk, method, v);
    return { method, verified: true, verification: v.summary, bytesZeroed: size, size };
  };
  const zero = async (prefix: string) => wholeDiskVerify(`${prefix}zero (${await zeroWhole(disk, size, req)})`);

  try {
    switch (req.method) {
      case 'quick': {
        const r = await wipeDisk(disk, { log: req.log });
        const ranges = wipeRanges(size, 100 * MiB, MiB);
        const v = verifyZero(disk, verifyPlan(size, { within: ranges }), { edgeLabel: 'the zeroed ranges (first 100 MiB, last MiB)' });
        if (!v.zero) failVerification(disk, 'quick', v);
        return { method: 'quick (first 100 MiB and last MiB zeroed)', verified: true, verification: v.summary, bytesZeroed: r.bytesZeroed, size };
      }
      case 'zero':
        return await zero('');
      case 'secure':
        return wholeDiskVerify(`secure (${await nvmeFormat(disk, req)})`);
      case 'discard': {
        await discardWhole(disk, size);
        const promised = queueAttr(disk, 'discard_zeroes_data', sysRoot) === '1';
        const v = verifyZero(disk, verifyPlan(size));
        if (promised) {
          if (!v.zero) failVerification(disk, 'discard', v);
          return { method: 'discard (BLKDISCARD, the device promises zeros)', verified: true, verification: v.summary, bytesZeroed: 0, size };
        }
        // Honest: the device made no promise, so what the reads found is reported, not judged.
        return {
          method: 'discard (BLKDISCARD)', verified: false, bytesZeroed: 0, size,
          verification: `the device does not promise that discarded blocks read as zeros (queue/discard_zeroes_data is not 1): ${v.summary}; use method "zero" or "secure" for a verified erase`,
        };
      }
    }
  } catch (e) {
    if (!(e instanceof Unavailable)) throw e;
    if (req.fallback !== 'zero') {
      throw new BootyError({
        stage: 'preflight', code: 'wipe-method-unavailable', diskState: 'untouched',
        message: `wipe method "${req.method}" cannot run: ${e.message}`,
        hint: 'set "fallback": "zero" in the action to zero the whole disk instead, or choose another method',
      });
    }
    req.log.warn(`wipe method "${req.method}" cannot run (${e.message}); falling back to zero as the action allows`);
    return zero(`${req.method} not available (${e.message}); fallback: `);
  }
}
