// pages/retained.js: retained messages (GET /api/v1/retained?q=PREFIX,
// in topic order) with size, QoS, age and a payload preview; delete one
// with DELETE /api/v1/retained?topic=T.
import { api, h, pagedTable, confirmAction, toast, fmtBytes, fmtDuration, fmtTime } from '../lib.js';

const PREVIEW_CHARS = 120;

export async function mount(el, ctx) {
  const params = ctx.params || {};

  async function remove(row, reload) {
    if (!confirmAction(`Delete the retained message of ${row.topic}?`)) return;
    try {
      await api('DELETE', '/api/v1/retained', { topic: row.topic });
      toast(`Deleted the retained message of ${row.topic}`, 'ok');
    } catch (e) {
      toast(`Delete of ${row.topic} failed: ${e.message}`, 'error');
    }
    reload();
  }

  el.append(h('h2', {}, 'Retained messages'));
  pagedTable(el, {
    name: 'retained', path: '/api/v1/retained', q: params.q || params.prefix || '',
    filterPlaceholder: 'topic prefix, e.g. sensors/',
    rowId: (r) => r.topic,
    columns: [
      { key: 'topic', label: 'Topic', render: (r) => h('span', { class: 'mono' }, r.topic) },
      { key: 'size', label: 'Size', num: true, render: (r) => fmtBytes(r.size) },
      { key: 'qos', label: 'QoS', num: true },
      { key: 'age', label: 'Age', render: (r) => h('span', { title: r.expires_at ? 'expires ' + fmtTime(r.expires_at) : '' }, fmtDuration(r.age_seconds)) },
      { key: 'content_type', label: 'Content type', render: (r) => r.content_type || h('span', { class: 'muted' }, '—') },
      { key: 'preview', label: 'Preview', render: preview },
    ],
    actions: (r, reload) => [
      h('button', { type: 'button', class: 'danger', dataset: { action: 'delete' }, title: 'delete this retained message',
        onclick: () => remove(r, reload) }, 'Delete'),
    ],
  });
  return () => {};
}

/** preview: text as text (shortened), anything else as a base64 marker. */
function preview(r) {
  const more = r.truncated || (r.preview || '').length > PREVIEW_CHARS;
  if (r.preview_encoding === 'base64') {
    const b64 = r.preview || '';
    return h('span', { class: 'mono', title: 'binary payload (base64 of the first bytes)' },
      h('span', { class: 'badge' }, 'binary'), ' ', b64.slice(0, PREVIEW_CHARS), more ? '…' : '');
  }
  const text = (r.preview || '').replace(/\s+/g, ' ');
  if (text === '' && r.size === 0) return h('span', { class: 'muted' }, '(empty)');
  return h('span', { class: 'mono', title: r.preview }, text.slice(0, PREVIEW_CHARS), more ? '…' : '');
}
