// MQTT.js over WebSocket: wills, persistent sessions, resending unacknowledged
// messages, client id takeover.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { startBroker, uniq } from './harness.js';
import {
  connectMqtt,
  mqttCleanup,
  mqttUrl,
  openRawMqtt,
  packet,
  subscribePacket,
  userProps,
} from './mqtt-harness.js';

const T = { timeout: 10000 };

describe('MQTT sessions, wills and takeover (MQTT.js)', () => {
  let broker;
  let url;
  before(async () => {
    broker = await startBroker();
    url = mqttUrl(broker);
  }, { timeout: 15000 });
  afterEach(mqttCleanup);
  after(async () => {
    await broker?.stop();
  });

  // -------------------------------------------------------------------------
  // wills

  test('v4: will is published when the socket is destroyed (no DISCONNECT); retained will for a late subscriber', T, async () => {
    const willTopic = uniq('will');
    const watcher = await connectMqtt(url);
    await watcher.client.subscribeAsync(willTopic, { qos: 1 });
    const dying = await connectMqtt(url, {
      clientId: uniq('dying'),
      will: { topic: willTopic, payload: Buffer.from('gone'), qos: 1, retain: true },
    });
    await dying.kill();
    const [m] = await watcher.waitMessages(1);
    assert.equal(m.topic, willTopic);
    assert.equal(m.payload.toString(), 'gone');
    assert.equal(m.packet.qos, 1);

    const late = await connectMqtt(url);
    await late.client.subscribeAsync(willTopic, { qos: 1 });
    const [r] = await late.waitMessages(1);
    assert.equal(r.payload.toString(), 'gone');
    assert.equal(r.packet.retain, true, 'retained will not marked retained');
  });

  test('v5: will with properties (content type, user properties) after end(true)', T, async () => {
    const willTopic = uniq('will5');
    const watcher = await connectMqtt(url, { protocolVersion: 5 });
    await watcher.client.subscribeAsync(willTopic, { qos: 1 });
    const dying = await connectMqtt(url, {
      protocolVersion: 5,
      clientId: uniq('dying5'),
      will: {
        topic: willTopic,
        payload: Buffer.from('{"state":"offline"}'),
        qos: 1,
        retain: false,
        properties: { contentType: 'application/json', userProperties: { who: 'dying5' } },
      },
    });
    // end(true): MQTT.js closes the stream without sending DISCONNECT
    await dying.client.endAsync(true);
    const [m] = await watcher.waitMessages(1);
    assert.equal(m.payload.toString(), '{"state":"offline"}');
    assert.equal(m.packet.properties?.contentType, 'application/json');
    assert.deepEqual(userProps(m.packet), { who: 'dying5' });
  });

  for (const version of [4, 5]) {
    test(`v${version}: no will after a clean end() (DISCONNECT); a marker proves nothing else arrived`, T, async () => {
      const willTopic = uniq('nowill');
      const watcher = await connectMqtt(url, { protocolVersion: version });
      await watcher.client.subscribeAsync(willTopic, { qos: 1 });
      const polite = await connectMqtt(url, {
        protocolVersion: version,
        clientId: uniq('polite'),
        will: { topic: willTopic, payload: Buffer.from('should not be sent'), qos: 1, retain: false },
      });
      await polite.end(); // DISCONNECT, then the server closes the socket
      const other = await connectMqtt(url, { protocolVersion: version });
      await other.client.publishAsync(willTopic, 'marker', { qos: 1 });
      await watcher.waitMessages(1, (m) => m.payload.toString() === 'marker');
      assert.deepEqual(watcher.messages.map((m) => m.payload.toString()), ['marker']);
    });
  }

  test('v5: DISCONNECT with reason 0x04 (disconnect with will) publishes the will', T, async () => {
    const willTopic = uniq('will04');
    const watcher = await connectMqtt(url, { protocolVersion: 5 });
    await watcher.client.subscribeAsync(willTopic, { qos: 1 });
    const c = await connectMqtt(url, {
      protocolVersion: 5,
      clientId: uniq('w04'),
      will: { topic: willTopic, payload: Buffer.from('asked for it'), qos: 0, retain: false },
    });
    await c.client.endAsync(false, { reasonCode: 0x04 });
    const [m] = await watcher.waitMessages(1);
    assert.equal(m.payload.toString(), 'asked for it');
  });

  test('v5: will delay: published after the delay; not at all when the session resumes within it', T, async () => {
    const base = uniq('willdelay');
    const watcher = await connectMqtt(url, { protocolVersion: 5 });
    await watcher.client.subscribeAsync(`${base}/#`, { qos: 1 });
    const opts = (clientId, name, delay) => ({
      protocolVersion: 5,
      clientId,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
      will: { topic: `${base}/${name}`, payload: Buffer.from(name), qos: 1, retain: false, properties: { willDelayInterval: delay } },
    });
    const idGone = uniq('gone');
    const idBack = uniq('back');
    const gone = await connectMqtt(url, opts(idGone, 'gone', 1));
    const back = await connectMqtt(url, opts(idBack, 'back', 5));
    const killed = Date.now();
    await Promise.all([gone.kill(), back.kill()]);
    const resumed = await connectMqtt(url, opts(idBack, 'back', 5));
    assert.equal(resumed.connack.sessionPresent, true);
    const [m] = await watcher.waitMessages(1, (x) => x.topic === `${base}/gone`, 4000);
    const after = Date.now() - killed;
    assert.ok(after >= 900, `delayed will arrived after only ${after} ms (delay 1 s)`);
    assert.equal(m.payload.toString(), 'gone');
    // the resumed session's will must not come: end it cleanly, then a marker
    await resumed.end();
    const pub = await connectMqtt(url, { protocolVersion: 5 });
    await pub.client.publishAsync(`${base}/marker`, 'marker', { qos: 1 });
    await watcher.waitMessages(1, (x) => x.topic === `${base}/marker`);
    assert.deepEqual(watcher.messages.map((x) => x.topic.slice(base.length + 1)), ['gone', 'marker']);
  });

  test('will on keep-alive timeout (raw client, keep alive 1 s, then silent)', T, async () => {
    const willTopic = uniq('willka');
    const watcher = await connectMqtt(url);
    await watcher.client.subscribeAsync(willTopic, { qos: 1 });
    const raw = await openRawMqtt(url);
    await raw.connect({ clientId: uniq('silent'), keepAlive: 1, will: { topic: willTopic, payload: 'timed out', qos: 1 } });
    const started = Date.now();
    // the server must close within 1.5 x keep alive [MQTT-3.1.2-24] (+ slack)
    await raw.waitClose(5000);
    const [m] = await watcher.waitMessages(1, undefined, 3000);
    assert.equal(m.payload.toString(), 'timed out');
    const took = Date.now() - started;
    assert.ok(took >= 900, `closed after only ${took} ms`);
  });

  // -------------------------------------------------------------------------
  // persistent sessions

  for (const version of [4, 5]) {
    test(`v${version}: persistent session keeps the subscription and queues QoS 1/2 messages while offline`, T, async () => {
      const clientId = uniq(`persist${version}`);
      const topic = uniq('offline');
      const opts = { protocolVersion: version, clientId, clean: false };
      if (version === 5) opts.properties = { sessionExpiryInterval: 300 };
      const first = await connectMqtt(url, opts);
      assert.equal(first.connack.sessionPresent, false);
      await first.client.subscribeAsync(topic, { qos: 2 });
      await first.end();

      const pub = await connectMqtt(url, { protocolVersion: version });
      for (let i = 0; i < 5; i++) await pub.client.publishAsync(topic, `q1-${i}`, { qos: 1 });
      for (let i = 0; i < 3; i++) await pub.client.publishAsync(topic, `q2-${i}`, { qos: 2 });

      const again = await connectMqtt(url, opts);
      assert.equal(again.connack.sessionPresent, true, 'session present not set on resume');
      await again.waitMessages(8);
      assert.deepEqual(again.messages.map((m) => m.payload.toString()),
        ['q1-0', 'q1-1', 'q1-2', 'q1-3', 'q1-4', 'q2-0', 'q2-1', 'q2-2']);
      assert.deepEqual(again.messages.map((m) => m.packet.qos), [1, 1, 1, 1, 1, 2, 2, 2]);
      // the subscription is still there without SUBSCRIBE
      await pub.client.publishAsync(topic, 'live', { qos: 1 });
      await again.waitMessages(9);
      assert.equal(again.messages[8].payload.toString(), 'live');
    });
  }

  test('v5: clean start (clean: true) discards the stored session', T, async () => {
    const clientId = uniq('discard');
    const topic = uniq('discard');
    const first = await connectMqtt(url, { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 300 } });
    await first.client.subscribeAsync(topic, { qos: 1 });
    await first.end();
    const pub = await connectMqtt(url, { protocolVersion: 5 });
    await pub.client.publishAsync(topic, 'lost', { qos: 1 });
    const fresh = await connectMqtt(url, { protocolVersion: 5, clientId, clean: true });
    assert.equal(fresh.connack.sessionPresent, false);
    // prove nothing was delivered: subscribe to a marker topic and wait for it
    await fresh.client.subscribeAsync(`${topic}/marker`, { qos: 1 });
    await pub.client.publishAsync(topic, 'after', { qos: 1 });
    await pub.client.publishAsync(`${topic}/marker`, 'marker', { qos: 1 });
    await fresh.waitMessages(1);
    assert.deepEqual(fresh.messages.map((m) => m.topic), [`${topic}/marker`]);
  });

  test('v5: session expiry 0 with clean: false ends the session at disconnect', T, async () => {
    const clientId = uniq('exp0');
    const topic = uniq('exp0');
    const first = await connectMqtt(url, { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 0 } });
    await first.client.subscribeAsync(topic, { qos: 1 });
    await first.end();
    const again = await connectMqtt(url, { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 0 } });
    assert.equal(again.connack.sessionPresent, false);
  });

  test('unacknowledged QoS 1 delivery is resent with DUP and the same packet id after reconnect (raw)', T, async () => {
    const clientId = uniq('redeliver');
    const topic = uniq('redeliver');
    const raw = await openRawMqtt(url);
    const ack1 = await raw.connect({ clientId, clean: false });
    assert.equal(ack1.sessionPresent, false);
    await raw.send(subscribePacket(1, topic, { qos: 1 }));
    const suback = await raw.waitPacket('SUBACK');
    assert.equal(suback.body[2], 1, 'granted QoS');
    const pub = await connectMqtt(url);
    await pub.client.publishAsync(topic, 'ack me', { qos: 1 });
    const p1 = await raw.waitPacket('PUBLISH');
    assert.equal(p1.qos, 1);
    assert.equal(p1.dup, false);
    // no PUBACK: drop the connection
    raw.ws.terminate();
    await raw.waitClose();

    const raw2 = await openRawMqtt(url);
    const ack2 = await raw2.connect({ clientId, clean: false });
    assert.equal(ack2.sessionPresent, true);
    const p2 = await raw2.waitPacket('PUBLISH');
    assert.equal(p2.dup, true, 'resent PUBLISH without DUP [MQTT-3.3.1-1]');
    assert.equal(p2.id, p1.id, 'resent with another packet id');
    assert.equal(p2.payload.toString(), 'ack me');
    await raw2.send(packet(0x40, Buffer.from([p2.id >> 8, p2.id & 0xff]))); // PUBACK
    // acknowledged: after another reconnect it is not sent again
    await raw2.send(Buffer.from([0xe0, 0x00])); // DISCONNECT
    await raw2.waitClose();
    const again = await connectMqtt(url, { clientId, clean: false });
    assert.equal(again.connack.sessionPresent, true);
    await pub.client.publishAsync(topic, 'marker', { qos: 1 });
    await again.waitMessages(1);
    assert.deepEqual(again.messages.map((m) => m.payload.toString()), ['marker']);
  });

  // -------------------------------------------------------------------------
  // takeover

  test('v5: a second connection with the same client id takes over; the first gets DISCONNECT 0x8E', T, async () => {
    const clientId = uniq('takeover5');
    const topic = uniq('takeover5');
    const first = await connectMqtt(url, { protocolVersion: 5, clientId });
    const second = await connectMqtt(url, { protocolVersion: 5, clientId });
    await first.waitClosed();
    assert.deepEqual(first.disconnects.map((d) => d.reasonCode), [0x8e], `first got ${first.describe()}`);
    // the second one works
    await second.client.subscribeAsync(topic, { qos: 1 });
    await second.client.publishAsync(topic, 'still here', { qos: 1 });
    const [m] = await second.waitMessages(1);
    assert.equal(m.payload.toString(), 'still here');
    assert.equal(second.closed, false);
  });

  test('v4: takeover closes the first connection; a persistent session moves to the new one', T, async () => {
    const clientId = uniq('takeover4');
    const topic = uniq('takeover4');
    const first = await connectMqtt(url, { clientId, clean: false });
    await first.client.subscribeAsync(topic, { qos: 1 });
    const second = await connectMqtt(url, { clientId, clean: false });
    assert.equal(second.connack.sessionPresent, true);
    await first.waitClosed();
    const pub = await connectMqtt(url);
    await pub.client.publishAsync(topic, 'to the new one', { qos: 1 });
    const [m] = await second.waitMessages(1);
    assert.equal(m.payload.toString(), 'to the new one');
    assert.equal(first.messages.length, 0);
  });

  test('takeover publishes the first connection\'s will (no will delay)', T, async () => {
    const clientId = uniq('takewill');
    const willTopic = uniq('takewill');
    const watcher = await connectMqtt(url);
    await watcher.client.subscribeAsync(willTopic, { qos: 1 });
    const first = await connectMqtt(url, { protocolVersion: 5, clientId, will: { topic: willTopic, payload: Buffer.from('replaced'), qos: 1, retain: false } });
    await connectMqtt(url, { protocolVersion: 5, clientId });
    await first.waitClosed();
    const [m] = await watcher.waitMessages(1);
    assert.equal(m.payload.toString(), 'replaced');
  });
});
