// pages/clients.js: connected clients, one page (100 rows) at a time,
// sortable and filterable on the server; a Disconnect button per row and
// a detail panel with the client's subscriptions.
import { h, pagedTable, confirmAction, toast, fmtAgo, fmtBytes, fmtNum, fmtDuration, fmtTime } from '../lib.js';

const enc = encodeURIComponent;

export function slowBadge(s) {
  const kind = s === 'ok' || !s ? 'ok' : s === 'backlog' ? 'warn' : 'bad';
  return h('span', { class: 'badge ' + kind }, s || 'ok');
}

export function mount(el, ctx) {
  const online = h('select', { dataset: { filter: 'online' }, title: 'connected clients, or persistent sessions kept offline too' },
    h('option', { value: 'true' }, 'connected'),
    h('option', { value: '' }, 'connected and offline'),
    h('option', { value: 'false' }, 'offline only'));
  online.value = ['', 'false'].includes(ctx.params.online) ? ctx.params.online : 'true';
  const split = h('div', { class: 'split' });
  const list = h('div');
  const detail = h('aside', { class: 'panel detail', hidden: true, dataset: { detail: 'client' } });
  split.append(list, detail);
  el.append(h('h2', {}, 'Clients'), split);

  let selected = '';
  let detailSeq = 0;

  async function disconnect(row, after) {
    if (!confirmAction(`Disconnect client ${row.client_id || row.id}?`)) return;
    try {
      await ctx.api('POST', `/api/v1/clients/${enc(row.id)}/disconnect`);
      toast(`Disconnected ${row.client_id || row.id}`, 'ok');
    } catch (e) {
      toast(`Disconnect failed: ${e.message}`, 'error');
    }
    after();
  }

  const table = pagedTable(list, {
    name: 'clients', path: '/api/v1/clients', q: ctx.params.q || '', sort: ctx.params.sort || '',
    params: { online: online.value }, tools: online, autoRefresh: 5000,
    filterPlaceholder: 'client id, user or address',
    rowId: (r) => r.id,
    columns: [
      { key: 'id', label: 'Client', sort: 'id', render: (r) => h('button', { type: 'button', class: 'link', title: r.id, onclick: () => showDetail(r.id) }, r.client_id || r.id) },
      { key: 'protocol', label: 'Protocol', render: (r) => `${r.protocol} ${r.version}` },
      { key: 'transport', label: 'Transport' },
      { key: 'user', label: 'User' },
      { key: 'remote_addr', label: 'Remote address' },
      { key: 'connected_at', label: 'Connected', sort: 'connected_at', render: (r) => h('span', { title: fmtTime(r.connected_at) }, fmtAgo(r.connected_at)) },
      { key: 'keep_alive_seconds', label: 'Keep-alive', num: true, render: (r) => (r.keep_alive_seconds ? fmtDuration(r.keep_alive_seconds) : 'off') },
      { key: 'subscriptions', label: 'Subs', num: true },
      { key: 'inflight', label: 'Inflight', num: true },
      { key: 'queued', label: 'Queued', sort: 'queued', num: true, render: (r) => fmtNum(r.queued) },
      { key: 'msgs_in', label: 'Msgs in', sort: 'msgs_in', num: true, render: (r) => fmtNum(r.msgs_in) },
      { key: 'msgs_out', label: 'Msgs out', sort: 'msgs_out', num: true, render: (r) => fmtNum(r.msgs_out) },
      { key: 'bytes_in', label: 'Bytes in', sort: 'bytes_in', num: true, render: (r) => fmtBytes(r.bytes_in) },
      { key: 'bytes_out', label: 'Bytes out', sort: 'bytes_out', num: true, render: (r) => fmtBytes(r.bytes_out) },
      { key: 'slow', label: 'Slow', render: (r) => (r.online ? slowBadge(r.slow) : h('span', { class: 'badge' }, 'offline')) },
    ],
    actions: (r, reload) => [h('button', { type: 'button', class: 'danger', dataset: { action: 'disconnect' }, disabled: !r.online, title: r.online ? undefined : 'offline',
      onclick: () => disconnect(r, reload) }, 'Disconnect')],
    onLoad: () => markSelected(),
  });

  function markSelected() {
    for (const tr of list.querySelectorAll('tbody tr[data-id]')) tr.classList.toggle('selected', tr.dataset.id === selected);
  }

  function closeDetail() {
    selected = '';
    detailSeq++;
    detail.hidden = true;
    split.classList.remove('with-detail');
    markSelected();
  }

  async function showDetail(id) {
    selected = id;
    const my = ++detailSeq;
    markSelected();
    split.classList.add('with-detail');
    detail.hidden = false;
    detail.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
    let c;
    try {
      c = await ctx.api('GET', `/api/v1/clients/${enc(id)}`);
    } catch (e) {
      if (my !== detailSeq) return;
      detail.replaceChildren(h('header', {}, h('h3', {}, id), h('button', { type: 'button', class: 'small', onclick: closeDetail }, '✕')),
        h('p', { class: 'error' }, e.status === 404 ? 'This client is gone.' : e.message));
      return;
    }
    if (my !== detailSeq) return;
    const kv = (k, v) => (v === undefined || v === null || v === '' ? [] : [h('dt', {}, k), h('dd', {}, v)]);
    const subs = c.subscription_list || [];
    detail.replaceChildren(
      h('header', {}, h('h3', {}, c.client_id || c.id),
        h('span', {},
          h('button', { type: 'button', class: 'small', title: 'Reload', onclick: () => showDetail(id) }, '↻'), ' ',
          h('button', { type: 'button', class: 'small', title: 'Close', onclick: closeDetail }, '✕'))),
      h('dl', { class: 'kv' },
        kv('Session id', c.id), kv('Protocol', `${c.protocol} ${c.version}`), kv('Transport', c.transport), kv('User', c.user),
        kv('Remote address', c.remote_addr), kv('Online', c.online ? 'yes' : 'no'),
        kv('Connected', c.connected_at ? `${fmtTime(c.connected_at)} (${fmtAgo(c.connected_at)})` : ''),
        kv('Keep-alive', c.keep_alive_seconds ? fmtDuration(c.keep_alive_seconds) : 'off'),
        kv('Persistent', c.persistent ? 'yes' + (c.expiry_seconds ? `, expiry ${fmtDuration(c.expiry_seconds)}` : '') : 'no'),
        kv('Inflight', fmtNum(c.inflight)), kv('Queued', `${fmtNum(c.queued)} (${fmtBytes(c.queued_bytes)})`),
        kv('Backlog', c.backlog ? fmtNum(c.backlog) : ''),
        kv('Messages in / out', `${fmtNum(c.msgs_in)} / ${fmtNum(c.msgs_out)}`),
        kv('Bytes in / out', `${fmtBytes(c.bytes_in)} / ${fmtBytes(c.bytes_out)}`),
        kv('Slow consumer', slowBadge(c.slow))),
      h('h3', { class: 'gap-top' }, `Subscriptions (${subs.length})`),
      subs.length ? h('div', { class: 'table-wrap small' }, h('table', { dataset: { table: 'client-subscriptions' } },
        h('thead', {}, h('tr', {}, h('th', {}, 'Kind'), h('th', {}, 'Filter / queue'), h('th', { class: 'num' }, 'QoS'), h('th', {}, 'Options'))),
        h('tbody', {}, subs.map((s) => h('tr', { dataset: { id: s.key } },
          h('td', {}, s.kind),
          h('td', { class: 'wrap mono' }, s.kind === 'share' ? `$share/${s.group}/${s.filter}` : (s.filter || s.queue || s.key)),
          h('td', { class: 'num' }, String(s.qos)),
          h('td', { class: 'muted' }, [s.ack && s.ack !== 'auto' && 'ack ' + s.ack, s.no_local && 'no-local', s.subscription_id && 'id ' + s.subscription_id].filter(Boolean).join(', ')))))))
        : h('p', { class: 'muted' }, 'No subscriptions.'),
      h('p', {}, h('button', { type: 'button', class: 'danger', dataset: { action: 'disconnect' }, disabled: !c.online,
        onclick: () => disconnect(c, () => { table.reload(); showDetail(id); }) }, 'Disconnect')));
  }

  online.addEventListener('change', () => table.setParams({ online: online.value }));
  const onKey = (e) => { if (e.key === 'Escape' && selected) closeDetail(); };
  document.addEventListener('keydown', onKey);
  if (ctx.params.id) showDetail(ctx.params.id);
  return () => { detailSeq++; table.destroy(); document.removeEventListener('keydown', onKey); };
}
