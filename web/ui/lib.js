// lib.js: what every page of the Duplex admin UI shares. Plain ES module,
// no dependencies. Pages are modules under pages/ exporting
//   export async function mount(el, ctx) { ...; return () => { /* unmount */ } }
// where el is the page's empty <section data-page="NAME"> and ctx is
//   { api, events, params, navigate, me }
// (params: the hash route's query, e.g. #/clients?q=abc -> {q: "abc"}).

let csrfToken = '';

/** setCSRF stores the token from /api/v1/me or /api/v1/login. */
export function setCSRF(t) { csrfToken = t || ''; }

/** APIError carries the HTTP status and the API's {"error": "..."} text. */
export class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

/**
 * api calls the management API: api('GET', '/api/v1/clients', {limit: 100})
 * puts params in the query string; for POST/DELETE a body object is sent as
 * JSON. The session cookie goes along; unsafe methods carry X-CSRF-Token.
 * A 401 dispatches the window event 'duplex:login-needed'. Resolves to the
 * parsed JSON body, rejects with APIError.
 */
export async function api(method, path, params, body) {
  const url = new URL(path, location.origin);
  if (params) for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = { 'Accept': 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrfToken;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(url, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    if (res.status === 401) window.dispatchEvent(new CustomEvent('duplex:login-needed'));
    throw new APIError(res.status, (data && data.error) || text || res.statusText);
  }
  return data;
}

/**
 * events opens a server-sent event stream (EventSource, cookie included)
 * and calls handlers[eventName](parsedJSON). Two names are special: the
 * handlers 'open' and 'error' get the raw Event (EventSource reconnects by
 * itself after an error; es.readyState tells whether it gave up).
 * Returns a close function.
 */
export function events(path, params, handlers) {
  const url = new URL(path, location.origin);
  if (params) for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== '') url.searchParams.set(k, v);
  }
  const es = new EventSource(url, { withCredentials: true });
  for (const [name, fn] of Object.entries(handlers)) {
    if (name === 'open' || name === 'error') { es.addEventListener(name, (ev) => fn(ev, es)); continue; }
    es.addEventListener(name, (ev) => { try { fn(JSON.parse(ev.data)); } catch (e) { console.error(e); } });
  }
  return () => es.close();
}

/**
 * h builds an element: h('td', {class: 'num', dataset: {id: 'x'}}, 'text', child).
 * Attributes: class, style (a CSS text, set through CSSOM), dataset, onEVENT
 * handlers, booleans (true -> present; false, null, undefined -> absent).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'style') el.style.cssText = v; // CSSOM: allowed by a strict Content-Security-Policy
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/**
 * pagedTable renders a paginated, filterable list into el:
 *   pagedTable(el, {name: 'clients', path: '/api/v1/clients',
 *     columns: [{key: 'id', label: 'Client', sort: 'id', render: (row) => node|string}, ...],
 *     rowId: (row) => row.id, actions: (row, reload) => [buttons], params: {…}, limit: 100,
 *     filterPlaceholder: 'client id, user or address'})
 * DOM for tests: <table data-table="NAME">, each row <tr data-id="ROWID">,
 * the filter <input data-filter="NAME">, next/previous buttons
 * [data-next], [data-prev]. Sortable column headers set ?sort=KEY / -KEY.
 * A [data-refresh] button reloads the current page; with opts.autoRefresh
 * (ms) a checkbox [data-auto-refresh] reloads it that often while checked
 * (the timer stops by itself once el leaves the document). opts.tools: extra
 * toolbar node(s).
 * Returns {reload(), setParams(params), destroy()}: setParams merges extra
 * query parameters (e.g. {online: 'true'}) and goes back to the first page;
 * destroy stops the auto refresh.
 */
