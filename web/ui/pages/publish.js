// pages/publish.js: publish one message (POST /api/v1/publish) to an MQTT
// topic (STOMP /topic/ subscribers get it too) or to a queue.
import { api, h, toast, fmtTime } from '../lib.js';

export async function mount(el, ctx) {
  const params = ctx.params || {};
  let alive = true;

  const kind = h('select', { id: 'pub-kind', 'aria-label': 'destination kind' },
    h('option', { value: 'topic', selected: params.queue === undefined }, 'Topic'),
    h('option', { value: 'queue', selected: params.queue !== undefined }, 'Queue'));
  const dest = h('input', { id: 'pub-topic', required: true, autocomplete: 'off', spellcheck: 'false', class: 'mono',
    value: params.queue ?? params.topic ?? '', style: 'width: 100%; min-width: 12rem' });
  const payload = h('textarea', { id: 'pub-payload', rows: 8, spellcheck: 'false', class: 'mono', style: 'width: 100%; resize: vertical' });
  const encoding = h('select', { id: 'pub-encoding' },
    h('option', { value: 'text' }, 'text (UTF-8)'), h('option', { value: 'base64' }, 'base64'));
  const qos = h('select', { id: 'pub-qos' }, [0, 1, 2].map((q) => h('option', { value: String(q) }, String(q))));
  const retain = h('input', { id: 'pub-retain', type: 'checkbox' });
  const retainLabel = h('label', { class: 'check' }, retain, 'Retain');
  const contentType = h('input', { id: 'pub-content-type', placeholder: 'e.g. application/json', autocomplete: 'off' });
  const submit = h('button', { id: 'pub-submit', type: 'submit', class: 'primary' }, 'Publish');
  const error = h('p', { id: 'pub-error', class: 'error', role: 'alert', style: 'margin: 0', hidden: true });
  const showError = (text) => { error.textContent = text; error.hidden = !text; };
  const result = h('p', { class: 'muted', dataset: { result: '' }, style: 'margin: 0' });
  const destLabel = h('span', {}, 'Topic');

  function syncKind() {
    const isQueue = kind.value === 'queue';
    destLabel.textContent = isQueue ? 'Queue' : 'Topic';
    dest.placeholder = isQueue ? 'queue name, e.g. orders' : 'MQTT topic, e.g. sensors/1/temp (STOMP: /topic/sensors/1/temp)';
    retain.disabled = isQueue;
    if (isQueue) retain.checked = false;
    retainLabel.classList.toggle('muted', isQueue);
  }
  kind.addEventListener('change', syncKind);
  syncKind();

  const form = h('form', { class: 'panel', style: 'display: flex; flex-direction: column; gap: .75rem; max-width: 56rem',
    onsubmit: async (ev) => {
      ev.preventDefault();
      showError('');
      const name = dest.value.trim();
      if (!name) { showError((kind.value === 'queue' ? 'A queue name' : 'A topic') + ' is needed.'); dest.focus(); return; }
      let size = new TextEncoder().encode(payload.value).length;
      if (encoding.value === 'base64') {
        try { size = atob(payload.value.replace(/\s+/g, '')).length; } catch { showError('The payload is not valid base64.'); payload.focus(); return; }
      }
      const body = {
        payload: payload.value,
        payload_encoding: encoding.value,
        qos: Number(qos.value),
        retain: kind.value === 'topic' && retain.checked,
      };
      if (kind.value === 'queue') body.queue = name; else body.topic = name;
      if (contentType.value.trim()) body.content_type = contentType.value.trim();
      submit.disabled = true;
      try {
        await api('POST', '/api/v1/publish', null, body);
        if (!alive) return;
        const what = `${kind.value} ${name}`;
        result.textContent = `Published ${size} byte${size === 1 ? '' : 's'} to ${what}, QoS ${body.qos}${body.retain ? ', retained' : ''} at ${fmtTime(Date.now())}.`;
        toast('Published to ' + what, 'ok');
      } catch (e) {
        if (!alive) return;
        showError('Publish failed: ' + e.message);
        toast('Publish failed: ' + e.message, 'error');
      } finally {
        submit.disabled = false;
      }
    } },
    h('div', { class: 'toolbar' },
      h('label', {}, 'Destination', kind),
      h('label', { style: 'flex: 1' }, destLabel, dest)),
    h('label', { style: 'display: flex' }, 'Payload', payload),
    h('div', { class: 'toolbar', style: 'align-items: flex-end; gap: 1rem' },
      h('label', {}, 'Encoding', encoding),
      h('label', {}, 'QoS', qos),
      h('label', {}, 'Content type', contentType),
      retainLabel),
    h('div', { class: 'toolbar' }, submit),
    error, result);

  el.append(h('h2', {}, 'Publish'), form);
  dest.focus();
  return () => { alive = false; };
}
