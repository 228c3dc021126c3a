// Poison messages and dead-lettering, with STOMP.js (and MQTT.js for the
// $DLQ/<queue> topic copy) against the real binary:
//   - MESSAGE carries redelivered:false on a first delivery, true after;
//   - NACK requeue:false (RabbitMQ's extension) moves the message to
//     /queue/DLQ.<name> with x-death-* headers, and a copy goes to the
//     MQTT topic $DLQ/<name>;
//   - a consumer that NACKs for ever gets the message
//     limits.max_redeliveries + 1 times, then it is in the dead-letter queue;
//   - a dead letter is on disk: it survives a SIGKILL.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';

import { cleanup, connectStomp, startBroker, uniq } from './harness.js';
import { connectMqtt, mqttCleanup, mqttUrl, userProps } from './mqtt-harness.js';

const T = { timeout: 15000 };
const MAX = 3; // -limits-max-redeliveries for this file

describe('dead-letter queues', () => {
  let broker;
  let dataDir;
  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'duplex-dlq-'));
    broker = await startBroker(['-limits-max-redeliveries', String(MAX)], { dataDir });
  }, { timeout: 15000 });
  afterEach(async () => {
    await mqttCleanup();
    await cleanup();
  });
  after(async () => {
    await broker?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  function assertDead(m, { body, reason, queue, count }) {
    const h = m.headers;
    const desc = JSON.stringify(h);
    assert.equal(m.body, body, desc);
    assert.equal(h.destination, `/queue/DLQ.${queue}`, desc);
    assert.equal(h['x-death-reason'], reason, desc);
    assert.equal(h['x-death-queue'], queue, desc);
    assert.equal(h['x-original-destination'], `/queue/${queue}`, desc);
    assert.equal(h['x-delivery-count'], String(count), desc);
    assert.equal(h.redelivered, 'false', `a first delivery from the DLQ: ${desc}`);
  }

  test('first delivery says redelivered:false, the redelivery after NACK redelivered:true', T, async () => {
    const q = uniq('rd');
    const c = await connectStomp(broker.url);
    const s = await c.subscribe(`/queue/${q}`, { ack: 'client-individual' });
    await c.publishWithReceipt({ destination: `/queue/${q}`, body: 'm' });
    await s.waitCount(1);
    assert.equal(s.messages[0].headers.redelivered, 'false', JSON.stringify(s.messages[0].headers));
    await c.receipt((receipt) => s.messages[0].nack({ receipt }), 'NACK receipt');
    await s.waitCount(2);
    assert.equal(s.messages[1].headers.redelivered, 'true', JSON.stringify(s.messages[1].headers));
    s.messages[1].ack();
    // Topic deliveries too.
    const t = await c.subscribe(`/topic/${q}`);
    await c.publishWithReceipt({ destination: `/topic/${q}`, body: 't' });
    await t.waitCount(1);
    assert.equal(t.messages[0].headers.redelivered, 'false', JSON.stringify(t.messages[0].headers));
  });

  test('NACK requeue:false: not redelivered, in /queue/DLQ.<name> with the headers, and on MQTT $DLQ/<name>', T, async () => {
    const q = uniq('rej');
    const mq = await connectMqtt(mqttUrl(broker), { protocolVersion: 5 });
    await mq.client.subscribeAsync(`$DLQ/${q}`, { qos: 1 });
    const c = await connectStomp(broker.url);
    const s = await c.subscribe(`/queue/${q}`, { ack: 'client-individual' });
    await c.publishWithReceipt({ destination: `/queue/${q}`, body: 'poison', headers: { 'x-app': 'a1' } });
    await s.waitCount(1);
    await c.receipt((receipt) => s.messages[0].nack({ requeue: 'false', receipt }), 'NACK requeue:false receipt');

    const d = await connectStomp(broker.url);
    const dead = await d.subscribe(`/queue/DLQ.${q}`, { ack: 'client-individual' });
    await dead.waitCount(1);
    assertDead(dead.messages[0], { body: 'poison', reason: 'rejected', queue: q, count: 1 });
    assert.equal(dead.messages[0].headers['x-app'], 'a1', 'the original headers stay');

    const [m] = await mq.waitMessages(1);
    assert.equal(m.topic, `$DLQ/${q}`);
    assert.equal(m.payload.toString(), 'poison');
    const up = userProps(m.packet);
    assert.equal(up['x-death-reason'], 'rejected', JSON.stringify(up));
    assert.equal(up['x-death-queue'], q, JSON.stringify(up));

    // Nothing came back to the rejecting consumer: prove it with a marker.
    await c.publishWithReceipt({ destination: `/queue/${q}`, body: 'marker' });
    await s.waitCount(2);
    assert.deepEqual(s.bodies(), ['poison', 'marker']);
    s.messages[1].ack();
    dead.messages[0].ack();
  });

  test(`a consumer that NACKs for ever gets the message max_redeliveries+1 (${MAX + 1}) times, then it is dead-lettered`, T, async () => {
    const q = uniq('loop');
    const c = await connectStomp(broker.url);
    const s = await c.subscribe(`/queue/${q}`, { ack: 'client-individual' }, { onMessage: (m) => m.nack() });
    await c.publishWithReceipt({ destination: `/queue/${q}`, body: 'poison' });

    const d = await connectStomp(broker.url);
    const dead = await d.subscribe(`/queue/DLQ.${q}`, { ack: 'client-individual' });
    await dead.waitCount(1);
    assertDead(dead.messages[0], { body: 'poison', reason: 'delivery_limit', queue: q, count: MAX + 1 });
    assert.equal(s.messages.length, MAX + 1, `deliveries to the NACKing consumer: ${JSON.stringify(s.messages.map((m) => m.headers.redelivered))}`);
    assert.deepEqual(s.messages.map((m) => m.headers.redelivered), ['false', ...Array(MAX).fill('true')]);
    dead.messages[0].ack();

    // A dead letter NACKed requeue:false is dropped, not dead-lettered again.
    await c.publishWithReceipt({ destination: `/queue/DLQ.${q}`, body: 'again' });
    await dead.waitCount(2);
    await d.receipt((receipt) => dead.messages[1].nack({ requeue: 'false', receipt }), 'NACK receipt');
    const e = await connectStomp(broker.url);
    const dd = await e.subscribe(`/queue/DLQ.DLQ.${q}`, { ack: 'auto' });
    await c.publishWithReceipt({ destination: `/queue/DLQ.DLQ.${q}`, body: 'marker' });
    await dd.waitCount(1);
    assert.deepEqual(dd.bodies(), ['marker'], 'DLQ.DLQ.<name> got a dead letter');
  });

  test('a dead letter is on disk: it is still in the DLQ after a SIGKILL', T, async () => {
    const q = uniq('kill');
    const c = await connectStomp(broker.url);
    const s = await c.subscribe(`/queue/${q}`, { ack: 'client-individual' });
    await c.publishWithReceipt({ destination: `/queue/${q}`, body: 'kept' });
    await s.waitCount(1);
    await c.receipt((receipt) => s.messages[0].nack({ requeue: 'false', receipt }), 'NACK receipt');
    await broker.kill();
    broker = await startBroker(['-limits-max-redeliveries', String(MAX)], { dataDir });

    const d = await connectStomp(broker.url);
    const dead = await d.subscribe(`/queue/DLQ.${q}`, { ack: 'client-individual' });
    const orig = await d.subscribe(`/queue/${q}`, { ack: 'auto' });
    await d.publishWithReceipt({ destination: `/queue/${q}`, body: 'marker' });
    await orig.waitCount(1);
    await dead.waitCount(1);
    assert.deepEqual(orig.bodies(), ['marker'], 'the rejected message came back to its own queue');
    assert.equal(dead.messages[0].body, 'kept');
    assert.equal(dead.messages[0].headers['x-death-reason'], 'rejected');
    dead.messages[0].ack();
  });
});
