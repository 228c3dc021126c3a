// Topic fan-out to many STOMP.js subscribers.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { cleanup, connectStomp, startBroker, uniq, waitFor } from './harness.js';

describe('fan-out', () => {
  let broker;
  before(async () => {
    broker = await startBroker();
  }, { timeout: 15000 });
  afterEach(cleanup);
  after(async () => {
    await broker?.stop();
  });

  test('100 subscriber clients on one topic, 10 messages -> each receives all 10 in order', { timeout: 10000 }, async () => {
    const dest = `/topic/${uniq('fan')}`;
    const N = 100;
    const subs = await Promise.all(
      Array.from({ length: N }, async () => {
        const c = await connectStomp(broker.url, { timeout: 8000 });
        return c.subscribe(dest);
      }),
    );
    const pub = await connectStomp(broker.url);
    for (let i = 0; i < 9; i++) pub.client.publish({ destination: dest, body: `msg-${i}` });
    await pub.publishWithReceipt({ destination: dest, body: 'msg-9' });
    const expected = Array.from({ length: 10 }, (_, i) => `msg-${i}`);
    await waitFor(() => subs.every((s) => s.messages.length >= 10), 8000, 'all subscribers to get 10 messages', {
      describe: () => {
        const counts = subs.map((s) => s.messages.length);
        return `min=${Math.min(...counts)} max=${Math.max(...counts)} complete=${counts.filter((n) => n >= 10).length}/${N}`;
      },
    });
    subs.forEach((s, i) => assert.deepEqual(s.bodies(), expected, `subscriber ${i}`));
  });

  test('100 subscriptions on one connection (distinct ids) each get the message', { timeout: 10000 }, async () => {
    const dest = `/topic/${uniq('fan1')}`;
    const c = await connectStomp(broker.url);
    const subs = [];
    for (let i = 0; i < 100; i++) subs.push(await c.subscribe(dest, { id: `s${i}` }));
    const pub = await connectStomp(broker.url);
    await pub.publishWithReceipt({ destination: dest, body: 'one' });
    await waitFor(() => subs.every((s) => s.messages.length >= 1), 5000, 'all 100 subscriptions');
    subs.forEach((s, i) => {
      assert.equal(s.messages.length, 1);
      assert.equal(s.messages[0].headers.subscription, `s${i}`);
    });
  });
});
