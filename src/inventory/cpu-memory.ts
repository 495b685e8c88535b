// CPUs from /proc/cpuinfo (x86 and arm64 spellings) and memory from /proc/meminfo.
import path from 'node:path';
import type { MachineInventory } from '../config/inventory.ts';
import { printable, readText } from './sysfs-text.ts';

export function parseCpuinfo(text: string): MachineInventory['cpu'] {
  let threads = 0;
  let model: string | undefined;
  const sockets = new Set<string>();
  const coresPerSocket = new Map<string, number>();
  let socket = '0';
  for (const line of text.split('\n')) {
    const m = /^([^:]+?)\s*:\s*(.*)$/.exec(line);
    if (m === null) continue;
    const [, key, value] = m;
    if (key === 'processor') threads++;
    else if ((key === 'model name' || key === 'Processor' || key === 'cpu model') && model === undefined) model = printable(value);
    else if (key === 'physical id') { socket = value; sockets.add(value); }
    else if (key === 'cpu cores') coresPerSocket.set(socket, Number(value));
  }
  const cores = [...coresPerSocket.values()].reduce((a, b) => a + b, 0);
  return {
    ...(model === undefined ? {} : { model }),
    threads,
    ...(sockets.size > 0 ? { sockets: sockets.size } : {}),
    ...(cores > 0 ? { cores } : {}),
  };
}

/** MemTotal in bytes (the kernel gives kB = KiB); 0 when unreadable. */
export function parseMeminfo(text: string): number {
  const m = /^MemTotal:\s+(\d+)\s*kB/m.exec(text);
  return m === null ? 0 : Number(m[1]) * 1024;
}

export function readCpu(procRoot = '/proc'): MachineInventory['cpu'] {
  return parseCpuinfo(readText(path.join(procRoot, 'cpuinfo')) ?? '');
}

export function readMemory(procRoot = '/proc'): MachineInventory['memory'] {
  return { totalBytes: parseMeminfo(readText(path.join(procRoot, 'meminfo')) ?? '') };
}
