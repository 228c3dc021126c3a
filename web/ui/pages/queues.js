// pages/queues.js: point-to-point queues and durable subscriptions
// (GET /api/v1/queues?kind=queue|durable) with their depth, unacked
// messages and consumers; purge either kind, delete a durable subscription.
import { api, h, pagedTable, confirmAction, toast, fmtNum } from '../lib.js';

const KINDS = [['', 'all'], ['queue', 'queues'], ['durable', 'durable subscriptions']];

export async function mount(el, ctx) {
  const params = ctx.params || {};
  const kind = KINDS.some(([k]) => k === params.kind) ? params.kind : '';
  const select = h('select', { dataset: { kind: '' }, title: 'kind', 'aria-label': 'kind' },
    KINDS.map(([k, label]) => h('option', { value: k, selected: k === kind }, label)));

  async function purge(row, reload) {
    if (!confirmAction(`Purge the ${fmtNum(row.ready)} ready message(s) of ${row.kind === 'durable' ? 'durable subscription' : 'queue'} ${row.name}? Unacknowledged messages stay with their consumers.`)) return;
    try {
      const res = await api('POST', '/api/v1/queues/' + encodeURIComponent(row.name) + '/purge');
      toast(`Purged ${fmtNum(res && res.purged)} message(s) from ${row.name}`, 'ok');
    } catch (e) {
      toast(`Purge of ${row.name} failed: ${e.message}`, 'error');
    }
    reload();
  }

  async function remove(row, reload) {
    if (!confirmAction(`Delete durable subscription ${row.name} with its ${fmtNum(row.ready + row.unacked)} stored message(s)? A connected consumer's subscription ends.`)) return;
    try {
      await api('DELETE', '/api/v1/queues/' + encodeURIComponent(row.name));
      toast(`Deleted durable subscription ${row.name}`, 'ok');
    } catch (e) {
      toast(`Delete of ${row.name} failed: ${e.message}`, 'error');
    }
    reload();
  }

  el.append(h('h2', {}, 'Queues and durable subscriptions'));
  const table = pagedTable(el, {
    name: 'queues', path: '/api/v1/queues', q: params.q || '',
    params: { kind }, tools: select,
    filterPlaceholder: 'queue name',
    rowId: (r) => r.name,
    columns: [
      { key: 'name', label: 'Name', render: (r) => h('span', { class: 'mono' }, r.name) },
      { key: 'kind', label: 'Kind', render: (r) => h('span', { class: 'badge' + (r.kind === 'durable' ? ' ok' : '') }, r.kind === 'durable' ? 'durable' : 'queue') },
      { key: 'ready', label: 'Ready', num: true, render: (r) => fmtNum(r.ready) },
      { key: 'unacked', label: 'Unacked', num: true, render: (r) => fmtNum(r.unacked) },
      { key: 'consumers', label: 'Consumers', num: true, render: (r) => fmtNum(r.consumers) },
    ],
    actions: (r, reload) => [
      h('button', { type: 'button', class: 'danger', dataset: { action: 'purge' },
        title: 'drop the ready messages', onclick: () => purge(r, reload) }, 'Purge'),
      r.kind === 'durable'
        ? h('button', { type: 'button', class: 'danger', dataset: { action: 'delete' }, title: 'delete the durable subscription',
          onclick: () => remove(r, reload) }, 'Delete')
        : null,
    ],
  });
  select.addEventListener('change', () => table.setParams({ kind: select.value }));
  return () => {};
}
