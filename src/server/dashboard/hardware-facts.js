// What a machine's agent reported of its hardware at its last boot (GET /api/machines/<mac>
// carries the inventory in full): the system, firmware, CPU and memory, a row per disk and per NIC.

import { bytes, h } from './dom.js';

const mib = (n) => (n >= 2 ** 40 ? `${(n / 2 ** 40).toFixed(1)} TiB` : n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : `${Math.round(n / 2 ** 20)} MiB`);

function table(id, head, rows) {
  return h('div', { class: 'table-wrap' }, h('table', { id },
    h('thead', {}, h('tr', {}, head.map((t) => h('th', { text: t })))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => (c instanceof Node ? h('td', {}, c) : h('td', { text: c ?? '' }))))))));
}

export function hardwareFacts(inv, received) {
  if (!inv) return h('div', { class: 'empty', id: 'hardware', text: 'No hardware reported yet: the agent sends it at every boot.' });
  const s = inv.system || {};
  const facts = [
    ['System', [s.vendor, s.product, s.version].filter(Boolean).join(' ') || 'unknown'],
    ['Serial / UUID', [s.serial, s.uuid].filter(Boolean).join(' / ') || '—'],
    ['Board', [s.boardVendor, s.boardProduct, s.boardSerial && `serial ${s.boardSerial}`].filter(Boolean).join(' ') || '—'],
    ['Firmware', `${inv.firmware.mode === 'uefi' ? 'UEFI' : 'BIOS'}${inv.firmware.secureBoot === undefined ? '' : inv.firmware.secureBoot ? ', Secure Boot on' : ', Secure Boot off'}${s.biosVendor || s.biosVersion ? ` · ${[s.biosVendor, s.biosVersion, s.biosDate].filter(Boolean).join(' ')}` : ''}`],
    ['CPU', `${inv.cpu.model ? `${inv.cpu.model}, ` : ''}${inv.cpu.threads} logical CPU${inv.cpu.threads === 1 ? '' : 's'}${inv.cpu.sockets ? `, ${inv.cpu.sockets} socket${inv.cpu.sockets === 1 ? '' : 's'}` : ''}${inv.cpu.cores ? `, ${inv.cpu.cores} cores` : ''}`],
    ['Memory', `${mib(inv.memory.totalBytes)} (${bytes(inv.memory.totalBytes)})`],
    ['Reported', `${new Date(received || inv.collected).toLocaleString()}`],
  ];
  return h('div', { id: 'hardware' },
    h('dl', { class: 'settings' }, facts.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })])),
    h('h3', { text: 'Disks' }),
    inv.disks.length === 0 ? h('div', { class: 'empty', text: 'no disks found' }) : table('disks',
      ['Name', 'Size', 'Sectors (logical / physical)', 'Transport', 'Kind', 'Model', 'Serial', 'WWN'],
      inv.disks.map((d) => [d.name, `${mib(d.sizeBytes)}`, `${d.logicalSectorSize} / ${d.physicalSectorSize}`, d.transport,
        [d.rotational === undefined ? null : d.rotational ? 'rotational' : 'solid state', d.removable ? 'removable' : null, d.readOnly ? 'read-only' : null].filter(Boolean).join(', '),
        [d.vendor, d.model].filter(Boolean).join(' '), d.serial, d.wwn])),
    h('h3', { text: 'Network' }),
    inv.nics.length === 0 ? h('div', { class: 'empty', text: 'no network interfaces found' }) : table('nics',
      ['Name', 'MAC', 'Driver', 'Speed', 'Link'],
      inv.nics.map((n) => [n.name, n.mac, n.driver, n.speedMbps === undefined ? '' : n.speedMbps >= 1000 ? `${n.speedMbps / 1000} Gb/s` : `${n.speedMbps} Mb/s`, n.link ? 'up' : 'down'])));
}
