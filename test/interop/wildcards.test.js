// MQTT-style wildcards in /topic SUBSCRIBE destinations.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { cleanup, connectStomp, startBroker, uniq, waitFor } from './harness.js';

const T = { timeout: 10000 };

describe('topic wildcards', () => {
  let broker;
  before(async () => {
    broker = await startBroker();
  }, { timeout: 15000 });
  afterEach(cleanup);
  after(async () => {
    await broker?.stop();
  });

  test('/topic/R/sensors/+, /topic/R/sensors/#, /topic/# all receive /topic/R/sensors/t1', T, async () => {
    const root = uniq('w');
    const c = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const plus = await c.subscribe(`/topic/${root}/sensors/+`, { id: 'plus' });
    const hash = await c.subscribe(`/topic/${root}/sensors/#`, { id: 'hash' });
    const all = await c.subscribe('/topic/#', { id: 'all' });
    await pub.publishWithReceipt({ destination: `/topic/${root}/sensors/t1`, body: '21.5' });
    await waitFor(() => plus.messages.length === 1 && hash.messages.length === 1 && all.messages.some((m) => m.body === '21.5'), 3000,
      'delivery to all three', { describe: () => `plus=${plus.messages.length} hash=${hash.messages.length} all=${all.messages.length}` });
    for (const [s, id] of [[plus, 'plus'], [hash, 'hash']]) {
      const m = s.messages[0];
      assert.equal(m.body, '21.5');
      // destination is the concrete topic, subscription the wildcard subscription
      assert.equal(m.headers.destination, `/topic/${root}/sensors/t1`);
      assert.equal(m.headers.subscription, id);
    }
  });

  test('/topic/R/sensors/+ does not receive /topic/R/sensors/a/b, # does', T, async () => {
    const root = uniq('w');
    const c = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const plus = await c.subscribe(`/topic/${root}/sensors/+`);
    const hash = await c.subscribe(`/topic/${root}/sensors/#`);
    await pub.publishWithReceipt({ destination: `/topic/${root}/sensors/a/b`, body: 'deep' });
    await pub.publishWithReceipt({ destination: `/topic/${root}/sensors/t2`, body: 'marker' });
    await waitFor(() => plus.messages.length >= 1 && hash.messages.length >= 2, 3000, 'marker on plus, both on hash',
      { describe: () => `plus=${plus.bodies()} hash=${hash.bodies()}` });
    assert.deepEqual(plus.bodies(), ['marker']);
    assert.deepEqual(hash.bodies(), ['deep', 'marker']);
  });

  test('# matches the parent level too (MQTT: a/# matches a)', T, async () => {
    const root = uniq('w');
    const c = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const hash = await c.subscribe(`/topic/${root}/sensors/#`);
    await pub.publishWithReceipt({ destination: `/topic/${root}/sensors`, body: 'parent' });
    await waitFor(() => hash.messages.length === 1, 3000, 'parent level on #');
    assert.equal(hash.messages[0].body, 'parent');
  });

  test('+ in the middle: /topic/R/+/temp', T, async () => {
    const root = uniq('w');
    const c = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const s = await c.subscribe(`/topic/${root}/+/temp`);
    await pub.publishWithReceipt({ destination: `/topic/${root}/kitchen/temp`, body: 'k' });
    await pub.publishWithReceipt({ destination: `/topic/${root}/kitchen/humidity`, body: 'no' });
    await pub.publishWithReceipt({ destination: `/topic/${root}/a/b/temp`, body: 'no2' });
    await pub.publishWithReceipt({ destination: `/topic/${root}/hall/temp`, body: 'h' });
    await waitFor(() => s.messages.length >= 2, 3000, '2 matches', { describe: () => JSON.stringify(s.bodies()) });
    assert.deepEqual(s.bodies(), ['k', 'h']);
  });

  test('overlapping wildcard subscriptions on one connection each get one copy', T, async () => {
    const root = uniq('w');
    const c = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const s1 = await c.subscribe(`/topic/${root}/#`);
    const s2 = await c.subscribe(`/topic/${root}/+`);
    const s3 = await c.subscribe(`/topic/${root}/x`);
    await pub.publishWithReceipt({ destination: `/topic/${root}/x`, body: 'one' });
    await pub.publishWithReceipt({ destination: `/topic/${root}/y`, body: 'marker' });
    await waitFor(() => s1.messages.length >= 2 && s2.messages.length >= 2 && s3.messages.length >= 1, 3000, 'deliveries',
      { describe: () => `${s1.bodies()} | ${s2.bodies()} | ${s3.bodies()}` });
    assert.deepEqual(s1.bodies(), ['one', 'marker']);
    assert.deepEqual(s2.bodies(), ['one', 'marker']);
    assert.deepEqual(s3.bodies(), ['one']);
  });
});
