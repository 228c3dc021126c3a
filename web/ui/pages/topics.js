// pages/topics.js: the subscription tree (GET /api/v1/topics?prefix=, one
// level at a time with counts per node; click a node to descend, the
// breadcrumb to go back up), every subscription (/api/v1/subscriptions,
// filterable) and the MQTT share groups (/api/v1/shares).
import { api, h, pagedTable, fmtNum } from '../lib.js';

const TREE_LIMIT = 200;

export async function mount(el, ctx) {
  let alive = true;
  let prefix = (ctx.params && ctx.params.prefix) || '';

  // ---- topic tree ----
  const crumbs = h('div', { class: 'breadcrumb', dataset: { breadcrumb: '' }, style: 'margin-right: 1rem' });
  const treeInfo = h('span', { class: 'muted' });
  const prev = h('button', { type: 'button', dataset: { prev: '' } }, '‹ Previous');
  const next = h('button', { type: 'button', dataset: { next: '' } }, 'Next ›');
  const refresh = h('button', { type: 'button', dataset: { refresh: '' }, title: 'Reload the tree' }, '↻');
  const tbody = h('tbody');
  const table = h('table', { dataset: { table: 'topics' } },
    h('thead', {}, h('tr', {},
      h('th', {}, 'Level'),
      h('th', { class: 'num', title: 'subscriptions whose filter is exactly this path' }, 'Here'),
      h('th', { class: 'num', title: 'subscriptions at and below this path' }, 'Total'),
      h('th', { class: 'num', title: 'distinct next levels' }, 'Children'),
      h('th', {}, ''))),
    tbody);
  const tree = { cursors: [''], page: 0, seq: 0 };

  function setPrefix(p) {
    prefix = p;
    tree.cursors = [''];
    tree.page = 0;
    // keep the place in the address bar without remounting the page
    const hash = '#/topics' + (p ? '?prefix=' + encodeURIComponent(p) : '');
    if (location.hash !== hash) history.replaceState(null, '', hash);
    loadTree();
  }

  const linkStyle = 'background: none; border: none; padding: 0; color: var(--accent); cursor: pointer';
  function renderCrumbs() {
    const parts = prefix === '' ? [] : prefix.split('/');
    const items = [h('button', { type: 'button', class: 'link', style: linkStyle, dataset: { prefix: '' }, onclick: () => setPrefix('') }, 'all topics')];
    parts.forEach((part, i) => {
      const p = parts.slice(0, i + 1).join('/');
      items.push(h('span', { class: 'muted' }, ' / '));
      items.push(i === parts.length - 1
        ? h('strong', { class: 'mono' }, part === '' ? '(empty)' : part)
        : h('button', { type: 'button', class: 'link mono', style: linkStyle, dataset: { prefix: p }, onclick: () => setPrefix(p) }, part === '' ? '(empty)' : part));
    });
    crumbs.replaceChildren(...items);
  }

  async function loadTree() {
    renderCrumbs();
    const my = ++tree.seq;
    let data;
    try {
      data = await api('GET', '/api/v1/topics', { prefix, cursor: tree.cursors[tree.page], limit: TREE_LIMIT });
    } catch (e) {
      if (!alive || my !== tree.seq) return;
      treeInfo.textContent = '';
      tbody.replaceChildren(h('tr', {}, h('td', { colspan: 5, class: 'error' }, e.message)));
      return;
    }
    if (!alive || my !== tree.seq) return;
    const nodes = data.items || [];
    tree.cursors[tree.page + 1] = data.next_cursor || '';
    prev.disabled = tree.page === 0;
    next.disabled = !data.next_cursor;
    treeInfo.textContent = nodes.length ? `${nodes.length} level${nodes.length === 1 ? '' : 's'} shown` : '';
    if (!nodes.length) {
      tbody.replaceChildren(h('tr', {}, h('td', { colspan: 5, class: 'muted' },
        prefix ? 'No subscription below this level.' : 'No subscriptions yet.')));
      return;
    }
    tbody.replaceChildren(...nodes.map((n) => {
      const name = levelName(n.path);
      // (a first level named "" has the root's path: the API cannot open it)
      const label = n.children > 0 && n.path !== ''
        ? h('button', { type: 'button', class: 'link mono', title: 'open ' + n.path, onclick: () => setPrefix(n.path) }, name, ' ›')
        : h('span', { class: 'mono' }, name);
      return h('tr', { dataset: { id: n.path } },
        h('td', {}, label),
        h('td', { class: 'num' }, fmtNum(n.subscriptions)),
        h('td', { class: 'num' }, fmtNum(n.total)),
        h('td', { class: 'num' }, fmtNum(n.children)),
        h('td', { class: 'actions' },
          h('button', { type: 'button', class: 'small', title: 'list the subscriptions of ' + n.path,
            onclick: () => subs.showFilter(n.path) }, 'subscriptions')));
    }));
  }

  prev.addEventListener('click', () => { if (tree.page > 0) { tree.page--; loadTree(); } });
  next.addEventListener('click', () => { if (tree.cursors[tree.page + 1]) { tree.page++; loadTree(); } });
  refresh.addEventListener('click', () => loadTree());

  // ---- subscriptions and share groups ----
  const subsEl = h('div');
  const sharesEl = h('div');
  el.append(
    h('h2', {}, 'Topics and subscriptions'),
    h('div', { class: 'panel' },
      h('h3', {}, 'Topic tree'),
      h('div', { class: 'toolbar' }, crumbs, prev, next, refresh, treeInfo),
      h('div', { class: 'table-wrap small' }, table)),
    h('div', { class: 'panel' }, h('h3', {}, 'Subscriptions'), subsEl),
    h('div', { class: 'panel' }, h('h3', {}, 'Share groups'), sharesEl));

  const subs = subscriptionsTable(subsEl, ctx);
  pagedTable(sharesEl, {
    name: 'shares', path: '/api/v1/shares', filterPlaceholder: 'group or filter',
    rowId: (r) => r.group + '/' + r.filter,
    columns: [
      { key: 'group', label: 'Group', render: (r) => h('span', { class: 'mono' }, r.group) },
      { key: 'filter', label: 'Filter', render: (r) => h('span', { class: 'mono' }, r.filter) },
      { key: 'members', label: 'Members', num: true },
    ],
  });

  loadTree();
  return () => { alive = false; };
}

