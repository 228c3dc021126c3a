// pages/overview.js: the broker at a glance. Stat tiles from
// GET /api/v1/overview (every 5 s), three live charts over the last 15
// minutes: GET /api/v1/history, then one SSE "sample" a second from
// GET /api/v1/events.
import uPlot from '../vendor/uPlot.esm.js';
import { h, fmtBytes, fmtRate, fmtNum, fmtDuration, fmtTime } from '../lib.js';

// axisNum: compact axis labels, 12500 -> "12.5k", 2000 -> "2k".
const axisNum = (v) => {
  const a = Math.abs(v);
  const [d, u] = a >= 1e9 ? [1e9, 'G'] : a >= 1e6 ? [1e6, 'M'] : a >= 1e3 ? [1e3, 'k'] : [1, ''];
  return String(+(v / d).toFixed(2)) + u;
};

// splitVersion: "duplex v1.2.3 (go1.26 linux/amd64)" -> {name: "v1.2.3", build: "go1.26 linux/amd64"}.
function splitVersion(v) {
  const m = /^(?:duplex\s+)?(\S+)\s*(?:\((.*)\))?/.exec(v);
  return m ? { name: m[1], build: m[2] || '' } : { name: v, build: '' };
}

const WINDOW = 15 * 60; // seconds of history kept on the charts
const REFRESH_MS = 5000;

