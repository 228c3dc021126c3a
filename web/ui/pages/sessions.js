// pages/sessions.js: persistent sessions, online and offline, with their
// backlog and expiry; Delete removes one (and disconnects it if online).
import { h, pagedTable, confirmAction, toast, fmtAgo, fmtBytes, fmtNum, fmtDuration, fmtTime } from '../lib.js';

export function mount(el, ctx) {
  const online = h('select', { dataset: { filter: 'online' }, title: 'Show online, offline or all sessions' },
    h('option', { value: '' }, 'online and offline'),
    h('option', { value: 'true' }, 'online only'),
    h('option', { value: 'false' }, 'offline only'));
  online.value = ['true', 'false'].includes(ctx.params.online) ? ctx.params.online : '';
  el.append(h('h2', {}, 'Persistent sessions'));

  async function remove(row, reload) {
    const what = row.client_id || row.id;
    if (!confirmAction(`Delete session ${what}${row.online ? ' (it is connected and will be disconnected)' : ''}? Its subscriptions and queued messages are lost.`)) return;
    try {
      await ctx.api('DELETE', `/api/v1/sessions/${encodeURIComponent(row.id)}`);
      toast(`Deleted session ${what}`, 'ok');
    } catch (e) {
      toast(`Delete failed: ${e.message}`, 'error');
    }
    reload();
  }

  const expiry = (r) => {
    if (r.online) return r.expiry_seconds ? h('span', { class: 'muted' }, fmtDuration(r.expiry_seconds) + ' after disconnect') : h('span', { class: 'muted' }, 'never');
    if (!r.expires_at) return 'never';
    const left = (Date.parse(r.expires_at) - Date.now()) / 1000;
    return h('span', { title: fmtTime(r.expires_at) }, left > 0 ? 'in ' + fmtDuration(left) : 'due');
  };

  const table = pagedTable(el, {
    name: 'sessions', path: '/api/v1/sessions', q: ctx.params.q || '',
    params: { online: online.value }, tools: online, autoRefresh: 5000, sort: ctx.params.sort || '',
    filterPlaceholder: 'client id or user',
    rowId: (r) => r.id,
    columns: [
      { key: 'id', label: 'Client', sort: 'id', render: (r) => (r.online ? h('a', { href: '#/clients?' + new URLSearchParams({ q: r.client_id || r.id, id: r.id }), title: r.id }, r.client_id || r.id) : h('span', { title: r.id }, r.client_id || r.id)) },
      { key: 'online', label: 'State', render: (r) => h('span', { class: 'badge ' + (r.online ? 'ok' : '') }, r.online ? 'online' : 'offline') },
      { key: 'protocol', label: 'Protocol', render: (r) => `${r.protocol} ${r.version}` },
      { key: 'user', label: 'User' },
      { key: 'connected_at', label: 'Connected', sort: 'connected_at', render: (r) => (r.online && r.connected_at ? h('span', { title: fmtTime(r.connected_at) }, fmtAgo(r.connected_at)) : '') },
      { key: 'subscriptions', label: 'Subs', num: true },
      { key: 'queued', label: 'Queued', sort: 'queued', num: true, render: (r) => fmtNum(r.queued) },
      { key: 'queued_bytes', label: 'Queued bytes', num: true, render: (r) => fmtBytes(r.queued_bytes) },
      { key: 'backlog', label: 'Backlog', num: true, render: (r) => fmtNum(r.backlog) },
      { key: 'expires_at', label: 'Expiry', render: expiry },
    ],
    actions: (r, reload) => [h('button', { type: 'button', class: 'danger', dataset: { action: 'delete' }, onclick: () => remove(r, reload) }, 'Delete')],
  });
  online.addEventListener('change', () => table.setParams({ online: online.value }));
  return () => table.destroy();
}
