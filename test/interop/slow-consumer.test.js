// Slow consumer protection: a subscriber that never reads is disconnected
// once its outbox exceeds the limit; publishers and healthy subscribers are
// not held up.
//
// The slow subscriber is a raw WebSocket whose TCP socket is paused, so the
// kernel buffers fill up and the broker's per-connection outbox grows.
// Messages are 4 KiB so that 5000 of them (20 MiB) are far more than the
// loopback socket buffers can absorb.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { cleanup, connectStomp, openRawConnected, rawSubscribe, startBroker, uniq, waitFor } from './harness.js';

const T = { timeout: 10000 };
const COUNT = 5000;
const BODY_SIZE = 4096;
// With a 10-delivery outbox even a subscriber that reads as fast as it can
// is "slow" if 11+ deliveries for it arrive while its write loop is busy.
// So the publisher sends in batches of 5 and waits (event-driven) until the
// healthy subscriber has everything before the next batch: the healthy
// subscriber's outbox never holds more than 5, while the paused one's grows
// without bound once its socket buffers are full.
const BATCH = 5;

/**
 * Publish COUNT messages (receipt on the last of each batch, which must
 * arrive: the publisher is never blocked by the paused subscriber).
 */
async function publishAll(pub, dest, healthySub) {
  const pad = 'p'.repeat(BODY_SIZE - 8);
  let sent = 0;
  while (sent < COUNT) {
    const end = Math.min(sent + BATCH, COUNT);
    for (; sent < end - 1; sent++) pub.client.publish({ destination: dest, body: `${String(sent).padStart(8, '0')}${pad}` });
    await pub.publishWithReceipt({ destination: dest, body: `${String(sent).padStart(8, '0')}${pad}` }, 5000);
    sent += 1;
    await healthySub.waitCount(sent, 5000);
  }
}

function scenario(getBroker) {
  return async () => {
    const broker = getBroker();
    const dest = `/topic/${uniq('slow')}`;

    const slow = await openRawConnected(broker.url);
    await rawSubscribe(slow, dest);
    slow.pause(); // never reads again (until the end of the test)

    const healthy = await connectStomp(broker.url);
    const hs = await healthy.subscribe(dest);
    const pub = await connectStomp(broker.url);

    await publishAll(pub, dest, hs);
    // publisher was never blocked: every batch receipt arrived (publishAll)
    assert.equal(pub.errors.length, 0);
    assert.equal(pub.closes.length, 0, 'publisher was disconnected');

    await waitFor(() => hs.messages.length >= COUNT, 8000, `healthy subscriber to receive ${COUNT}`,
      { describe: () => `${hs.messages.length}` });
    assert.equal(hs.messages.length, COUNT);
    for (let i = 0; i < COUNT; i++) {
      const b = hs.messages[i].body;
      if (Number(b.slice(0, 8)) !== i || b.length !== BODY_SIZE) {
        assert.fail(`healthy subscriber message ${i} is ${b.slice(0, 8)} (len ${b.length})`);
      }
    }
    assert.equal(healthy.closes.length, 0, 'healthy subscriber was disconnected');

    // the slow subscriber's connection must have been closed by the broker;
    // we only see the close once we read the buffered data
    slow.resume();
    await slow.waitClose(8000);
    const got = slow.frames.filter((f) => f.command === 'MESSAGE').length;
    assert.ok(got < COUNT, `slow subscriber received all ${got} messages: it was not cut off`);
    return { slow, got };
  };
}

describe('slow consumer (-max-pending-msgs 10)', () => {
  let broker;
  before(async () => {
    broker = await startBroker(['-max-pending-msgs', '10']);
  }, { timeout: 15000 });
  afterEach(cleanup);
  after(async () => {
    await broker?.stop();
  });

  test(`paused subscriber is disconnected; publisher's receipts arrive; healthy subscriber gets all ${COUNT}`, T, async () => {
    await scenario(() => broker)();
  });

  test('the slow subscriber is told why: ERROR message:slow consumer before the close', T, async () => {
    const { slow } = await scenario(() => broker)();
    const err = slow.frames.find((f) => f.command === 'ERROR');
    assert.ok(err, `no ERROR frame before close; ${slow.describe()}`);
    assert.equal(err.headers.message, 'slow consumer');
  });

  test('broker still serves new clients after disconnecting a slow consumer', T, async () => {
    const a = await connectStomp(broker.url);
    const dest = `/topic/${uniq('after')}`;
    const s = await a.subscribe(dest);
    await a.publishWithReceipt({ destination: dest, body: 'ok' });
    await waitFor(() => s.messages.length === 1, 3000, 'message');
  });
});

describe('slow consumer by bytes (-max-pending-bytes 65536 -max-pending-msgs 1000000)', () => {
  let broker;
  before(async () => {
    broker = await startBroker(['-max-pending-bytes', '65536', '-max-pending-msgs', '1000000']);
  }, { timeout: 15000 });
  afterEach(cleanup);
  after(async () => {
    await broker?.stop();
  });

  test(`paused subscriber is disconnected by the byte limit; healthy subscriber gets all ${COUNT}`, T, async () => {
    await scenario(() => broker)();
  });
});
