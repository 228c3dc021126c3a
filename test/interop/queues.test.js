// Point-to-point queues and temp-queue request/reply.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { cleanup, connectStomp, openRawConnected, rawSubscribe, startBroker, uniq, waitFor } from './harness.js';

const T = { timeout: 10000 };

describe('queues', () => {
  let broker;
  before(async () => {
    broker = await startBroker();
  }, { timeout: 15000 });
  afterEach(cleanup);
  after(async () => {
    await broker?.stop();
  });

  test('two competing consumers: 20 messages, each delivered exactly once, round robin 10/10', T, async () => {
    const q = `/queue/${uniq('rr')}`;
    const a = await connectStomp(broker.url);
    const b = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const sa = await a.subscribe(q);
    const sb = await b.subscribe(q);
    for (let i = 0; i < 19; i++) pub.client.publish({ destination: q, body: `m${i}` });
    await pub.publishWithReceipt({ destination: q, body: 'm19' });
    await waitFor(() => sa.messages.length + sb.messages.length >= 20, 5000, '20 deliveries',
      { describe: () => `a=${sa.messages.length} b=${sb.messages.length}` });
    const all = [...sa.bodies(), ...sb.bodies()];
    assert.equal(all.length, 20, `duplicates? ${JSON.stringify(all)}`);
    assert.deepEqual([...new Set(all)].sort(), Array.from({ length: 20 }, (_, i) => `m${i}`).sort());
    assert.equal(sa.messages.length, 10, `a got ${sa.bodies()} / b got ${sb.bodies()}`);
    assert.equal(sb.messages.length, 10, `a got ${sa.bodies()} / b got ${sb.bodies()}`);
    // each consumer sees its share in publish order
    const idx = (s) => s.bodies().map((x) => Number(x.slice(1)));
    for (const s of [sa, sb]) {
      const n = idx(s);
      assert.deepEqual(n, [...n].sort((x, y) => x - y), 'per-consumer order broken');
    }
    // MESSAGE destination is the queue
    assert.equal(sa.messages[0].headers.destination, q);
  });

  test('messages sent to a queue without consumers wait for one (in order)', T, async () => {
    const q = `/queue/${uniq('wait')}`;
    const pub = await connectStomp(broker.url);
    for (let i = 0; i < 4; i++) pub.client.publish({ destination: q, body: `w${i}` });
    await pub.publishWithReceipt({ destination: q, body: 'w4' });
    const c = await connectStomp(broker.url);
    const s = await c.subscribe(q);
    await waitFor(() => s.messages.length === 5, 3000, '5 queued messages', { describe: () => JSON.stringify(s.bodies()) });
    assert.deepEqual(s.bodies(), ['w0', 'w1', 'w2', 'w3', 'w4']);
  });

  test('queue and topic with the same name are separate', T, async () => {
    const name = uniq('same');
    const c = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const sq = await c.subscribe(`/queue/${name}`);
    const st = await c.subscribe(`/topic/${name}`);
    await pub.publishWithReceipt({ destination: `/queue/${name}`, body: 'to-queue' });
    await pub.publishWithReceipt({ destination: `/topic/${name}`, body: 'to-topic' });
    await waitFor(() => sq.messages.length >= 1 && st.messages.length >= 1, 3000, 'both');
    // marker on each to prove no cross-delivery
    await pub.publishWithReceipt({ destination: `/queue/${name}`, body: 'mq' });
    await pub.publishWithReceipt({ destination: `/topic/${name}`, body: 'mt' });
    await waitFor(() => sq.messages.length >= 2 && st.messages.length >= 2, 3000, 'markers');
    assert.deepEqual(sq.bodies(), ['to-queue', 'mq']);
    assert.deepEqual(st.bodies(), ['to-topic', 'mt']);
  });

  test('temp-queue request/reply (RabbitMQ semantics, reply via onUnhandledMessage)', T, async () => {
    const rpc = `/queue/${uniq('rpc')}`;
    const requester = await connectStomp(broker.url);
    const responder = await connectStomp(broker.url);
    const requests = [];
    await responder.subscribe(rpc, {}, {
      onMessage: (m) => {
        requests.push(m);
        responder.client.publish({
          destination: m.headers['reply-to'],
          body: `reply to ${m.body}`,
          headers: { 'correlation-id': m.headers['correlation-id'] ?? '' },
        });
      },
    });
    await requester.publishWithReceipt({
      destination: rpc,
      body: 'ping',
      headers: { 'reply-to': '/temp-queue/r1', 'correlation-id': 'c-1' },
    });
    await waitFor(() => requests.length === 1, 3000, 'request at responder');
    const replyTo = requests[0].headers['reply-to'];
    assert.match(replyTo, /^\/reply-queue\/\S+$/, `reply-to was not rewritten: ${replyTo}`);
    assert.equal(requests[0].headers['correlation-id'], 'c-1');
    await waitFor(() => requester.unhandled.length === 1, 3000, 'reply via onUnhandledMessage',
      { describe: () => `unhandled=${requester.unhandled.length} responderErrors=${responder.errors.map((e) => e.headers.message)}` });
    const reply = requester.unhandled[0];
    assert.equal(reply.body, 'reply to ping');
    assert.equal(reply.headers.destination, '/temp-queue/r1');
    assert.equal(reply.headers.subscription, '/temp-queue/r1');
    assert.equal(reply.headers['correlation-id'], 'c-1');
  });

  test('temp-queue: two requesters using the same temp name get only their own replies', T, async () => {
    const rpc = `/queue/${uniq('rpc2')}`;
    const r1 = await connectStomp(broker.url);
    const r2 = await connectStomp(broker.url);
    const responder = await connectStomp(broker.url);
    await responder.subscribe(rpc, {}, {
      onMessage: (m) => responder.client.publish({ destination: m.headers['reply-to'], body: `re:${m.body}` }),
    });
    await r1.publishWithReceipt({ destination: rpc, body: 'from-r1', headers: { 'reply-to': '/temp-queue/replies' } });
    await r2.publishWithReceipt({ destination: rpc, body: 'from-r2', headers: { 'reply-to': '/temp-queue/replies' } });
    await waitFor(() => r1.unhandled.length >= 1 && r2.unhandled.length >= 1, 3000, 'both replies');
    // a second round proves nothing else was queued for the other one
    await r1.publishWithReceipt({ destination: rpc, body: 'again-r1', headers: { 'reply-to': '/temp-queue/replies' } });
    await waitFor(() => r1.unhandled.length >= 2, 3000, 'second reply');
    assert.deepEqual(r1.unhandled.map((m) => m.body), ['re:from-r1', 're:again-r1']);
    assert.deepEqual(r2.unhandled.map((m) => m.body), ['re:from-r2']);
  });

  test('temp-queue with a raw responder and several requests in flight', T, async () => {
    const rpc = `/queue/${uniq('rpc3')}`;
    const requester = await connectStomp(broker.url);
    const responder = await openRawConnected(broker.url);
    await rawSubscribe(responder, rpc);
    for (let i = 0; i < 5; i++) {
      requester.client.publish({ destination: rpc, body: `q${i}`, headers: { 'reply-to': '/temp-queue/multi' } });
    }
    await responder.waitFrame(() => responder.frames.filter((f) => f.command === 'MESSAGE').length === 5, 3000);
    for (const f of responder.frames.filter((fr) => fr.command === 'MESSAGE')) {
      await responder.sendFrame('SEND', { destination: f.headers['reply-to'] }, `a-${f.text}`);
    }
    await waitFor(() => requester.unhandled.length === 5, 3000, '5 replies', { describe: () => responder.describe() });
    assert.deepEqual(requester.unhandled.map((m) => m.body), ['a-q0', 'a-q1', 'a-q2', 'a-q3', 'a-q4']);
    for (const m of requester.unhandled) assert.equal(m.headers.destination, '/temp-queue/multi');
  });
});
