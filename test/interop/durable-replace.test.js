// A durable STOMP subscription whose name comes back with another
// destination is replaced at once, as JMS and Artemis do: the old
// destination's waiting messages are gone, nothing more of it arrives, the
// new destination's messages do, and a broker restart keeps the new
// destination. While a consumer is attached, the name cannot change
// destination (ERROR "access refused").

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';

import { cleanup, connectStomp, startBroker, uniq, waitFor } from './harness.js';

// The dialects STOMP.js users write: ActiveMQ (client-id +
// activemq.subscriptionName), Artemis (client-id +
// durable-subscription-name) and RabbitMQ (durable:true, named by the id).
function dialects() {
  return [
    ['ActiveMQ', { 'client-id': uniq('amq') }, { id: uniq('s'), 'activemq.subscriptionName': 'X' }],
    ['Artemis', { 'client-id': uniq('art') }, { id: uniq('s'), 'durable-subscription-name': 'X' }],
    ['RabbitMQ', {}, { id: uniq('X'), durable: 'true', 'auto-delete': 'false' }],
  ];
}

describe('durable subscription name reused for another destination (STOMP.js)', () => {
  afterEach(cleanup);

  for (const [name, connectHeaders, subHeaders] of dialects()) {
    test(`${name}: replaced at once, and still on the new destination after a restart`, { timeout: 30000 }, async () => {
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'duplex-interop-replace-'));
      let broker;
      try {
        const a = `/topic/${uniq('a')}`;
        const b = `/topic/${uniq('b')}`;
        broker = await startBroker([], { dataDir });
        const send = async (destination, body) => {
          const p = await connectStomp(broker.url);
          await p.publishWithReceipt({ destination, body });
          await p.disconnect();
        };

        // Durable on a, offline, two messages wait for it.
        let s = await connectStomp(broker.url, { connectHeaders });
        await s.subscribe(a, subHeaders);
        await s.disconnect();
        await send(a, 'a1');
        await send(a, 'a2');

        // The same name on b: nothing of a, then only b.
        s = await connectStomp(broker.url, { connectHeaders });
        let sub = await s.subscribe(b, subHeaders);
        await send(a, 'a3');
        await send(b, 'b1');
        await send(b, 'b2');
        await sub.waitCount(2, 10000);
        // a3 went in before b1: had it arrived, it would be among the two.
        assert.deepEqual(sub.bodies(), ['b1', 'b2'], 'after the SUBSCRIBE receipt on b');
        assert.equal(s.errors.length, 0, `ERROR frames: ${JSON.stringify(s.errors.map((e) => e.headers))}`);
        await s.disconnect();

        // Offline again: b's message waits, a's does not.
        await send(a, 'a4');
        await send(b, 'b3');
        assert.equal((await broker.stop()).code, 0);

        broker = await startBroker([], { dataDir });
        s = await connectStomp(broker.url, { connectHeaders });
        sub = await s.subscribe(b, subHeaders);
        await send(a, 'a5');
        await send(b, 'b4');
        await sub.waitCount(2, 10000);
        assert.deepEqual(sub.bodies(), ['b3', 'b4'], 'after the restart the subscription is on b with its message');
        await s.disconnect();
      } finally {
        await broker?.stop();
        await rm(dataDir, { recursive: true, force: true });
      }
    });
  }

  test('refused while a consumer is attached; the subscription stays as it was', { timeout: 30000 }, async () => {
    const broker = await startBroker();
    try {
      const a = `/topic/${uniq('a')}`;
      const c = `/topic/${uniq('c')}`;
      const headers = { id: uniq('X'), durable: 'true', 'auto-delete': 'false' };
      const first = await connectStomp(broker.url);
      const sub = await first.subscribe(a, headers);

      const second = await connectStomp(broker.url);
      await second.subscribe(c, headers, { receipt: false }).catch(() => {});
      await waitFor(() => second.errors.length > 0, 5000, 'ERROR for the name in use');
      assert.equal(second.errors[0].headers.message, 'access refused');
      assert.match(second.errors[0].body, /durable subscription in use/);

      const p = await connectStomp(broker.url);
      await p.publishWithReceipt({ destination: c, body: 'c1' });
      await p.publishWithReceipt({ destination: a, body: 'a1' });
      await sub.waitCount(1, 10000);
      assert.deepEqual(sub.bodies(), ['a1'], 'the attached consumer still reads a, and nothing of c');
      assert.equal(first.errors.length, 0);
    } finally {
      await broker.stop();
    }
  });
});
