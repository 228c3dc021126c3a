// MQTT 5 features with MQTT.js (protocolVersion 5): CONNACK properties,
// topic aliases, request/response, message expiry, subscription
// identifiers, no-local, retain as published, user properties, content type.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { startBroker, uniq, waitFor } from './harness.js';
import {
  connectMqtt,
  mqttCleanup,
  mqttUrl,
  openRawMqtt,
  PINGREQ,
  publishPacket,
  subscribePacket,
  u16,
  userProps,
} from './mqtt-harness.js';

const T = { timeout: 10000 };
const V5 = { protocolVersion: 5 };

function subIds(pkt) {
  const v = pkt.properties?.subscriptionIdentifier;
  return v === undefined ? [] : [].concat(v);
}

describe('MQTT 5 features (MQTT.js)', () => {
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

  test('CONNACK carries the server limits; an empty client id gets an assigned one', T, async () => {
    const c = await connectMqtt(url, { ...V5, clientId: '' });
    const p = c.connack.properties ?? {};
    assert.equal(p.topicAliasMaximum, 64, `CONNACK properties ${JSON.stringify(p)}`);
    assert.ok(p.maximumPacketSize >= 1 << 20, `maximumPacketSize ${p.maximumPacketSize}`);
    assert.ok(p.receiveMaximum === undefined || p.receiveMaximum > 0);
    assert.ok(p.assignedClientIdentifier, `no Assigned Client Identifier: ${JSON.stringify(p)}`);
  });

  // -------------------------------------------------------------------------
  // topic aliases

  test('topic alias: set with the topic, then used with an empty topic, then remapped', T, async () => {
    const sub = await connectMqtt(url, V5);
    const pub = await connectMqtt(url, V5);
    const base = uniq('alias');
    await sub.client.subscribeAsync(`${base}/#`, { qos: 1 });
    await pub.client.publishAsync(`${base}/one`, 'a1', { qos: 1, properties: { topicAlias: 1 } });
    await pub.client.publishAsync('', 'a2', { qos: 1, properties: { topicAlias: 1 } });
    await pub.client.publishAsync(`${base}/two`, 'b1', { qos: 1, properties: { topicAlias: 1 } });
    await pub.client.publishAsync('', 'b2', { qos: 0, properties: { topicAlias: 1 } });
    await pub.client.publishAsync(`${base}/one`, 'marker', { qos: 1 });
    await sub.waitMessages(5);
    assert.deepEqual(sub.messages.map((m) => `${m.topic.slice(base.length + 1)}=${m.payload}`),
      ['one=a1', 'one=a2', 'two=b1', 'two=b2', 'one=marker']);
    // the server uses no outbound aliases: every delivery names its topic
    assert.ok(sub.messages.every((m) => m.packet.properties?.topicAlias === undefined));
  });

  test('topic alias: MQTT.js autoUseTopicAlias', T, async () => {
    const sub = await connectMqtt(url, V5);
    const pub = await connectMqtt(url, { ...V5, autoAssignTopicAlias: true });
    const topic = uniq('autoalias');
    await sub.client.subscribeAsync(topic, { qos: 1 });
    for (let i = 0; i < 5; i++) await pub.client.publishAsync(topic, `x${i}`, { qos: 1 });
    await sub.waitMessages(5);
    assert.deepEqual(sub.messages.map((m) => [m.topic, m.payload.toString()]), Array.from({ length: 5 }, (_, i) => [topic, `x${i}`]));
  });

  for (const [what, props, topic, code] of [
    ['above Topic Alias Maximum', Buffer.concat([Buffer.from([0x23]), u16(65)]), 'some/topic', 0x94],
    ['alias 0', Buffer.concat([Buffer.from([0x23]), u16(0)]), 'some/topic', 0x94],
    ['unknown alias with an empty topic', Buffer.concat([Buffer.from([0x23]), u16(9)]), '', 0x82],
  ]) {
    test(`topic alias ${what} → DISCONNECT 0x${code.toString(16)} (raw)`, T, async () => {
      const raw = await openRawMqtt(url);
      await raw.connect({ version: 5, clientId: uniq('badalias') });
      await raw.send(publishPacket(topic, 'x', { version: 5, props }));
      const d = await raw.waitPacket('DISCONNECT');
      assert.equal(d.reasonCode, code, raw.describe());
      await raw.waitClose();
    });
  }

  // -------------------------------------------------------------------------
  // request / response

  test('request/response: responseTopic and correlationData round trip', T, async () => {
    const requester = await connectMqtt(url, V5);
    const responder = await connectMqtt(url, V5);
    const reqTopic = uniq('req');
    const respTopic = `${uniq('resp')}/for/requester`;
    await responder.client.subscribeAsync(reqTopic, { qos: 1 });
    responder.client.on('message', (topic, payload, pkt) => {
      if (topic !== reqTopic) return;
      responder.client.publish(pkt.properties.responseTopic, Buffer.concat([Buffer.from('re: '), payload]), {
        qos: 1,
        properties: { correlationData: pkt.properties.correlationData },
      });
    });
    await requester.client.subscribeAsync(respTopic, { qos: 1 });
    const corr = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x7f]);
    await requester.client.publishAsync(reqTopic, 'ping', {
      qos: 1,
      properties: { responseTopic: respTopic, correlationData: corr },
    });
    const [req] = await responder.waitMessages(1);
    assert.equal(req.packet.properties.responseTopic, respTopic);
    assert.ok(Buffer.from(req.packet.properties.correlationData).equals(corr));
    const [resp] = await requester.waitMessages(1);
    assert.equal(resp.topic, respTopic);
    assert.equal(resp.payload.toString(), 're: ping');
    assert.ok(Buffer.from(resp.packet.properties.correlationData).equals(corr), 'correlation data changed');
  });

  // -------------------------------------------------------------------------
  // message expiry

  test('message expiry: expired messages are dropped (queued and retained), the rest carry the decremented interval', T, async () => {
    const clientId = uniq('expiry');
    const base = uniq('expiry');
    const sessOpts = { ...V5, clientId, clean: false, properties: { sessionExpiryInterval: 300 } };
    const offline = await connectMqtt(url, sessOpts);
    await offline.client.subscribeAsync(`${base}/q`, { qos: 1 });
    await offline.end();

    const pub = await connectMqtt(url, V5);
    await pub.client.publishAsync(`${base}/q`, 'short', { qos: 1, properties: { messageExpiryInterval: 1 } });
    await pub.client.publishAsync(`${base}/q`, 'long', { qos: 1, properties: { messageExpiryInterval: 60 } });
    await pub.client.publishAsync(`${base}/r/short`, 'rshort', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } });
    await pub.client.publishAsync(`${base}/r/long`, 'rlong', { qos: 1, retain: true, properties: { messageExpiryInterval: 60 } });
    const published = Date.now();

    // A live subscriber sees the retained ones right away with (about) the
    // full interval.
    const early = await connectMqtt(url, V5);
    await early.client.subscribeAsync(`${base}/r/+`, { qos: 1 });
    await early.waitMessages(2);
    const earlyLong = early.on(`${base}/r/long`)[0];
    assert.ok(earlyLong.packet.properties.messageExpiryInterval >= 59, `early interval ${earlyLong.packet.properties.messageExpiryInterval}`);

    // Not synchronization: the point of this test is that time passes.
    // Wait until the 1 s messages are expired (published is after their
    // PUBACK, so the broker's clock started earlier).
    await waitFor(() => Date.now() - published >= 1100, 3000, '1.1 s to pass', { interval: 20 });

    const again = await connectMqtt(url, sessOpts);
    assert.equal(again.connack.sessionPresent, true);
    await again.client.subscribeAsync(`${base}/r/+`, { qos: 1 });
    await pub.client.publishAsync(`${base}/q`, 'marker', { qos: 1 });
    await again.waitMessages(1, (m) => m.payload.toString() === 'marker');
    const got = again.messages.map((m) => m.payload.toString()).sort();
    assert.deepEqual(got, ['long', 'marker', 'rlong'], `expired messages delivered: ${got}`);
    for (const m of again.messages.filter((x) => x.payload.toString() !== 'marker')) {
      const left = m.packet.properties?.messageExpiryInterval;
      assert.ok(left !== undefined && left <= 59 && left >= 50, `${m.payload}: remaining expiry ${left}, want 50..59 (60 - elapsed, rounded up)`);
    }
    assert.equal(again.messages.find((m) => m.payload.toString() === 'marker').packet.properties?.messageExpiryInterval, undefined);
  });

  // -------------------------------------------------------------------------
  // subscriptions

  test('subscription identifier appears on delivery; overlapping subscriptions carry their ids', T, async () => {
    const sub = await connectMqtt(url, V5);
    const pub = await connectMqtt(url, V5);
    const base = uniq('subid');
    await sub.client.subscribeAsync(`${base}/a/#`, { qos: 1, properties: { subscriptionIdentifier: 42 } });
    await sub.client.subscribeAsync(`${base}/+/b`, { qos: 1, properties: { subscriptionIdentifier: 268435455 } });
    await sub.client.subscribeAsync(`${base}/plain`, { qos: 1 });
    await pub.client.publishAsync(`${base}/a/x`, 'only42', { qos: 1 });
    await pub.client.publishAsync(`${base}/plain`, 'noid', { qos: 1 });
    await pub.client.publishAsync(`${base}/a/b`, 'both', { qos: 1 });
    await pub.client.publishAsync(`${base}/a/x`, 'marker', { qos: 1 });
    await sub.waitMessages(1, (m) => m.payload.toString() === 'marker');
    const only = sub.messages.filter((m) => m.payload.toString() === 'only42');
    assert.equal(only.length, 1);
    assert.deepEqual(subIds(only[0].packet), [42]);
    const noid = sub.messages.filter((m) => m.payload.toString() === 'noid');
    assert.equal(noid.length, 1);
    assert.deepEqual(subIds(noid[0].packet), []);
    // one copy with both ids, or one copy per subscription with its own id
    const both = sub.messages.filter((m) => m.payload.toString() === 'both');
    assert.ok(both.length === 1 || both.length === 2, `${both.length} copies`);
    assert.deepEqual(both.flatMap((m) => subIds(m.packet)).sort((a, b) => a - b), [42, 268435455]);
  });

  test('no-local: own publishes are not delivered to a nl subscription; others are', T, async () => {
    const self = await connectMqtt(url, V5);
    const other = await connectMqtt(url, V5);
    const topic = uniq('nolocal');
    await self.client.subscribeAsync(topic, { qos: 1, nl: true });
    await other.client.subscribeAsync(topic, { qos: 1 });
    await self.client.publishAsync(topic, 'mine', { qos: 1 });
    await other.client.publishAsync(topic, 'theirs', { qos: 1 });
    await self.waitMessages(1);
    await other.waitMessages(2);
    assert.deepEqual(self.messages.map((m) => m.payload.toString()), ['theirs']);
  });

  test('retain as published: rap subscriber sees RETAIN on live messages, a plain one does not', T, async () => {
    const rap = await connectMqtt(url, V5);
    const plain = await connectMqtt(url, V5);
    const pub = await connectMqtt(url, V5);
    const topic = uniq('rap');
    await rap.client.subscribeAsync(topic, { qos: 1, rap: true });
    await plain.client.subscribeAsync(topic, { qos: 1 });
    await pub.client.publishAsync(topic, 'r', { qos: 1, retain: true });
    await pub.client.publishAsync(topic, 'n', { qos: 1 });
    await rap.waitMessages(2);
    await plain.waitMessages(2);
    assert.deepEqual(rap.messages.map((m) => [m.payload.toString(), m.packet.retain]), [['r', true], ['n', false]]);
    assert.deepEqual(plain.messages.map((m) => [m.payload.toString(), m.packet.retain]), [['r', false], ['n', false]]);
    await pub.client.publishAsync(topic, '', { qos: 1, retain: true }); // clear
  });

  test('retain handling rh=1: retained sent for a new subscription only; rh=0 resubscribe sends it again', T, async () => {
    const pub = await connectMqtt(url, V5);
    const sub = await connectMqtt(url, V5);
    const topic = uniq('rh1');
    await pub.client.publishAsync(topic, 'ret', { qos: 1, retain: true });
    await sub.client.subscribeAsync(topic, { qos: 1, rh: 1 });
    await sub.waitMessages(1);
    await sub.client.subscribeAsync(topic, { qos: 1, rh: 1 }); // existing: nothing
    await sub.client.subscribeAsync(topic, { qos: 1, rh: 0 }); // always
    await pub.client.publishAsync(topic, 'marker', { qos: 1 });
    await sub.waitMessages(1, (m) => m.payload.toString() === 'marker');
    assert.deepEqual(sub.messages.map((m) => [m.payload.toString(), m.packet.retain]), [['ret', true], ['ret', true], ['marker', false]]);
    await pub.client.publishAsync(topic, '', { qos: 1, retain: true });
  });

  test('UNSUBSCRIBE: UNSUBACK 0x00 / 0x11 (no subscription existed); no more messages', T, async () => {
    const sub = await connectMqtt(url, V5);
    const pub = await connectMqtt(url, V5);
    const topic = uniq('unsub');
    await sub.client.subscribeAsync([topic, `${topic}/marker`], { qos: 1 });
    const ack = await sub.client.unsubscribeAsync([topic, `${topic}/never`]);
    assert.deepEqual(ack.granted ?? ack.reasonCodes, [0x00, 0x11], JSON.stringify(ack));
    await pub.client.publishAsync(topic, 'gone', { qos: 1 });
    await pub.client.publishAsync(`${topic}/marker`, 'marker', { qos: 1 });
    await sub.waitMessages(1);
    assert.deepEqual(sub.messages.map((m) => m.payload.toString()), ['marker']);
  });

  test('SUBSCRIBE with an invalid filter (raw): SUBACK 0x8F, or DISCONNECT and close', T, async () => {
    // MQTT.js refuses invalid filters itself, so this one is hand-written.
    // A misplaced '#' may be answered either way; Duplex treats it as a
    // protocol error (DISCONNECT 0x8F, WebSocket 1002).
    const raw = await openRawMqtt(url);
    await raw.connect({ version: 5, clientId: uniq('badfilter') });
    await raw.send(subscribePacket(3, 'bad/#/filter', { version: 5, qos: 1 }));
    const ack = await raw.waitPacket((p) => p.name === 'SUBACK' || p.name === 'DISCONNECT');
    if (ack.name === 'SUBACK') {
      assert.equal(ack.id, 3);
      assert.equal(ack.body[ack.body.length - 1], 0x8f, `SUBACK body ${ack.body.toString('hex')}`);
      await raw.send(PINGREQ);
      await raw.waitPacket('PINGRESP');
      assert.equal(raw.closed, null);
    } else {
      assert.ok([0x81, 0x82, 0x8f].includes(ack.reasonCode), raw.describe());
      const closed = await raw.waitClose();
      assert.equal(closed.code, 1002, raw.describe());
    }
  });

  // -------------------------------------------------------------------------
  // properties

  test('user properties round trip (order, repeated keys, UTF-8) with content type and payload format', T, async () => {
    const sub = await connectMqtt(url, V5);
    const pub = await connectMqtt(url, V5);
    const topic = uniq('userprops');
    await sub.client.subscribeAsync(topic, { qos: 2 });
    const up = { region: 'eu-west', tag: ['a', 'b', 'a'], 'ключ': 'значение ✓', empty: '' };
    await pub.client.publishAsync(topic, '{"t":21.5}', {
      qos: 2,
      properties: { userProperties: up, contentType: 'application/json; charset=utf-8', payloadFormatIndicator: true },
    });
    const [m] = await sub.waitMessages(1);
    assert.deepEqual(userProps(m.packet), up);
    assert.equal(m.packet.properties.contentType, 'application/json; charset=utf-8');
    assert.equal(m.packet.properties.payloadFormatIndicator, true);
    assert.equal(m.payload.toString(), '{"t":21.5}');
  });

  test('a 3.1.1 subscriber gets the payload of a v5 publish without properties', T, async () => {
    const sub = await connectMqtt(url, { protocolVersion: 4 });
    const pub = await connectMqtt(url, V5);
    const topic = uniq('v5to4');
    await sub.client.subscribeAsync(topic, { qos: 1 });
    await pub.client.publishAsync(topic, 'plain', {
      qos: 1,
      properties: { userProperties: { k: 'v' }, contentType: 'text/plain', messageExpiryInterval: 30 },
    });
    const [m] = await sub.waitMessages(1);
    assert.equal(m.payload.toString(), 'plain');
    assert.equal(m.packet.properties, undefined);
  });

  test('Receive Maximum 1: the server keeps at most one QoS 1 delivery unacknowledged', T, async () => {
    // MQTT.js acknowledges automatically, so all arrive; with
    // receiveMaximum 1 they have to come one at a time and in order
    const sub = await connectMqtt(url, { ...V5, properties: { receiveMaximum: 1 } });
    const pub = await connectMqtt(url, V5);
    const topic = uniq('recvmax');
    await sub.client.subscribeAsync(topic, { qos: 1 });
    await Promise.all(Array.from({ length: 20 }, (_, i) => pub.client.publishAsync(topic, `r${i}`, { qos: 1 })));
    await sub.waitMessages(20);
    assert.deepEqual(sub.messages.map((m) => m.payload.toString()), Array.from({ length: 20 }, (_, i) => `r${i}`));
  });

  test('Maximum Packet Size: a message larger than the client\'s limit is skipped for that client', T, async () => {
    const small = await connectMqtt(url, { ...V5, properties: { maximumPacketSize: 1024 } });
    const pub = await connectMqtt(url, V5);
    const topic = uniq('maxpkt');
    await small.client.subscribeAsync(topic, { qos: 1 });
    await pub.client.publishAsync(topic, Buffer.alloc(4096, 1), { qos: 1 });
    await pub.client.publishAsync(topic, 'small marker', { qos: 1 });
    await small.waitMessages(1);
    assert.deepEqual(small.messages.map((m) => m.payload.toString()), ['small marker']);
    assert.equal(small.closed, false);
  });
});
