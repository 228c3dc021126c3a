// BEGIN / COMMIT / ABORT with SEND and ACK.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { cleanup, connectStomp, openRawConnected, startBroker, uniq, waitFor } from './harness.js';

const T = { timeout: 10000 };

describe('transactions', () => {
  let broker;
  before(async () => {
    broker = await startBroker();
  }, { timeout: 15000 });
  afterEach(cleanup);
  after(async () => {
    await broker?.stop();
  });

  test('BEGIN, SEND x2, COMMIT -> both delivered, and not before COMMIT', T, async () => {
    const sub = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const dest = `/topic/${uniq('txc')}`;
    const s = await sub.subscribe(dest);
    const tx = pub.client.begin();
    pub.client.publish({ destination: dest, body: 'tx-1', headers: { transaction: tx.id } });
    pub.client.publish({ destination: dest, body: 'tx-2', headers: { transaction: tx.id } });
    // a non-transactional marker overtakes the buffered messages (its receipt
    // also means the two transactional SENDs before it were processed)
    await pub.publishWithReceipt({ destination: dest, body: 'marker-1' });
    await waitFor(() => s.messages.length >= 1, 3000, 'marker-1');
    assert.deepEqual(s.bodies(), ['marker-1'], 'transactional SENDs delivered before COMMIT');
    tx.commit();
    await waitFor(() => s.messages.length === 3, 3000, 'committed messages', { describe: () => JSON.stringify(s.bodies()) });
    assert.deepEqual(s.bodies(), ['marker-1', 'tx-1', 'tx-2']);
    for (const m of s.messages) assert.equal(m.headers.transaction, undefined, 'transaction header leaked into MESSAGE');
    assert.equal(pub.errors.length, 0);
  });

  test('receipt on a SEND inside a transaction -> RECEIPT (before or at COMMIT)', T, async () => {
    const raw = await openRawConnected(broker.url);
    const dest = `/topic/${uniq('txr')}`;
    await raw.sendFrame('BEGIN', { transaction: 't1' });
    await raw.sendFrame('SEND', { destination: dest, transaction: 't1', receipt: 'tx-send-1' }, 'in tx');
    await raw.sendFrame('COMMIT', { transaction: 't1', receipt: 'tx-commit-1' });
    await raw.waitFrame((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === 'tx-commit-1');
    const ids = raw.frames.filter((f) => f.command === 'RECEIPT').map((f) => f.headers['receipt-id']);
    assert.deepEqual(ids, ['tx-send-1', 'tx-commit-1'], `received: ${raw.describe()}`);
  });

  test('BEGIN, SEND, ABORT -> not delivered (only the later marker arrives)', T, async () => {
    const sub = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const dest = `/topic/${uniq('txa')}`;
    const s = await sub.subscribe(dest);
    const tx = pub.client.begin();
    pub.client.publish({ destination: dest, body: 'aborted', headers: { transaction: tx.id } });
    tx.abort();
    await pub.publishWithReceipt({ destination: dest, body: 'marker' });
    await waitFor(() => s.messages.length >= 1, 3000, 'marker');
    assert.deepEqual(s.bodies(), ['marker']);
    assert.equal(pub.errors.length, 0);
  });

  test('BEGIN, SEND to a queue, ABORT -> queue stays empty', T, async () => {
    const pub = await connectStomp(broker.url);
    const q = `/queue/${uniq('txq')}`;
    const tx = pub.client.begin();
    pub.client.publish({ destination: q, body: 'aborted', headers: { transaction: tx.id } });
    tx.abort();
    await pub.publishWithReceipt({ destination: q, body: 'marker' });
    const sub = await connectStomp(broker.url);
    const s = await sub.subscribe(q);
    await waitFor(() => s.messages.length >= 1, 3000, 'marker');
    assert.deepEqual(s.bodies(), ['marker']);
  });

  test('two interleaved transactions on one connection: commit one, abort the other', T, async () => {
    const sub = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const dest = `/topic/${uniq('tx2')}`;
    const s = await sub.subscribe(dest);
    const t1 = pub.client.begin();
    const t2 = pub.client.begin();
    pub.client.publish({ destination: dest, body: 'a1', headers: { transaction: t1.id } });
    pub.client.publish({ destination: dest, body: 'b1', headers: { transaction: t2.id } });
    pub.client.publish({ destination: dest, body: 'a2', headers: { transaction: t1.id } });
    t2.abort();
    t1.commit();
    await pub.publishWithReceipt({ destination: dest, body: 'marker' });
    await waitFor(() => s.messages.some((m) => m.body === 'marker'), 3000, 'marker');
    assert.deepEqual(s.bodies(), ['a1', 'a2', 'marker']);
  });

  test('ACK inside a transaction + COMMIT -> message consumed', T, async () => {
    const pub = await connectStomp(broker.url);
    const q = `/queue/${uniq('txack')}`;
    const a = await connectStomp(broker.url);
    const sa = await a.subscribe(q, { ack: 'client-individual', 'prefetch-count': '100' });
    await pub.publishWithReceipt({ destination: q, body: 'acked-in-tx' });
    await waitFor(() => sa.messages.length === 1, 3000, 'delivery');
    const tx = a.client.begin();
    sa.messages[0].ack({ transaction: tx.id });
    tx.commit();
    await a.disconnect(); // DISCONNECT is processed after COMMIT
    assert.equal(a.errors.length, 0, a.errors.map((e) => e.headers.message).join());
    const b = await connectStomp(broker.url);
    const sb = await b.subscribe(q);
    await pub.publishWithReceipt({ destination: q, body: 'marker' });
    await waitFor(() => sb.messages.some((m) => m.body === 'marker'), 3000, 'marker');
    assert.deepEqual(sb.bodies(), ['marker']);
  });

  test('ACK inside a transaction + ABORT -> ACK dropped, message redelivered', T, async () => {
    const pub = await connectStomp(broker.url);
    const q = `/queue/${uniq('txackab')}`;
    const a = await connectStomp(broker.url);
    const sa = await a.subscribe(q, { ack: 'client-individual', 'prefetch-count': '100' });
    await pub.publishWithReceipt({ destination: q, body: 'ack-aborted' });
    await waitFor(() => sa.messages.length === 1, 3000, 'delivery');
    const tx = a.client.begin();
    sa.messages[0].ack({ transaction: tx.id });
    tx.abort();
    await a.disconnect();
    assert.equal(a.errors.length, 0, a.errors.map((e) => e.headers.message).join());
    const b = await connectStomp(broker.url);
    const sb = await b.subscribe(q);
    await pub.publishWithReceipt({ destination: q, body: 'marker' });
    await waitFor(() => sb.messages.some((m) => m.body === 'marker') && sb.messages.length >= 2, 3000, 'redelivery + marker', { describe: () => JSON.stringify(sb.bodies()) });
    assert.deepEqual([...sb.bodies()].sort(), ['ack-aborted', 'marker']);
    assert.equal(sb.messages.find((m) => m.body === 'ack-aborted').headers.redelivered, 'true');
  });

  test('ACK inside a transaction is not applied before COMMIT', T, async () => {
    const pub = await connectStomp(broker.url);
    const q = `/queue/${uniq('txpending')}`;
    const a = await connectStomp(broker.url);
    const sa = await a.subscribe(q, { ack: 'client-individual', 'prefetch-count': '1' });
    await pub.publishWithReceipt({ destination: q, body: 'm1' });
    await pub.publishWithReceipt({ destination: q, body: 'm2' });
    await waitFor(() => sa.messages.length === 1, 3000, 'first delivery');
    const tx = a.client.begin();
    sa.messages[0].ack({ transaction: tx.id });
    // with prefetch 1 the second message may only come once the ACK is
    // committed. A receipt round trip on the consumer's connection (can only
    // catch an eager ACK that dispatched m2 before the RECEIPT).
    await a.receipt((receipt) => a.client.publish({ destination: `/topic/${uniq('noop')}`, body: '', headers: { receipt } }));
    assert.deepEqual(sa.bodies(), ['m1']);
    tx.commit();
    await waitFor(() => sa.messages.length === 2, 3000, 'second delivery after COMMIT');
    assert.equal(sa.messages[1].body, 'm2');
  });
});
