// #/images : the image catalog.

import { getJson } from './api.js';
import { bytes, h, main, setNav } from './dom.js';

async function renderImages() {
  setNav('images');
  const { images } = await getJson('/api/images');
  main.replaceChildren(
    h('h1', { text: 'Images' }),
    images.length === 0 ? h('div', { class: 'empty', text: 'No images. Upload one with PUT /images/<name>, or capture a machine.' })
      : h('div', { class: 'table-wrap' }, h('table', { id: 'images' },
        h('thead', {}, h('tr', {}, ['Name', 'Size', 'Format', 'Uncompressed', 'sha256', 'From', 'Stored', 'Used by'].map((t) => h('th', { text: t })))),
        h('tbody', {}, images.map((i) => h('tr', {},
          h('td', {}, h('a', { href: `/images/${encodeURIComponent(i.name)}`, text: i.name })),
          h('td', { class: 'num', text: bytes(i.size) }),
          h('td', { text: i.format || '' }),
          h('td', { class: 'num', text: i.uncompressedSize === undefined ? '' : bytes(i.uncompressedSize) }),
          h('td', { class: 'hash', title: i.sha256 || 'not hashed yet', text: i.sha256 ? `${i.sha256.slice(0, 12)}…` : 'hashing…' }),
          h('td', {}, i.machine ? h('a', { href: `#/m/${i.machine}`, text: `capture of ${i.machine}` }) : (i.via === 'import' ? 'placed by hand' : i.via || '')),
          h('td', { text: i.storedAt ? new Date(i.storedAt).toLocaleString() : new Date(i.mtime).toLocaleString() }),
          h('td', { text: (i.usedBy || []).join(', ') })))))));
}

export const imagesPage = {
  match: (hash) => (hash === '#/images' ? {} : null),
  render: renderImages,
  onImages: () => renderImages().catch(() => {}),
};
