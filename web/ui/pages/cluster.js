// pages/cluster.js: the cluster's nodes (GET /api/v1/cluster: health,
// routes, connections and rates of each, gathered from the other nodes
// over NATS by the node this page talks to) and a client search across
// the cluster that names the node holding each client
// (GET /api/v1/cluster/clients). On a single node: this node alone.
import { api, h, pagedTable, fmtAgo, fmtDuration, fmtNum, fmtRate, fmtTime } from '../lib.js';

function stateBadge(n) {
  if (n.state !== 'up') return h('span', { class: 'badge bad', title: n.state === 'stopped' ? 'said it was shutting down' : 'did not answer' }, n.state);
  if (!n.ready) return h('span', { class: 'badge warn', title: n.not_ready || 'not ready' }, 'not ready');
  return h('span', { class: 'badge ok' }, 'ready');
}

function protocols(n) {
  const by = {};
  for (const g of n.by_protocol || []) by[g.protocol] = (by[g.protocol] || 0) + g.count;
  return Object.entries(by).map(([p, c]) => `${p} ${fmtNum(c)}`).join(', ');
}

export function mount(el, ctx) {
  const summary = h('p', { class: 'muted', dataset: { cluster: 'summary' } });
  const tbody = h('tbody');
  const nodes = h('table', { dataset: { table: 'nodes' } },
    h('thead', {}, h('tr', {}, ['Node', 'Health', 'Joined', 'Peers routed', 'Connections', 'By protocol', 'Msgs in/s', 'Msgs out/s',
      'Uptime', 'Version', 'Addresses', 'Last seen'].map((l, i) => h('th', { class: i >= 3 && i <= 7 && i !== 5 ? 'num' : undefined }, l)))),
    tbody);
  const refresh = h('button', { type: 'button', dataset: { refresh: 'nodes' }, title: 'Ask every node again' }, '↻');
  el.append(h('h2', {}, 'Cluster'), h('div', { class: 'toolbar' }, refresh, summary), h('div', { class: 'table-wrap' }, nodes));

  let seq = 0;
  async function load() {
    const my = ++seq;
    let v;
    try {
      v = await api('GET', '/api/v1/cluster');
    } catch (e) {
      if (my !== seq) return;
      tbody.replaceChildren(h('tr', {}, h('td', { colspan: 12, class: 'error' }, e.message)));
      return;
    }
    if (my !== seq) return;
    const up = v.nodes.filter((n) => n.state === 'up').length;
    summary.textContent = v.cluster
      ? `${up} of ${v.nodes.length} nodes answering; this page talks to ${v.self}`
      : 'Single node: no [cluster] configured.';
    tbody.replaceChildren(...v.nodes.map((n) => h('tr', { dataset: { id: n.id, state: n.state }, class: n.self ? 'selected' : undefined },
      h('td', { class: 'mono' }, n.id, n.self ? h('span', { class: 'muted' }, ' (this node)') : null),
      h('td', {}, stateBadge(n)),
      h('td', {}, v.cluster && n.state === 'up' ? (n.joined ? 'yes' : 'no') : ''),
      h('td', { class: 'num' }, v.cluster && n.state === 'up' ? h('span', { title: `${n.routes} route connections` }, fmtNum(n.routed_peers)) : ''),
      h('td', { class: 'num' }, n.state === 'up' ? fmtNum(n.connections) : ''),
      h('td', {}, protocols(n)),
      h('td', { class: 'num' }, n.state === 'up' ? fmtRate(n.rates.msgs_in) : ''),
      h('td', { class: 'num' }, n.state === 'up' ? fmtRate(n.rates.msgs_out) : ''),
      h('td', {}, n.state === 'up' ? fmtDuration(n.uptime_seconds) : ''),
      h('td', {}, n.version || ''),
      h('td', { class: 'mono' }, (n.addresses || []).join(', ')),
      h('td', { title: n.last_seen ? fmtTime(n.last_seen) : '' }, n.last_seen ? fmtAgo(n.last_seen) : ''))));
  }
  refresh.addEventListener('click', load);
  load();
  const timer = setInterval(() => { if (!el.isConnected) clearInterval(timer); else if (!document.hidden) load(); }, 5000);

  el.append(h('h3', {}, 'Where is a client?'));
  const clients = h('div');
  el.append(clients);
  const table = pagedTable(clients, {
    name: 'cluster-clients', path: '/api/v1/cluster/clients', q: ctx.params.q || '',
    filterPlaceholder: 'client id, user or address',
    rowId: (r) => `${r.id}@${r.node}`,
    columns: [
      { key: 'id', label: 'Client', render: (r) => h('span', { title: r.id }, r.client_id || r.id) },
      { key: 'node', label: 'Node', render: (r) => h('span', { class: 'mono', dataset: { node: r.node } }, r.node) },
      { key: 'online', label: 'State', render: (r) => h('span', { class: 'badge ' + (r.online ? 'ok' : '') }, r.online ? 'online' : 'offline') },
      { key: 'protocol', label: 'Protocol', render: (r) => `${r.protocol} ${r.version}` },
      { key: 'transport', label: 'Transport' },
      { key: 'user', label: 'User' },
      { key: 'remote_addr', label: 'Remote address' },
      { key: 'connected_at', label: 'Connected', render: (r) => (r.connected_at ? h('span', { title: fmtTime(r.connected_at) }, fmtAgo(r.connected_at)) : '') },
    ],
  });
  return () => { clearInterval(timer); table.destroy(); };
}
