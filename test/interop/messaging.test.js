// SUBSCRIBE/SEND/MESSAGE: text, binary, headers, content-type; receipts.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import {
  cleanup,
  connectStomp,
  openRawConnected,
  rawSubscribe,
  startBroker,
  uniq,
  waitFor,
} from './harness.js';

const T = { timeout: 10000 };

describe('messaging', () => {
  let broker;
  before(async () => {
    broker = await startBroker();
  }, { timeout: 15000 });
  afterEach(cleanup);
  after(async () => {
    await broker?.stop();
  });

  test('text message round trip with MESSAGE headers (destination, message-id, subscription, content-length)', T, async () => {
    const sub = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const dest = `/topic/${uniq('text')}/a`;
    const s = await sub.subscribe(dest, { id: 'my-sub-1' });
    await pub.publishWithReceipt({ destination: dest, body: 'hello world' });
    await waitFor(() => s.messages.length === 1, 3000, 'MESSAGE');
    const m = s.messages[0];
    assert.equal(m.command, 'MESSAGE');
    assert.equal(m.body, 'hello world');
    assert.equal(m.headers.destination, dest);
    assert.equal(m.headers.subscription, 'my-sub-1');
    assert.ok(m.headers['message-id'], `no message-id: ${JSON.stringify(m.headers)}`);
    assert.equal(m.headers['content-length'], String(Buffer.byteLength('hello world')));
  });

  test('several messages arrive in order and message-ids are unique', T, async () => {
    const sub = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const dest = `/topic/${uniq('order')}`;
    const s = await sub.subscribe(dest);
    for (let i = 0; i < 50; i++) pub.client.publish({ destination: dest, body: `m${i}` });
    await waitFor(() => s.messages.length === 50, 5000, '50 messages', { describe: () => s.messages.length });
    assert.deepEqual(s.bodies(), Array.from({ length: 50 }, (_, i) => `m${i}`));
    assert.equal(new Set(s.messages.map((m) => m.headers['message-id'])).size, 50);
  });

  test('UTF-8 text body is preserved and travels in a text WebSocket frame', T, async () => {
    const raw = await openRawConnected(broker.url);
    const pub = await connectStomp(broker.url);
    const dest = `/topic/${uniq('utf8')}`;
    await rawSubscribe(raw, dest);
    const body = 'héllo wörld ✓ 😀 — ü';
    await pub.publishWithReceipt({ destination: dest, body });
    const f = await raw.waitFrame('MESSAGE');
    assert.equal(f.text, body);
    assert.equal(f.isBinary, false, 'text body arrived in a binary WebSocket frame');
    if (f.headers['content-length'] !== undefined) {
      assert.equal(f.headers['content-length'], String(Buffer.byteLength(body)));
    }
  });

  test('binary body (bytes 0..255) arrives byte-exact via STOMP.js binaryBody', T, async () => {
    const sub = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const dest = `/topic/${uniq('bin')}`;
    const s = await sub.subscribe(dest);
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    await pub.publishWithReceipt({ destination: dest, binaryBody: bytes, headers: { 'content-type': 'application/octet-stream' } });
    await waitFor(() => s.messages.length === 1, 3000, 'binary MESSAGE');
    const m = s.messages[0];
    assert.deepEqual(Buffer.from(m.binaryBody), Buffer.from(bytes));
    assert.equal(m.headers['content-length'], '256');
    assert.equal(m.headers['content-type'], 'application/octet-stream');
  });

  test('binary body arrives in a binary WebSocket frame (raw subscriber)', T, async () => {
    const raw = await openRawConnected(broker.url);
    const pub = await connectStomp(broker.url);
    const dest = `/topic/${uniq('binraw')}`;
    await rawSubscribe(raw, dest);
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    await pub.publishWithReceipt({ destination: dest, binaryBody: bytes });
    const f = await raw.waitFrame('MESSAGE');
    assert.equal(f.isBinary, true, 'binary body arrived in a text WebSocket frame');
    assert.deepEqual(f.body, Buffer.from(bytes));
    const msg = raw.messages.find((m) => m.data.subarray(0, 8).toString('latin1') === 'MESSAGE\n');
    assert.ok(msg, 'no WebSocket message starting with MESSAGE');
    assert.equal(msg.isBinary, true);
  });

  test('binary body sent raw (binary WebSocket frame, content-length) is preserved', T, async () => {
    const sub = await connectStomp(broker.url);
    const rawPub = await openRawConnected(broker.url);
    const dest = `/topic/${uniq('binsend')}`;
    const s = await sub.subscribe(dest);
    const bytes = Buffer.from([0xff, 0x00, 0xfe, 0x00, 0x0a, 0x00, 0x80]);
    await rawPub.sendFrame('SEND', { destination: dest, 'content-length': bytes.length }, bytes);
    await waitFor(() => s.messages.length === 1, 3000, 'MESSAGE');
    assert.deepEqual(Buffer.from(s.messages[0].binaryBody), bytes);
  });

  test('1 MiB text body round trip', T, async () => {
    const sub = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const dest = `/topic/${uniq('big')}`;
    const s = await sub.subscribe(dest);
    const body = 'abcdefghijklmnop'.repeat(65536);
    await pub.publishWithReceipt({ destination: dest, body });
    await waitFor(() => s.messages.length === 1, 8000, '1 MiB MESSAGE');
    assert.equal(s.messages[0].body.length, body.length);
    assert.ok(s.messages[0].body === body, 'body differs');
  });

  test('custom headers round trip (incl. escaped characters in 1.2)', T, async () => {
    const sub = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const dest = `/topic/${uniq('hdr')}`;
    const s = await sub.subscribe(dest);
    const headers = {
      'x-trace-id': 'abc-123',
      'x-colon': 'a:b:c',
      'x-backslash': 'C:\\dir\\file',
      'x-unicode': 'ünïcødé ✓',
      priority: '9',
    };
    await pub.publishWithReceipt({ destination: dest, body: 'h', headers });
    await waitFor(() => s.messages.length === 1, 3000, 'MESSAGE');
    const got = s.messages[0].headers;
    for (const [k, v] of Object.entries(headers)) {
      assert.equal(got[k], v, `header ${k}: ${JSON.stringify(got)}`);
    }
    assert.equal(got.receipt, undefined, 'the SEND receipt header leaked into MESSAGE');
  });

  test('content-type round trip', T, async () => {
    const sub = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const dest = `/topic/${uniq('ct')}`;
    const s = await sub.subscribe(dest);
    const body = JSON.stringify({ a: 1, b: 'ü' });
    await pub.publishWithReceipt({ destination: dest, body, headers: { 'content-type': 'application/json;charset=utf-8' } });
    await waitFor(() => s.messages.length === 1, 3000, 'MESSAGE');
    assert.equal(s.messages[0].headers['content-type'], 'application/json;charset=utf-8');
    assert.deepEqual(JSON.parse(s.messages[0].body), { a: 1, b: 'ü' });
  });

  test('publisher does not receive its own message unless subscribed; subscriber on same connection does', T, async () => {
    const c = await connectStomp(broker.url);
    const dest = `/topic/${uniq('self')}`;
    const s = await c.subscribe(dest);
    await c.publishWithReceipt({ destination: dest, body: 'to myself' });
    await waitFor(() => s.messages.length === 1, 3000, 'own MESSAGE');
    assert.equal(s.messages[0].body, 'to myself');
  });

  test('two subscriptions on one connection each get a copy with their own subscription id', T, async () => {
    const c = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const dest = `/topic/${uniq('two')}`;
    const s1 = await c.subscribe(dest, { id: 's-one' });
    const s2 = await c.subscribe(dest, { id: 's-two' });
    await pub.publishWithReceipt({ destination: dest, body: 'x' });
    await waitFor(() => s1.messages.length === 1 && s2.messages.length === 1, 3000, 'both copies');
    assert.equal(s1.messages[0].headers.subscription, 's-one');
    assert.equal(s2.messages[0].headers.subscription, 's-two');
  });
});

