// A small checker for the iPXE scripts booty server emits: the `#!ipxe` header, only commands
// iPXE knows, `||`/`&&` chains of commands, labels defined once, every `goto` landing on a label,
// `${...}` settings balanced and well-formed, and URLs where kernel/initrd/chain need one. It
// returns the problems found (empty: the script passes), so a test can also show it failing.

const COMMANDS = new Set([
  'kernel', 'initrd', 'imgfetch', 'module', 'chain', 'boot', 'imgexec', 'imgfree', 'exit', 'echo', 'sleep', 'goto',
  'dhcp', 'ifopen', 'ifconf', 'ifclose', 'set', 'clear', 'isset', 'iseq', 'prompt', 'shell', 'reboot', 'poweroff',
  'sanboot', 'params', 'param', 'menu', 'item', 'choose', 'show', 'ntp',
]);
const NEEDS_URL = new Set(['kernel', 'initrd', 'imgfetch', 'module', 'chain']);

export function checkIpxeScript(text: string): string[] {
  const problems: string[] = [];
  const lines = text.split('\n');
  if (lines[0] !== '#!ipxe') problems.push(`line 1: must be "#!ipxe", got ${JSON.stringify(lines[0])}`);
  const labels = new Set<string>();
  const gotos: [number, string][] = [];
  lines.forEach((raw, i) => {
    const n = i + 1;
    const line = raw.trim();
    if (i === 0 || line === '' || line.startsWith('#')) return;
    if (line.startsWith(':')) {
      const label = line.slice(1);
      if (!/^[A-Za-z0-9_-]+$/.test(label)) problems.push(`line ${n}: bad label ${JSON.stringify(line)}`);
      if (labels.has(label)) problems.push(`line ${n}: label "${label}" defined twice`);
      labels.add(label);
      return;
    }
    // settings: every ${ closes, names are plain
    for (let at = line.indexOf('${'); at !== -1; at = line.indexOf('${', at + 2)) {
      const close = line.indexOf('}', at);
      if (close === -1) { problems.push(`line ${n}: unclosed "\${"`); break; }
      const name = line.slice(at + 2, close);
      if (!/^[A-Za-z0-9_./:-]+$/.test(name)) problems.push(`line ${n}: bad setting name "${name}"`);
    }
    if (/\}/.test(line.replace(/\$\{[^}]*\}/g, ''))) problems.push(`line ${n}: "}" without "\${"`);
    for (const part of line.split(/\|\||&&/)) {
      const words = part.trim().split(/\s+/);
      const cmd = words[0];
      if (cmd === '' || cmd === undefined) { problems.push(`line ${n}: empty command in a chain`); continue; }
      if (!COMMANDS.has(cmd)) { problems.push(`line ${n}: unknown command "${cmd}"`); continue; }
      const args = words.slice(1).filter((w) => !w.startsWith('--'));
      if (cmd === 'goto') {
        if (args.length !== 1) problems.push(`line ${n}: goto needs one label`);
        else gotos.push([n, args[0]]);
      }
      if (NEEDS_URL.has(cmd) && !/^(https?:\/\/|tftp:\/\/|\$\{)/.test(args[0] ?? '')) problems.push(`line ${n}: ${cmd} needs a URL, got ${JSON.stringify(args[0] ?? '')}`);
    }
  });
  for (const [n, target] of gotos) if (!labels.has(target)) problems.push(`line ${n}: goto "${target}" has no label`);
  const commands = lines.slice(1).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith(':'));
  if (!commands.some((l) => /^(boot|exit|chain)\b/.test(l))) problems.push('the script never boots, chains or exits');
  return problems;
}
