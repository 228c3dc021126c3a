// pages/tail.js: live messages matching a topic filter (SSE
// GET /api/v1/tail?filter=F), newest first, at most 500 kept. Messages
// are drawn once per animation frame so a busy topic cannot freeze the page.
import { h, decodeB64, showPayload, isText, fmtBytes, fmtNum, fmtTime } from '../lib.js';

const MAX = 500;

export function mount(el, ctx) {
  const filter = h('input', { id: 'tail-filter', type: 'text', value: ctx.params.filter || '#', placeholder: 'topic filter, e.g. sensors/+/temp or #', spellcheck: 'false', class: 'wide' });
  const start = h('button', { id: 'tail-start', type: 'button', class: 'primary' }, 'Start');
  const pause = h('button', { id: 'tail-pause', type: 'button', disabled: true }, 'Pause');
  const clear = h('button', { id: 'tail-clear', type: 'button' }, 'Clear');
  const mode = h('select', { id: 'tail-mode', title: 'payload display' },
    h('option', { value: 'text' }, 'text'), h('option', { value: 'json' }, 'json'), h('option', { value: 'hex' }, 'hex'));
  if (['text', 'json', 'hex'].includes(ctx.params.mode)) mode.value = ctx.params.mode;
  const status = h('span', { class: 'tail-status muted', dataset: { tailStatus: '' } }, 'stopped');
  const counts = h('span', { class: 'tail-status muted', dataset: { tailCounts: '' } });
  const list = h('ul', { id: 'tail-messages', class: 'tail-list' });
  const empty = h('li', { class: 'tail-empty' }, 'Press Start to watch messages as they are published.');
  list.append(empty);
  el.append(h('h2', {}, 'Tail'),
    h('form', { class: 'toolbar', onsubmit: (ev) => { ev.preventDefault(); if (close) run(); else start.click(); } },
      filter, start, pause, clear, h('label', { class: 'check' }, 'Payload', mode), status, counts),
    list);

  let close = null;
  let paused = false;
  let seq = 0;
  const pending = [];   // received, not drawn yet (newest last)
  let frame = 0;
  const n = { received: 0, dropped: 0, skipped: 0 };
  // The broker's "dropped" event carries the stream's running total: the
  // count shown is dropBase (earlier streams, minus what Clear hid) + it.
  let dropBase = 0, dropStream = 0;
  const bytesOf = new WeakMap(); // <li> -> payload bytes, to redraw on a mode change

  function showCounts() {
    const parts = [`${fmtNum(n.received)} received`, `${fmtNum(list.querySelectorAll('.tail-msg').length)} shown`];
    if (n.dropped) parts.push(`${fmtNum(n.dropped)} dropped by the broker (too fast)`);
    if (n.skipped) parts.push(`${fmtNum(n.skipped)} not shown while paused`);
    counts.textContent = parts.join(' · ');
    counts.classList.toggle('warn', n.dropped > 0);
  }

  function render(m) {
    const bytes = decodeB64(m.payload);
    const time = new Date(m.t);
    const li = h('li', { class: 'tail-msg', dataset: { topic: m.topic || '', queue: m.queue || undefined } },
      h('div', { class: 'meta' },
        h('span', { class: 'mono', title: time.toISOString() }, fmtTime(m.t).slice(11) + '.' + String(time.getMilliseconds()).padStart(3, '0')),
        h('span', { class: 'topic mono' }, m.topic || ('queue ' + m.queue)),
        h('span', {}, 'QoS ' + m.qos),
        m.retain ? h('span', { class: 'badge' }, 'retained') : null,
        h('span', {}, fmtBytes(m.size) + (isText(bytes) ? '' : ', binary') + (m.truncated ? ` (first ${fmtBytes(bytes.length)} shown)` : '')),
        m.content_type ? h('span', {}, m.content_type) : null,
        m.from ? h('span', { title: 'publishing session' }, 'from ' + m.from) : null),
      h('pre', { class: mode.value === 'hex' || !isText(bytes) ? 'hex' : undefined }, showPayload(bytes, mode.value)));
    bytesOf.set(li, bytes);
    return li;
  }

  function flush() {
    frame = 0;
    if (!pending.length) return;
    const batch = pending.splice(0).slice(-MAX);
    empty.remove();
    const frag = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) frag.append(render(batch[i])); // newest first
    list.prepend(frag);
    const items = list.querySelectorAll('.tail-msg');
    for (let i = items.length - 1; i >= MAX; i--) items[i].remove();
    showCounts();
  }

  function onMessage(m) {
    n.received++;
    if (paused) { n.skipped++; if (n.skipped % 50 === 1) showCounts(); return; }
    pending.push(m);
    if (pending.length > MAX) pending.shift();
    if (!frame) frame = requestAnimationFrame(flush);
  }

  function stop() {
    seq++;
    if (close) { close(); close = null; }
    start.textContent = 'Start';
    start.classList.add('primary');
    start.dataset.running = 'false';
    pause.disabled = true;
    paused = false;
    pause.textContent = 'Pause';
    if (status.dataset.state !== 'error') status.textContent = 'stopped';
  }

  function run() {
    stop();
    const f = filter.value.trim() || '#';
    filter.value = f;
    const my = seq;
    dropBase += dropStream;
    dropStream = 0;
    status.textContent = 'connecting…';
    status.dataset.state = 'connecting';
    status.classList.remove('error');
    close = ctx.events('/api/v1/tail', { filter: f }, {
      message: onMessage,
      dropped: (d) => {
        if (my !== seq) return;
        dropStream = Number(d.dropped) || 0;
        n.dropped = dropBase + dropStream;
        showCounts();
      },
      open: () => { if (my === seq) { status.textContent = paused ? 'paused' : 'live: ' + f; status.dataset.state = 'live'; } },
      error: (ev, es) => {
        if (my !== seq) return;
        if (es.readyState !== EventSource.CLOSED) { status.textContent = 'reconnecting…'; status.dataset.state = 'reconnecting'; return; }
        explain(f, my);
      },
    });
    start.textContent = 'Stop';
    start.classList.remove('primary');
    start.dataset.running = 'true';
    pause.disabled = false;
  }

  // explain asks the endpoint once more with fetch to show why the stream
  // was refused (EventSource does not expose the status or the body).
  async function explain(f, my) {
    let text = 'the live stream was closed';
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 3000);
    try {
      const res = await fetch('/api/v1/tail?' + new URLSearchParams({ filter: f }), { credentials: 'same-origin', signal: ac.signal });
      if (!res.ok) {
        const body = await res.json().catch(() => null);
        text = (body && body.error) || res.statusText;
        if (res.status === 401) window.dispatchEvent(new CustomEvent('duplex:login-needed'));
      }
    } catch { /* aborted or network error: keep the generic text */ }
    clearTimeout(timer);
    ac.abort();
    if (my !== seq) return;
    stop();
    status.textContent = 'error: ' + text;
    status.dataset.state = 'error';
    status.classList.add('error');
  }

  start.addEventListener('click', () => { if (close) { status.dataset.state = ''; stop(); } else run(); });
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    status.textContent = paused ? 'paused' : 'live: ' + filter.value;
    showCounts();
  });
  clear.addEventListener('click', () => {
    pending.length = 0;
    list.replaceChildren(empty);
    n.received = n.dropped = n.skipped = 0;
    dropBase = -dropStream;
    showCounts();
  });
  mode.addEventListener('change', () => {
    for (const li of list.querySelectorAll('.tail-msg')) {
      const pre = li.querySelector('pre'), bytes = bytesOf.get(li);
      pre.textContent = showPayload(bytes, mode.value);
      pre.classList.toggle('hex', mode.value === 'hex' || !isText(bytes));
    }
  });
  if (ctx.params.start === '1') run();

  return () => { stop(); if (frame) cancelAnimationFrame(frame); };
}
