// Overlapping MQTT subscriptions of one client (MQTT.js against the real
// binary): one copy per message, at the highest granted QoS, carrying the
// identifier of every matching subscription [MQTT-3.3.4-2] [MQTT-3.3.4-4];
// no-local per subscription; a shared subscription's copy stays its own;
// an MQTT 3.1.1 client gets one copy too.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { startBroker, uniq } from './harness.js';
import { connectMqtt, mqttCleanup, mqttUrl } from './mqtt-harness.js';

const T = { timeout: 10000 };
const V5 = { protocolVersion: 5 };

function subIds(pkt) {
  const v = pkt.properties?.subscriptionIdentifier;
  return (v === undefined ? [] : [].concat(v)).sort((a, b) => a - b);
}

const body = (m) => m.payload.toString();

describe('MQTT overlapping subscriptions (MQTT.js)', () => {
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

  test('v5: one PUBLISH with both subscription identifiers at the highest QoS', T, async () => {
    const sub = await connectMqtt(url, V5);
    const pub = await connectMqtt(url, V5);
    const base = uniq('overlap');
    await sub.client.subscribeAsync(`${base}/+`, { qos: 0, properties: { subscriptionIdentifier: 1 } });
    await sub.client.subscribeAsync(`${base}/x`, { qos: 2, properties: { subscriptionIdentifier: 2 } });
    await pub.client.publishAsync(`${base}/x`, 'both', { qos: 2 });
    // The marker matches the first subscription only and goes out after
    // every copy of 'both' (one outbox, in order); MQTT.js hands the QoS 2
    // copy over only after PUBREL, so wait for it too.
    await pub.client.publishAsync(`${base}/end`, 'marker', { qos: 1 });
    await sub.waitMessages(1, (m) => body(m) === 'marker');
    await sub.waitMessages(1, (m) => body(m) === 'both' && m.packet.qos === 2);
    const both = sub.messages.filter((m) => body(m) === 'both');
    assert.equal(both.length, 1, `${both.length} copies; ${sub.describe()}`);
    assert.equal(both[0].packet.qos, 2);
    assert.deepEqual(subIds(both[0].packet), [1, 2]);
    const marker = sub.messages.find((m) => body(m) === 'marker');
    assert.deepEqual(subIds(marker.packet), [1]);
    assert.equal(marker.packet.qos, 0);
  });

  test('v5: no-local drops only the own-message subscription from the copy', T, async () => {
    const self = await connectMqtt(url, V5);
    const base = uniq('overlapnl');
    await self.client.subscribeAsync(`${base}/#`, { qos: 2, nl: true, properties: { subscriptionIdentifier: 7 } });
    await self.client.subscribeAsync(`${base}/+`, { qos: 1, properties: { subscriptionIdentifier: 8 } });
    await self.client.publishAsync(`${base}/a`, 'own', { qos: 2 });
    await self.waitMessages(1, (m) => body(m) === 'own');
    const other = await connectMqtt(url, V5);
    await other.client.publishAsync(`${base}/a`, 'other', { qos: 2 });
    await self.waitMessages(1, (m) => body(m) === 'other');
    const own = self.messages.filter((m) => body(m) === 'own');
    assert.equal(own.length, 1);
    assert.deepEqual(subIds(own[0].packet), [8]);
    assert.equal(own[0].packet.qos, 1);
    const theirs = self.messages.filter((m) => body(m) === 'other');
    assert.equal(theirs.length, 1);
    assert.deepEqual(subIds(theirs[0].packet), [7, 8]);
    assert.equal(theirs[0].packet.qos, 2);
  });

  test('v5: a shared subscription gets its own copy', T, async () => {
    const sub = await connectMqtt(url, V5);
    const pub = await connectMqtt(url, V5);
    const base = uniq('overlapshare');
    await sub.client.subscribeAsync(`${base}/+`, { qos: 1, properties: { subscriptionIdentifier: 1 } });
    await sub.client.subscribeAsync(`${base}/x`, { qos: 1, properties: { subscriptionIdentifier: 2 } });
    await sub.client.subscribeAsync(`$share/g/${base}/x`, { qos: 1, properties: { subscriptionIdentifier: 3 } });
    await pub.client.publishAsync(`${base}/x`, 'm', { qos: 1 });
    await sub.waitMessages(2);
    await pub.client.publishAsync(`${base}/end`, 'marker', { qos: 1 });
    await sub.waitMessages(1, (m) => body(m) === 'marker');
    const got = sub.messages.filter((m) => body(m) === 'm').map((m) => subIds(m.packet));
    got.sort((a, b) => a[0] - b[0]);
    assert.deepEqual(got, [[1, 2], [3]]);
  });

  test('3.1.1: one copy at the highest granted QoS', T, async () => {
    const sub = await connectMqtt(url);
    const pub = await connectMqtt(url);
    const base = uniq('overlap311');
    await sub.client.subscribeAsync(`${base}/#`, { qos: 0 });
    await sub.client.subscribeAsync(`${base}/x`, { qos: 1 });
    await sub.client.subscribeAsync(`${base}/+`, { qos: 2 });
    await pub.client.publishAsync(`${base}/x`, 'three', { qos: 2 });
    await pub.client.publishAsync(`${base}/end/deep`, 'marker', { qos: 1 });
    // MQTT.js hands a QoS 2 message over only after PUBREL, so the QoS 0
    // marker can overtake it: wait for both. Copies at QoS 0 or 1 would go
    // out before the marker and be handed over on arrival.
    await sub.waitMessages(1, (m) => body(m) === 'marker');
    await sub.waitMessages(1, (m) => body(m) === 'three' && m.packet.qos === 2);
    const three = sub.messages.filter((m) => body(m) === 'three');
    assert.equal(three.length, 1, `${three.length} copies; ${sub.describe()}`);
    assert.equal(three[0].packet.qos, 2);
  });
});
