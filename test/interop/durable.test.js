// Durability with the clients our users run: an MQTT.js persistent session
// and STOMP.js durable subscriptions (RabbitMQ and ActiveMQ dialects), all
// offline, get every message published while they were away, after the
// broker restarted (SIGTERM) or crashed (SIGKILL) on the same data folder.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';

import { connectStomp, startBroker, uniq } from './harness.js';
import { connectMqtt, mqttCleanup, mqttUrl } from './mqtt-harness.js';

const N = 20;

describe('durability across a broker restart (MQTT.js, STOMP.js)', () => {
  afterEach(mqttCleanup);

  test('the will of a session connected at a crash is published once after the restart, never again', { timeout: 30000 }, async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'duplex-interop-will-'));
    try {
      const willTopic = uniq('will');
      const watcherOpts = { clientId: uniq('watcher'), clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } };
      let broker = await startBroker([], { dataDir });
      const watcher = await connectMqtt(mqttUrl(broker), watcherOpts);
      await watcher.client.subscribeAsync(willTopic, { qos: 1 });
      await watcher.end();
      await connectMqtt(mqttUrl(broker), {
        clientId: uniq('device'),
        clean: false,
        protocolVersion: 5,
        properties: { sessionExpiryInterval: 3600 },
        will: { topic: willTopic, payload: Buffer.from('device lost'), qos: 1 },
      });
      await broker.kill(); // the device was connected: its will was never sent

      broker = await startBroker([], { dataDir });
      let w = await connectMqtt(mqttUrl(broker), watcherOpts);
      const [m] = await w.waitMessages(1, (x) => x.topic === willTopic, 10000);
      assert.equal(m.payload.toString(), 'device lost');
      await w.end();
      assert.equal((await broker.stop()).code, 0);

      // Another restart: the will is not sent again. A marker published
      // now arrives, and nothing came before it.
      broker = await startBroker([], { dataDir });
      try {
        const pub = await connectMqtt(mqttUrl(broker));
        await pub.client.publishAsync(willTopic, 'marker', { qos: 1 });
        w = await connectMqtt(mqttUrl(broker), watcherOpts);
        const got = await w.waitMessages(1, (x) => x.topic === willTopic, 10000);
        assert.deepEqual(got.map((x) => x.payload.toString()), ['marker'], 'the will came again');
      } finally {
        await broker.stop();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  for (const how of ['SIGTERM', 'SIGKILL']) {
    test(`offline subscribers get everything after a ${how}`, { timeout: 30000 }, async () => {
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'duplex-interop-durable-'));
      try {
        const topic = uniq('durable');
        const clientId = uniq('js-dev');
        const mqttOpts = { clientId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } };
        // The STOMP dialects: RabbitMQ (durable:true, named by the id) and
        // ActiveMQ (client-id + activemq.subscriptionName).
        const rabbit = { connect: {}, sub: { id: uniq('rabbit'), durable: 'true', 'auto-delete': 'false', ack: 'client-individual' } };
        const amq = { connect: { 'client-id': uniq('amq') }, sub: { 'activemq.subscriptionName': 'sub', ack: 'client-individual' } };

        let broker = await startBroker([], { dataDir });
        // Subscribe, then go offline.
        const dev = await connectMqtt(mqttUrl(broker), mqttOpts);
        await dev.client.subscribeAsync(topic, { qos: 1 });
        await dev.end();
        for (const d of [rabbit, amq]) {
          const s = await connectStomp(broker.url, { connectHeaders: d.connect });
          await s.subscribe(`/topic/${topic}`, d.sub);
          await s.disconnect();
        }

        // Publish while they are away: MQTT QoS 1 and STOMP SEND with
        // receipts; every one acknowledged before the restart.
        const pub = await connectMqtt(mqttUrl(broker));
        for (let i = 0; i < N; i++) await pub.client.publishAsync(topic, `m${i}`, { qos: 1 });
        await pub.end();
        const spub = await connectStomp(broker.url);
        for (let i = 0; i < N; i++) await spub.publishWithReceipt({ destination: `/topic/${topic}`, body: `s${i}` });
        await spub.disconnect();

        if (how === 'SIGTERM') {
          const r = await broker.stop();
          assert.equal(r.code, 0, `graceful stop exit code ${r.code} signal ${r.signal}`);
        } else {
          await broker.kill();
        }
        broker = await startBroker([], { dataDir });
        try {
          const seq = (prefix) => Array.from({ length: N }, (_, i) => `${prefix}${i}`);
          const want = [...seq('m'), ...seq('s')]; // in publish order

          const back = await connectMqtt(mqttUrl(broker), mqttOpts);
          assert.equal(back.connack.sessionPresent, true, 'MQTT session not present after the restart');
          const got = await back.waitMessages(2 * N, (m) => m.topic === topic, 10000);
          assert.deepEqual(got.map((m) => m.payload.toString()), want, 'MQTT.js persistent session');

          for (const [name, d] of [['RabbitMQ', rabbit], ['ActiveMQ', amq]]) {
            const s = await connectStomp(broker.url, { connectHeaders: d.connect });
            const sub = await s.subscribe(`/topic/${topic}`, d.sub, {
              receipt: false,
              onMessage: (m) => m.ack(),
            });
            await sub.waitCount(2 * N, 10000);
            assert.deepEqual(sub.bodies(), want, `STOMP.js durable subscription, ${name} dialect`);
            await s.disconnect();
          }
        } finally {
          await broker.stop();
        }
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    });
  }
});