/** The last level of a tree path ("a/b/c" -> "c"); "" shows as (empty). */
function levelName(path) {
  const i = path.lastIndexOf('/');
  const name = i < 0 ? path : path.slice(i + 1);
  return name === '' ? '(empty)' : name;
}

/** subscriptionsTable: the filterable list of every subscription. */
function subscriptionsTable(el, ctx) {
  let table;
  const wrap = h('div');
  el.append(wrap);
  function build(q) {
    wrap.replaceChildren();
    table = pagedTable(wrap, {
      name: 'subscriptions', path: '/api/v1/subscriptions', q,
      filterPlaceholder: 'client id, user, filter or queue',
      rowId: (r) => r.session_id + ' ' + r.key,
      columns: [
        { key: 'client_id', label: 'Client', render: (r) => h('a', { href: '#/clients?q=' + encodeURIComponent(r.client_id || r.session_id), class: 'mono' }, r.client_id || r.session_id) },
        { key: 'user', label: 'User' },
        { key: 'kind', label: 'Kind', render: (r) => h('span', { class: 'badge' }, r.kind) },
        { key: 'filter', label: 'Filter / queue', render: (r) => h('span', { class: 'mono' }, r.filter || r.queue || '',
          r.filter && r.queue ? h('span', { class: 'muted', title: 'its queue' }, ' → ', r.queue) : null) },
        { key: 'group', label: 'Group' },
        { key: 'qos', label: 'QoS', num: true },
        { key: 'ack', label: 'Ack' },
        { key: 'flags', label: 'Options', render: (r) => [r.no_local ? 'no-local' : '', r.subscription_id ? 'id ' + r.subscription_id : ''].filter(Boolean).join(', ') },
        { key: 'key', label: 'Key', render: (r) => h('span', { class: 'mono muted' }, r.key) },
      ],
    });
  }
  build((ctx.params && ctx.params.q) || '');
  return {
    showFilter(path) {
      build(path);
      const input = wrap.querySelector('input[data-filter]');
      if (input) input.scrollIntoView({ block: 'nearest' });
    },
    reload: () => table.reload(),
  };
}