export async function mount(el, ctx) {
  const tiles = h('div', { class: 'tiles' });
  const status = h('span', { class: 'muted' });
  const chartEls = {
    connections: h('div', { class: 'chart', dataset: { chart: 'connections' } }),
    messages: h('div', { class: 'chart', dataset: { chart: 'messages', points: '0', lastIn: '0' } }),
    drops: h('div', { class: 'chart', dataset: { chart: 'drops' } }),
  };
  const protoBody = h('tbody');
  const dropsList = h('dl', { class: 'kv' });
  const storeList = h('dl', { class: 'kv' });
  const admList = h('dl', { class: 'kv' });
  el.append(
    h('div', { class: 'toolbar' }, h('h2', { class: 'inline' }, 'Overview'), status),
    tiles,
    h('div', { class: 'charts' },
      h('div', { class: 'panel' }, h('h3', {}, 'Connections'), chartEls.connections),
      h('div', { class: 'panel' }, h('h3', {}, 'Messages per second'), chartEls.messages),
      h('div', { class: 'panel' }, h('h3', {}, 'Drops per second'), chartEls.drops)),
    h('div', { class: 'grid2' },
      h('div', { class: 'panel' }, h('h3', {}, 'Connections by protocol'),
        h('div', { class: 'table-wrap small' }, h('table', { dataset: { table: 'by-protocol' } },
          h('thead', {}, h('tr', {}, h('th', {}, 'Protocol'), h('th', {}, 'Version'), h('th', {}, 'Transport'), h('th', { class: 'num' }, 'Connections'))),
          protoBody))),
      h('div', { class: 'panel' }, h('h3', {}, 'Drops since start, by cause'), dropsList),
      h('div', { class: 'panel' }, h('h3', {}, 'Store'), storeList),
      h('div', { class: 'panel' }, h('h3', {}, 'Connection admission'), admList)));

  // ---- tiles ----
  const tile = {};
  function addTile(key, label) {
    const value = h('div', { class: 'value', dataset: { stat: key } }, '–');
    const sub = h('div', { class: 'sub' });
    tiles.append(h('div', { class: 'tile' }, h('div', { class: 'label' }, label), value, sub));
    tile[key] = { value, sub };
  }
  for (const [k, l] of [
    ['connections', 'Connections'], ['msgs_in_rate', 'Msgs in / s'], ['msgs_out_rate', 'Msgs out / s'],
    ['sessions', 'Sessions'], ['subscriptions', 'Subscriptions'], ['retained', 'Retained'],
    ['queued', 'Queued'], ['stored', 'Stored'], ['drops', 'Drops'],
    ['store', 'Store file'], ['commit', 'Commit latency'], ['uptime', 'Uptime'], ['version', 'Version'],
  ]) addTile(k, l);
  const set = (k, v, sub) => {
    tile[k].value.textContent = v; tile[k].value.title = v;
    tile[k].sub.textContent = sub || ''; tile[k].sub.title = sub || '';
  };
  const ms = (s) => (s * 1000 < 10 ? (s * 1000).toFixed(2) : (s * 1000).toFixed(1)) + ' ms';

  function renderOverview(o) {
    set('connections', fmtNum(o.connections));
    set('msgs_in_rate', fmtRate(o.rates?.msgs_in), fmtRate(o.totals?.msgs_in) + ' total · ' + fmtBytes(o.rates?.bytes_in) + '/s');
    set('msgs_out_rate', fmtRate(o.rates?.msgs_out), fmtRate(o.totals?.msgs_out) + ' total · ' + fmtBytes(o.rates?.bytes_out) + '/s');
    set('sessions', fmtNum(o.sessions), fmtNum(o.persistent_sessions) + ' persistent');
    set('subscriptions', fmtNum(o.subscriptions));
    set('retained', fmtNum(o.retained), fmtBytes(o.retained_bytes));
    set('queued', fmtNum(o.queued_messages), fmtNum(o.queues) + ' queues');
    set('stored', fmtNum(o.stored_messages), 'offline session messages');
    const d = o.drops || {};
    const total = Object.values(d).reduce((a, b) => a + (Number(b) || 0), 0);
    set('drops', fmtNum(total), fmtRate(o.rates?.drops) + '/s now');
    if (o.store) {
      set('store', fmtBytes(o.store.file_size), o.store.path);
      set('commit', ms(o.store.avg_commit_seconds || 0), 'avg · last ' + ms(o.store.last_commit_seconds || 0));
    } else {
      set('store', 'none', 'in-memory only');
      set('commit', '–');
    }
    set('uptime', fmtDuration(o.uptime_seconds), o.started_at ? 'since ' + fmtTime(o.started_at) : '');
    const v = splitVersion(o.version || ctx.me?.version || '');
    set('version', v.name, v.build);

    const groups = o.by_protocol || [];
    protoBody.replaceChildren(...(groups.length ? groups.map((g) => h('tr', {},
      h('td', {}, g.protocol), h('td', {}, g.version), h('td', {}, g.transport || ''), h('td', { class: 'num' }, fmtNum(g.count))))
      : [h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'no connections'))]));

    const causes = [['slow_consumer', 'Slow consumer (QoS 0 dropped)'], ['slow_closed', 'Slow consumers closed'],
      ['no_subscriber', 'No subscriber'], ['quota', 'Quota refusals'], ['offline', 'Offline queue full'],
      ['not_authorized', 'Not authorized']];
    dropsList.replaceChildren(...causes.flatMap(([k, l]) => [h('dt', {}, l), h('dd', { dataset: { drop: k } }, fmtNum(d[k]))]));

    const kv = (k, v) => [h('dt', {}, k), h('dd', {}, v)];
    const a = o.admission || {};
    const pick = (name) => a[name] ?? 0;
    admList.replaceChildren(
      ...kv('Connections', `${fmtNum(pick('connections'))} of ${fmtNum(pick('max_connections'))}`),
      ...kv('Sockets', `${fmtNum(pick('sockets'))} of ${fmtNum(pick('max_sockets'))}`),
      ...kv('Refused (total cap)', fmtNum(pick('refused_total'))),
      ...kv('Refused (per IP)', fmtNum(pick('refused_per_ip'))),
      ...kv('Refused (rate)', fmtNum(pick('refused_rate'))),
      ...kv('Refused sockets', fmtNum(pick('refused_sockets'))),
      ...kv('TLS handshake failures', fmtNum(pick('tls_handshake_failures'))),
      ...kv('Tracked sources', fmtNum(pick('sources'))),
      ...kv('Auth failures', fmtNum(o.auth_failures)));
    storeList.replaceChildren(...(o.store ? [
      ...kv('Path', o.store.path), ...kv('File size', fmtBytes(o.store.file_size)), ...kv('Commits', fmtNum(o.store.commits)),
      ...kv('Avg commit', ms(o.store.avg_commit_seconds || 0)), ...kv('Last commit', ms(o.store.last_commit_seconds || 0)),
    ] : kv('Store', 'none (in-memory)')));
  }

  let stopped = false;
  async function refresh() {
    try {
      renderOverview(await ctx.api('GET', '/api/v1/overview'));
      status.textContent = '';
    } catch (e) {
      if (!stopped) status.textContent = 'overview: ' + e.message;
    }
  }

  // ---- charts ----
  const css = getComputedStyle(document.documentElement);
  const color = (v, d) => (css.getPropertyValue(v).trim() || d);
  const axisStroke = color('--muted', '#667085'), gridStroke = color('--line', '#dde1e7');
  const p2 = (n) => String(n).padStart(2, '0');
  const clock = (u, vals) => {
    const secs = u.scales.x.max - u.scales.x.min < 180; // a short span: show seconds too
    return vals.map((v) => { const d = new Date(v * 1000); return `${p2(d.getHours())}:${p2(d.getMinutes())}` + (secs ? ':' + p2(d.getSeconds()) : ''); });
  };
  const axes = (fmt) => [
    { stroke: axisStroke, grid: { stroke: gridStroke, width: 1 }, ticks: { stroke: gridStroke, width: 1 }, space: 70, values: clock },
    { stroke: axisStroke, grid: { stroke: gridStroke, width: 1 }, ticks: { stroke: gridStroke, width: 1 }, size: 48, values: (u, vals) => vals.map(fmt) },
  ];
  const series = (label, stroke, fill) => ({ label, stroke, width: 1.5, fill, points: { show: false }, value: (u, v) => (v == null ? '–' : fmtRate(v)) });
  const t = [], conns = [], msgsIn = [], msgsOut = [], drops = [];
  const make = (key, ser, data, fmt) => new uPlot({
    width: Math.max(200, chartEls[key].clientWidth || 400), height: 180,
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: axes(fmt), series: [{}, ...ser], cursor: { drag: { x: false, y: false } }, legend: { live: false },
  }, data, chartEls[key]);
  const charts = {
    connections: make('connections', [series('connections', '#2563eb', 'rgba(37,99,235,.12)')], [t, conns], axisNum),
    messages: make('messages', [series('in', '#16a34a', 'rgba(22,163,74,.10)'), series('out', '#9333ea')], [t, msgsIn, msgsOut], axisNum),
    drops: make('drops', [series('drops', '#dc2626', 'rgba(220,38,38,.12)')], [t, drops], axisNum),
  };
  function push(s) {
    if (t.length && s.t <= t[t.length - 1]) return false; // already have it (history and stream overlap)
    t.push(s.t); conns.push(s.connections); msgsIn.push(s.msgs_in); msgsOut.push(s.msgs_out); drops.push(s.drops);
    return true;
  }
  function redraw() {
    let cut = 0;
    const from = t.length ? t[t.length - 1] - WINDOW : 0;
    while (cut < t.length && t[cut] < from) cut++;
    if (cut) for (const a of [t, conns, msgsIn, msgsOut, drops]) a.splice(0, cut);
    charts.connections.setData([t, conns]);
    charts.messages.setData([t, msgsIn, msgsOut]);
    charts.drops.setData([t, drops]);
    chartEls.messages.dataset.points = String(t.length);
    chartEls.messages.dataset.lastIn = String(msgsIn.length ? msgsIn[msgsIn.length - 1] : 0);
  }
  const ro = new ResizeObserver(() => {
    for (const [k, c] of Object.entries(charts)) {
      const w = chartEls[k].clientWidth;
      if (w && Math.abs(w - c.width) > 1) c.setSize({ width: w, height: 180 });
    }
  });
  for (const e of Object.values(chartEls)) ro.observe(e);

  // ---- data ----
  refresh();
  const timer = setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
  let close = null;
  try {
    const hist = await ctx.api('GET', '/api/v1/history');
    for (const s of hist || []) push(s);
  } catch (e) {
    status.textContent = 'history: ' + e.message;
  }
  redraw();
  if (!stopped) {
    close = ctx.events('/api/v1/events', null, {
      sample: (s) => {
        if (!push(s)) return;
        redraw();
        set('connections', fmtNum(s.connections));
        tile.msgs_in_rate.value.textContent = fmtRate(s.msgs_in);
        tile.msgs_out_rate.value.textContent = fmtRate(s.msgs_out);
      },
      error: (ev, es) => { status.textContent = es.readyState === EventSource.CLOSED ? 'live feed closed' : 'live feed reconnecting…'; },
      open: () => { status.textContent = ''; },
    });
  }
  return () => {
    stopped = true;
    clearInterval(timer);
    if (close) close();
    ro.disconnect();
    for (const c of Object.values(charts)) c.destroy();
  };
}