describe('receipts', () => {
  let broker;
  before(async () => {
    broker = await startBroker();
  }, { timeout: 15000 });
  afterEach(cleanup);
  after(async () => {
    await broker?.stop();
  });

  test('SEND with receipt -> RECEIPT with receipt-id', T, async () => {
    const c = await connectStomp(broker.url);
    const r = await c.publishWithReceipt({ destination: `/topic/${uniq('r')}`, body: 'x' });
    assert.equal(r.command, 'RECEIPT');
    assert.ok(r.headers['receipt-id']);
  });

  test('SUBSCRIBE receipt means the subscription is active', T, async () => {
    const c = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const dest = `/topic/${uniq('subr')}`;
    const s = await c.subscribe(dest); // waits for the receipt
    pub.client.publish({ destination: dest, body: 'after receipt' });
    await waitFor(() => s.messages.length === 1, 3000, 'message after SUBSCRIBE receipt');
  });

  test('UNSUBSCRIBE with receipt stops delivery (proved with a marker on another subscription)', T, async () => {
    const c = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const dest = `/topic/${uniq('unsub')}`;
    const markerDest = `/topic/${uniq('marker')}`;
    const s = await c.subscribe(dest);
    const marker = await c.subscribe(markerDest);
    await pub.publishWithReceipt({ destination: dest, body: 'before' });
    await waitFor(() => s.messages.length === 1, 3000, 'message before unsubscribe');
    const r = await c.receipt((receipt) => s.unsubscribe({ receipt }), 'UNSUBSCRIBE receipt');
    assert.equal(r.command, 'RECEIPT');
    pub.client.publish({ destination: dest, body: 'after' });
    pub.client.publish({ destination: markerDest, body: 'marker' });
    await waitFor(() => marker.messages.length === 1, 3000, 'marker');
    assert.deepEqual(s.bodies(), ['before']);
    assert.equal(c.unhandled.length, 0, `unexpected messages after UNSUBSCRIBE: ${c.unhandled.map((m) => m.body)}`);
  });

  test('receipts on BEGIN / COMMIT / ABORT (raw)', T, async () => {
    const raw = await openRawConnected(broker.url);
    const tx1 = uniq('tx');
    const tx2 = uniq('tx');
    await raw.sendFrame('BEGIN', { transaction: tx1, receipt: 'b1' });
    await raw.sendFrame('COMMIT', { transaction: tx1, receipt: 'c1' });
    await raw.sendFrame('BEGIN', { transaction: tx2, receipt: 'b2' });
    await raw.sendFrame('ABORT', { transaction: tx2, receipt: 'a2' });
    await waitFor(() => raw.frames.filter((f) => f.command === 'RECEIPT').length === 4 || raw.closed, 3000, '4 receipts', { describe: () => raw.describe() });
    assert.deepEqual(raw.frames.slice(1).map((f) => `${f.command}:${f.headers['receipt-id']}`), ['RECEIPT:b1', 'RECEIPT:c1', 'RECEIPT:b2', 'RECEIPT:a2']);
  });

  test('STOMP.js deactivate: DISCONNECT receipt -> onDisconnect, then the socket closes', T, async () => {
    const disconnects = [];
    const c = await connectStomp(broker.url, { onDisconnect: (f) => disconnects.push(f) });
    await c.disconnect();
    assert.equal(disconnects.length, 1, 'onDisconnect (DISCONNECT receipt) not called');
    assert.equal(disconnects[0].command, 'RECEIPT');
    assert.ok(disconnects[0].headers['receipt-id']);
    await waitFor(() => c.closes.length === 1, 3000, 'close after DISCONNECT');
  });

  test('raw DISCONNECT receipt:bye-1 -> RECEIPT receipt-id:bye-1, then the server closes', T, async () => {
    const raw = await openRawConnected(broker.url);
    await raw.sendFrame('DISCONNECT', { receipt: 'bye-1' });
    const r = await raw.waitFrame('RECEIPT');
    assert.equal(r.headers['receipt-id'], 'bye-1');
    await raw.waitClose(3000);
    assert.equal(raw.frames.filter((f) => f.command === 'ERROR').length, 0, raw.describe());
  });

  test('raw SEND receipts come back in order', T, async () => {
    const raw = await openRawConnected(broker.url);
    const dest = `/topic/${uniq('ord')}`;
    for (let i = 0; i < 20; i++) raw.ws.send(`SEND\ndestination:${dest}\nreceipt:r-${i}\n\nx\0`);
    await waitFor(() => raw.frames.filter((f) => f.command === 'RECEIPT').length === 20, 3000, '20 receipts', { describe: () => raw.describe() });
    assert.deepEqual(
      raw.frames.filter((f) => f.command === 'RECEIPT').map((f) => f.headers['receipt-id']),
      Array.from({ length: 20 }, (_, i) => `r-${i}`),
    );
  });
});