export function pagedTable(el, opts) {
  const limit = opts.limit || 100;
  const state = { cursors: [''], page: 0, q: opts.q || '', sort: opts.sort || '' };
  const filter = h('input', { type: 'search', placeholder: opts.filterPlaceholder || 'filter', value: state.q, dataset: { filter: opts.name } });
  const info = h('span', { class: 'muted' });
  const prev = h('button', { type: 'button', dataset: { prev: '' } }, '‹ Previous');
  const next = h('button', { type: 'button', dataset: { next: '' } }, 'Next ›');
  const refresh = h('button', { type: 'button', dataset: { refresh: '' }, title: 'Reload this page' }, '↻');
  prev.disabled = next.disabled = true;
  let seq = 0; // answers of superseded loads are ignored
  const table = h('table', { dataset: { table: opts.name } });
  const thead = h('thead'), tbody = h('tbody');
  table.append(thead, tbody);
  el.append(h('div', { class: 'toolbar' }, filter, opts.tools || null, prev, next, refresh, info), h('div', { class: 'table-wrap' }, table));

  function header() {
    const focused = thead.contains(document.activeElement) ? document.activeElement.dataset.sort : '';
    thead.replaceChildren(h('tr', {}, opts.columns.map((c) => {
      const cls = c.num ? 'num' : undefined;
      if (!c.sort) return h('th', { class: cls }, c.label);
      const dir = state.sort === c.sort ? 'ascending' : state.sort === '-' + c.sort ? 'descending' : undefined;
      const toggle = () => {
        state.sort = state.sort === c.sort ? '-' + c.sort : c.sort;
        state.cursors = ['']; state.page = 0; load();
      };
      return h('th', { class: 'sortable' + (cls ? ' ' + cls : ''), tabindex: 0, 'aria-sort': dir, dataset: { sort: c.sort },
        onclick: toggle, onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); toggle(); } } },
      c.label + (dir === 'ascending' ? ' ▲' : dir === 'descending' ? ' ▼' : ''));
    }), opts.actions ? h('th', {}, '') : null));
    if (focused) for (const th of thead.querySelectorAll('th[data-sort]')) if (th.dataset.sort === focused) th.focus();
  }
  async function load() {
    header();
    const my = ++seq;
    let data;
    try {
      data = await api('GET', opts.path, { ...(opts.params || {}), limit, cursor: state.cursors[state.page], q: state.q, sort: state.sort });
    } catch (e) {
      if (my !== seq) return;
      info.textContent = '';
      tbody.replaceChildren(h('tr', {}, h('td', { colspan: opts.columns.length + 1, class: 'error' }, e.message)));
      return;
    }
    if (my !== seq) return;
    const rows = data.items || [];
    state.cursors[state.page + 1] = data.next_cursor || '';
    prev.disabled = state.page === 0;
    next.disabled = !data.next_cursor;
    info.textContent = rows.length ? `page ${state.page + 1}, ${rows.length} shown` : 'none';
    tbody.replaceChildren(...rows.map((row) => h('tr', { dataset: { id: opts.rowId(row) } },
      opts.columns.map((c) => h('td', { class: c.num ? 'num' : undefined }, c.render ? c.render(row) : String(row[c.key] ?? ''))),
      opts.actions ? h('td', { class: 'actions' }, opts.actions(row, load)) : null)));
    if (opts.onLoad) opts.onLoad(rows);
  }
  let timer;
  filter.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.q = filter.value; state.cursors = ['']; state.page = 0; load(); }, 250);
  });
  prev.addEventListener('click', () => { if (state.page > 0) { state.page--; load(); } });
  next.addEventListener('click', () => { if (state.cursors[state.page + 1]) { state.page++; load(); } });
  refresh.addEventListener('click', () => load());
  let auto = 0;
  const stopAuto = () => { clearInterval(auto); auto = 0; };
  if (opts.autoRefresh) {
    const box = h('input', { type: 'checkbox', dataset: { autoRefresh: '' } });
    box.addEventListener('change', () => {
      stopAuto();
      if (box.checked) auto = setInterval(() => { if (!el.isConnected) stopAuto(); else if (!document.hidden) load(); }, opts.autoRefresh);
    });
    refresh.after(h('label', { class: 'check', title: `reload every ${opts.autoRefresh / 1000} s` }, box, 'auto'));
  }
  load();
  return {
    reload: load,
    setParams(p) { opts.params = { ...(opts.params || {}), ...p }; state.cursors = ['']; state.page = 0; return load(); },
    destroy: stopAuto,
  };
}

/** confirmAction asks before a destructive action (window.confirm; tests accept the dialog). */
export function confirmAction(text) { return window.confirm(text); }

/** toast shows a short notice at the bottom of the page: <div data-toast>. */
export function toast(text, kind) {
  const t = h('div', { class: 'toast ' + (kind || ''), dataset: { toast: kind || 'info' } }, text);
  document.body.append(t);
  setTimeout(() => t.remove(), 4000);
}

/** fmtBytes: 1536 -> "1.5 KiB". */
export function fmtBytes(n) {
  if (!n) return '0 B';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
}

/** fmtRate: 1234.5 -> "1.23k". */
export function fmtRate(n) {
  n = Number(n) || 0;
  if (n >= 1e6) return (n / 1e6).toFixed(2) + 'M';
  if (n >= 1e3) return (n / 1e3).toFixed(2) + 'k';
  return n >= 10 ? n.toFixed(0) : n.toFixed(1);
}

/** fmtAgo: ISO time -> "3m 12s ago". */
export function fmtAgo(iso) {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  return fmtDuration((Date.now() - t) / 1000) + ' ago';
}

/** fmtDuration: the two largest units, 192 (seconds) -> "3m 12s", 3600 -> "1h", 90061 -> "1d 1h". */
export function fmtDuration(sec) {
  let s = Math.max(0, Math.round(Number(sec) || 0));
  if (s < 60) return s + 's';
  const parts = [];
  for (const [n, u] of [[86400, 'd'], [3600, 'h'], [60, 'm'], [1, 's']]) {
    const q = Math.floor(s / n);
    s %= n;
    if (q || parts.length) parts.push(q ? q + u : '');
    if (parts.length === 2) break;
  }
  return parts.filter(Boolean).join(' ');
}

/** fmtNum: 1234567 -> "1,234,567" (locale grouping). */
export function fmtNum(n) { return (Number(n) || 0).toLocaleString('en-US'); }

/** fmtTime: ISO time or Unix milliseconds -> local "YYYY-MM-DD HH:MM:SS". */
export function fmtTime(t) {
  if (t === undefined || t === null || t === '') return '';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return '';
  const p = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** decodeB64 turns base64 into a Uint8Array. */
export function decodeB64(b64) {
  const bin = atob(b64 || '');
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** isText: the bytes are UTF-8 without control characters other than tab, CR and LF. */
export function isText(bytes) {
  let text;
  try { text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); } catch { return false; }
  return !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text);
}

/**
 * showPayload renders bytes as 'text', 'json' (pretty, falls back to text)
 * or 'hex'. Binary bytes (not isText) are shown as hex in every mode.
 */
export function showPayload(bytes, mode) {
  if (mode === 'hex' || !isText(bytes)) {
    const lines = [];
    for (let i = 0; i < bytes.length; i += 16) {
      const row = Array.from(bytes.slice(i, i + 16));
      lines.push(i.toString(16).padStart(6, '0') + '  ' + row.map((b) => b.toString(16).padStart(2, '0')).join(' ').padEnd(48) +
        ' ' + row.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join(''));
    }
    return lines.join('\n');
  }
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  if (mode === 'json') {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
  }
  return text;
}
