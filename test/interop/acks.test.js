// Acknowledgement modes, NACK and redelivery.
//
// Absence of a message is always proved with a later marker message on the
// same queue: once the marker arrived, anything queued before it would have
// arrived too.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { cleanup, connectStomp, startBroker, uniq, Versions, waitFor } from './harness.js';

const T = { timeout: 10000 };

function sorted(a) {
  return [...a].sort();
}

describe('ack modes and redelivery', () => {
  let broker;
  let pub;
  before(async () => {
    broker = await startBroker();
  }, { timeout: 15000 });
  afterEach(cleanup);
  after(async () => {
    await broker?.stop();
  });

  async function publisher() {
    pub = await connectStomp(broker.url);
    return pub;
  }

  async function sendAll(p, dest, bodies) {
    for (const b of bodies.slice(0, -1)) p.client.publish({ destination: dest, body: b });
    await p.publishWithReceipt({ destination: dest, body: bodies[bodies.length - 1] });
  }

  /**
   * A new consumer on `queue` must receive exactly `expected` (any order)
   * plus the marker sent after it subscribed. Returns its messages.
   */
  async function expectRemaining(p, queue, expected, { redelivered = true } = {}) {
    const b = await connectStomp(broker.url);
    const s = await b.subscribe(queue, { ack: 'auto' });
    const marker = uniq('marker');
    await p.publishWithReceipt({ destination: queue, body: marker });
    await waitFor(() => s.messages.some((m) => m.body === marker) && s.messages.length >= expected.length + 1, 5000,
      `marker + ${JSON.stringify(expected)} on second consumer`, { describe: () => JSON.stringify(s.bodies()) });
    const got = s.messages.filter((m) => m.body !== marker);
    assert.deepEqual(sorted(got.map((m) => m.body)), sorted(expected), `second consumer got ${JSON.stringify(s.bodies())}`);
    if (redelivered) {
      for (const m of got) {
        assert.equal(m.headers.redelivered, 'true', `redelivered message ${m.body} lacks redelivered:true: ${JSON.stringify(m.headers)}`);
      }
    }
    return s.messages;
  }

  test('auto: messages are consumed on delivery (not redelivered after disconnect)', T, async () => {
    const p = await publisher();
    const q = `/queue/${uniq('auto')}`;
    const a = await connectStomp(broker.url);
    const s = await a.subscribe(q, { ack: 'auto' });
    await sendAll(p, q, ['a1', 'a2', 'a3']);
    await waitFor(() => s.messages.length === 3, 3000, '3 messages');
    assert.deepEqual(s.bodies(), ['a1', 'a2', 'a3']);
    await a.disconnect();
    await expectRemaining(p, q, []);
  });

  test('client: MESSAGE carries an ack header (1.2); cumulative ACK of the 3rd acks the first 3', T, async () => {
    const p = await publisher();
    const q = `/queue/${uniq('client')}`;
    const a = await connectStomp(broker.url);
    const s = await a.subscribe(q, { ack: 'client', 'prefetch-count': '100' });
    await sendAll(p, q, ['c1', 'c2', 'c3', 'c4', 'c5']);
    await waitFor(() => s.messages.length === 5, 3000, '5 messages', { describe: () => JSON.stringify(s.bodies()) });
    assert.deepEqual(s.bodies(), ['c1', 'c2', 'c3', 'c4', 'c5']);
    for (const m of s.messages) assert.ok(m.headers.ack, `MESSAGE without ack header in client mode: ${JSON.stringify(m.headers)}`);
    await a.receipt((receipt) => s.messages[2].ack({ receipt }), 'ACK receipt');
    await a.disconnect();
    await expectRemaining(p, q, ['c4', 'c5']);
  });

  test('client-individual: ACK of the 2nd acks only the 2nd', T, async () => {
    const p = await publisher();
    const q = `/queue/${uniq('indiv')}`;
    const a = await connectStomp(broker.url);
    const s = await a.subscribe(q, { ack: 'client-individual', 'prefetch-count': '100' });
    await sendAll(p, q, ['i1', 'i2', 'i3']);
    await waitFor(() => s.messages.length === 3, 3000, '3 messages');
    for (const m of s.messages) assert.ok(m.headers.ack, `MESSAGE without ack header: ${JSON.stringify(m.headers)}`);
    await a.receipt((receipt) => s.messages[1].ack({ receipt }), 'ACK receipt');
    await a.disconnect();
    await expectRemaining(p, q, ['i1', 'i3']);
  });

  test('client-individual: all acked -> nothing redelivered', T, async () => {
    const p = await publisher();
    const q = `/queue/${uniq('allack')}`;
    const a = await connectStomp(broker.url);
    const s = await a.subscribe(q, { ack: 'client-individual', 'prefetch-count': '100' });
    await sendAll(p, q, ['x1', 'x2', 'x3']);
    await waitFor(() => s.messages.length === 3, 3000, '3 messages');
    s.messages[0].ack();
    s.messages[2].ack();
    await a.receipt((receipt) => s.messages[1].ack({ receipt }), 'ACK receipt');
    await a.disconnect();
    await expectRemaining(p, q, []);
  });

  test('NACK on a queue -> redelivered with redelivered:true; then ACK consumes it', T, async () => {
    const p = await publisher();
    const q = `/queue/${uniq('nack')}`;
    const a = await connectStomp(broker.url);
    const s = await a.subscribe(q, { ack: 'client-individual', 'prefetch-count': '100' });
    await sendAll(p, q, ['n1']);
    await waitFor(() => s.messages.length === 1, 3000, 'first delivery');
    assert.notEqual(s.messages[0].headers.redelivered, 'true');
    await a.receipt((receipt) => s.messages[0].nack({ receipt }), 'NACK receipt');
    await waitFor(() => s.messages.length === 2, 3000, 'redelivery after NACK', { describe: () => JSON.stringify(s.bodies()) });
    const again = s.messages[1];
    assert.equal(again.body, 'n1');
    assert.equal(again.headers.redelivered, 'true', JSON.stringify(again.headers));
    await a.receipt((receipt) => again.ack({ receipt }), 'ACK receipt');
    await a.disconnect();
    await expectRemaining(p, q, []);
  });

  test('NACK on a queue with two consumers -> redelivered (once) with redelivered:true', T, async () => {
    const p = await publisher();
    const q = `/queue/${uniq('nack2')}`;
    const a = await connectStomp(broker.url);
    const b = await connectStomp(broker.url);
    const all = [];
    const sa = await a.subscribe(q, { ack: 'client-individual', 'prefetch-count': '100' }, { onMessage: (m) => all.push(['a', m]) });
    const sb = await b.subscribe(q, { ack: 'client-individual', 'prefetch-count': '100' }, { onMessage: (m) => all.push(['b', m]) });
    await sendAll(p, q, ['only']);
    await waitFor(() => all.length === 1, 3000, 'first delivery');
    const [who, first] = all[0];
    const owner = who === 'a' ? a : b;
    await owner.receipt((receipt) => first.nack({ receipt }), 'NACK receipt');
    await waitFor(() => all.length === 2, 3000, 'redelivery', { describe: () => all.map(([w, m]) => `${w}:${m.body}`).join(',') });
    assert.equal(all[1][1].body, 'only');
    assert.equal(all[1][1].headers.redelivered, 'true');
    assert.equal(sa.messages.length + sb.messages.length, 2);
  });

  test('NACK on a topic subscription -> redelivered to the same subscription', T, async () => {
    const p = await publisher();
    const dest = `/topic/${uniq('tnack')}`;
    const a = await connectStomp(broker.url);
    const s = await a.subscribe(dest, { ack: 'client-individual' });
    await sendAll(p, dest, ['t1']);
    await waitFor(() => s.messages.length === 1, 3000, 'delivery');
    await a.receipt((receipt) => s.messages[0].nack({ receipt }), 'NACK receipt');
    await waitFor(() => s.messages.length === 2, 3000, 'redelivery to the same subscription');
    assert.equal(s.messages[1].body, 't1');
    assert.equal(s.messages[1].headers.redelivered, 'true');
    assert.equal(s.messages[1].headers.subscription, s.id);
  });

  test('unacked queue messages are redelivered to another consumer when the first disconnects', T, async () => {
    const p = await publisher();
    const q = `/queue/${uniq('redeliver')}`;
    const a = await connectStomp(broker.url);
    const sa = await a.subscribe(q, { ack: 'client', 'prefetch-count': '100' });
    await sendAll(p, q, ['r1', 'r2']);
    await waitFor(() => sa.messages.length === 2, 3000, 'deliveries to first consumer');
    const b = await connectStomp(broker.url);
    const sb = await b.subscribe(q, { ack: 'client', 'prefetch-count': '100' });
    assert.equal(sb.messages.length, 0);
    await a.disconnect();
    await waitFor(() => sb.messages.length === 2, 5000, 'redelivery to second consumer', { describe: () => JSON.stringify(sb.bodies()) });
    assert.deepEqual(sorted(sb.bodies()), ['r1', 'r2']);
    for (const m of sb.messages) assert.equal(m.headers.redelivered, 'true', JSON.stringify(m.headers));
  });

  test('unacked queue messages are redelivered when the first consumer drops without DISCONNECT', T, async () => {
    const p = await publisher();
    const q = `/queue/${uniq('drop')}`;
    const a = await connectStomp(broker.url);
    const sa = await a.subscribe(q, { ack: 'client-individual', 'prefetch-count': '100' });
    await sendAll(p, q, ['d1']);
    await waitFor(() => sa.messages.length === 1, 3000, 'delivery to first consumer');
    const b = await connectStomp(broker.url);
    const sb = await b.subscribe(q, { ack: 'client-individual', 'prefetch-count': '100' });
    await a.client.deactivate({ force: true }); // terminate the TCP connection
    await waitFor(() => sb.messages.length === 1, 5000, 'redelivery to second consumer');
    assert.equal(sb.messages[0].body, 'd1');
    assert.equal(sb.messages[0].headers.redelivered, 'true');
  });

  test('unacked queue messages are redelivered when the first consumer UNSUBSCRIBEs', T, async () => {
    const p = await publisher();
    const q = `/queue/${uniq('unsub')}`;
    const a = await connectStomp(broker.url);
    const sa = await a.subscribe(q, { ack: 'client-individual', 'prefetch-count': '100' });
    await sendAll(p, q, ['u1']);
    await waitFor(() => sa.messages.length === 1, 3000, 'delivery to first consumer');
    const b = await connectStomp(broker.url);
    const sb = await b.subscribe(q, { ack: 'client-individual', 'prefetch-count': '100' });
    await a.receipt((receipt) => sa.unsubscribe({ receipt }), 'UNSUBSCRIBE receipt');
    await waitFor(() => sb.messages.length === 1, 5000, 'redelivery to second consumer');
    assert.equal(sb.messages[0].body, 'u1');
    assert.equal(sb.messages[0].headers.redelivered, 'true');
  });

  test('prefetch-count:2 -> at most 2 unacked at once; the rest go to another consumer', T, async () => {
    const p = await publisher();
    const q = `/queue/${uniq('prefetch')}`;
    const a = await connectStomp(broker.url);
    const sa = await a.subscribe(q, { ack: 'client-individual', 'prefetch-count': '2' });
    await sendAll(p, q, ['p1', 'p2', 'p3', 'p4', 'p5']);
    await waitFor(() => sa.messages.length === 2, 3000, '2 deliveries');
    const b = await connectStomp(broker.url);
    const sb = await b.subscribe(q, { ack: 'auto' });
    await waitFor(() => sb.messages.length === 3, 3000, 'the other 3 on the second consumer', { describe: () => `a=${sa.bodies()} b=${sb.bodies()}` });
    assert.deepEqual(sa.bodies(), ['p1', 'p2']);
    assert.deepEqual(sb.bodies(), ['p3', 'p4', 'p5']);
  });

  test('prefetch-count:1 -> next message only after ACK', T, async () => {
    const p = await publisher();
    const q = `/queue/${uniq('pf1')}`;
    const a = await connectStomp(broker.url);
    const sa = await a.subscribe(q, { ack: 'client-individual', 'prefetch-count': '1' }, {
      onMessage: (m) => {
        if (m.body !== 'f3') m.ack();
      },
    });
    await sendAll(p, q, ['f1', 'f2', 'f3', 'f4']);
    await waitFor(() => sa.messages.length === 3, 3000, '3 deliveries (acking each)');
    // f3 is not acked -> f4 must go to a new consumer
    const b = await connectStomp(broker.url);
    const sb = await b.subscribe(q, { ack: 'auto' });
    await waitFor(() => sb.messages.length === 1, 3000, 'f4 on second consumer', { describe: () => `a=${sa.bodies()} b=${sb.bodies()}` });
    assert.deepEqual(sa.bodies(), ['f1', 'f2', 'f3']);
    assert.deepEqual(sb.bodies(), ['f4']);
  });

  test('STOMP 1.1: ACK by message-id + subscription (client-individual)', T, async () => {
    const p = await publisher();
    const q = `/queue/${uniq('v11')}`;
    const a = await connectStomp(broker.url, { stompVersions: new Versions(['1.1']) });
    assert.equal(a.client.connectedVersion, '1.1');
    const s = await a.subscribe(q, { ack: 'client-individual', 'prefetch-count': '100' });
    await sendAll(p, q, ['v1', 'v2']);
    await waitFor(() => s.messages.length === 2, 3000, '2 messages');
    // STOMP.js 1.1 acks with message-id + subscription
    await a.receipt((receipt) => s.messages[0].ack({ receipt }), 'ACK receipt');
    assert.equal(a.errors.length, 0, a.errors.map((e) => e.headers.message).join());
    await a.disconnect();
    await expectRemaining(p, q, ['v2']);
  });

  test('STOMP 1.1: cumulative client ACK and NACK', T, async () => {
    const p = await publisher();
    const q = `/queue/${uniq('v11c')}`;
    const a = await connectStomp(broker.url, { stompVersions: new Versions(['1.1']) });
    const s = await a.subscribe(q, { ack: 'client', 'prefetch-count': '100' });
    await sendAll(p, q, ['w1', 'w2', 'w3']);
    await waitFor(() => s.messages.length === 3, 3000, '3 messages');
    await a.receipt((receipt) => s.messages[1].ack({ receipt }), 'ACK receipt');
    await a.receipt((receipt) => s.messages[2].nack({ receipt }), 'NACK receipt');
    await waitFor(() => s.messages.length === 4, 3000, 'redelivery after NACK', { describe: () => JSON.stringify(s.bodies()) });
    assert.equal(s.messages[3].body, 'w3');
    assert.equal(s.messages[3].headers.redelivered, 'true');
    assert.equal(a.errors.length, 0);
  });
});
