// MQTT.js over WebSocket: QoS 0/1/2 round trips, exactly once, retained
// messages, shared subscriptions, large payloads, many topics, MQTT 3.1 and
// MQTT over plain TCP (-mqtt-tcp-addr on a port picked here).

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { startBroker, uniq, waitFor } from './harness.js';
import {
  connectMqtt,
  freePort,
  mqttCleanup,
  mqttUrl,
  openRawMqtt,
  packet,
  patternBytes,
  publishPacket,
} from './mqtt-harness.js';

const T = { timeout: 10000 };

describe('MQTT messaging (MQTT.js)', () => {
  let broker;
  let url;
  let tcpUrl;
  before(async () => {
    // MQTT over plain TCP too: the broker prints no port for
    // -mqtt-tcp-addr, so pick a free one; another process may take it in
    // between, so retry a few times
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      try {
        broker = await startBroker(['-mqtt-tcp-addr', `127.0.0.1:${port}`]);
        tcpUrl = `mqtt://127.0.0.1:${port}`;
        break;
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
    url = mqttUrl(broker);
  }, { timeout: 30000 });
  afterEach(mqttCleanup);
  after(async () => {
    await broker?.stop();
  });

  for (const version of [4, 5]) {
    for (const qos of [0, 1, 2]) {
      test(`v${version}: QoS ${qos} publish reaches a QoS ${qos} subscriber with QoS ${qos}`, T, async () => {
        const sub = await connectMqtt(url, { protocolVersion: version });
        const pub = await connectMqtt(url, { protocolVersion: version });
        const topic = uniq(`qos${qos}`);
        const granted = await sub.client.subscribeAsync(topic, { qos });
        assert.equal(granted[0].qos, qos, `granted ${JSON.stringify(granted)}`);
        await pub.client.publishAsync(topic, `hello qos ${qos}`, { qos });
        const [m] = await sub.waitMessages(1);
        assert.equal(m.topic, topic);
        assert.equal(m.payload.toString(), `hello qos ${qos}`);
        assert.equal(m.packet.qos, qos);
        assert.equal(m.packet.retain, false);
        assert.equal(m.packet.dup, false);
      });
    }
  }

  test('QoS is the minimum of publish and subscription QoS', T, async () => {
    const sub = await connectMqtt(url);
    const pub = await connectMqtt(url);
    const base = uniq('minqos');
    await sub.client.subscribeAsync({ [`${base}/s1`]: { qos: 1 }, [`${base}/s0`]: { qos: 0 }, [`${base}/s2`]: { qos: 2 } });
    await pub.client.publishAsync(`${base}/s1`, 'a', { qos: 2 });
    await pub.client.publishAsync(`${base}/s0`, 'b', { qos: 2 });
    await pub.client.publishAsync(`${base}/s2`, 'c', { qos: 1 });
    await sub.waitMessages(3);
    const qosOf = (t) => sub.on(`${base}/${t}`)[0].packet.qos;
    assert.equal(qosOf('s1'), 1);
    assert.equal(qosOf('s0'), 0);
    assert.equal(qosOf('s2'), 1);
  });

  test('QoS 2: 50 messages each delivered exactly once, in order', T, async () => {
    const sub = await connectMqtt(url, { protocolVersion: 5 });
    const pub = await connectMqtt(url, { protocolVersion: 5 });
    const topic = uniq('exactly');
    await sub.client.subscribeAsync(topic, { qos: 2 });
    await Promise.all(Array.from({ length: 50 }, (_, i) => pub.client.publishAsync(topic, `m${i}`, { qos: 2 })));
    // a marker published after all 50 were PUBCOMPed: once it arrived, any
    // duplicate of the earlier ones would have arrived too
    await pub.client.publishAsync(topic, 'marker', { qos: 2 });
    await sub.waitMessages(1, (m) => m.payload.toString() === 'marker');
    const bodies = sub.messages.map((m) => m.payload.toString());
    assert.deepEqual(bodies, [...Array.from({ length: 50 }, (_, i) => `m${i}`), 'marker']);
    assert.ok(sub.messages.every((m) => m.packet.qos === 2));
  });

  test('QoS 2: a PUBLISH resent with DUP before PUBREL is delivered once (raw publisher)', T, async () => {
    const sub = await connectMqtt(url);
    const topic = uniq('dup2');
    await sub.client.subscribeAsync(topic, { qos: 2 });
    const raw = await openRawMqtt(url);
    await raw.connect({ clientId: uniq('rawpub') });
    const pkt = publishPacket(topic, 'once', { qos: 2, id: 7 });
    await raw.send(pkt);
    await raw.waitPacket('PUBREC');
    const dup = Buffer.from(pkt);
    dup[0] |= 0x08; // DUP
    await raw.send(dup);
    await waitFor2(() => raw.packets.filter((p) => p.name === 'PUBREC').length === 2, raw);
    await raw.send(packet(0x62, Buffer.from([0, 7]))); // PUBREL id 7
    const comp = await raw.waitPacket('PUBCOMP');
    assert.deepEqual([...comp.body.subarray(0, 2)], [0, 7]);
    // the same id is free again: a new message with id 7 is a new message
    await raw.send(publishPacket(topic, 'marker', { qos: 1, id: 7 }));
    await raw.waitPacket('PUBACK');
    await sub.waitMessages(1, (m) => m.payload.toString() === 'marker');
    assert.deepEqual(sub.messages.map((m) => m.payload.toString()), ['once', 'marker']);
  });

  // -------------------------------------------------------------------------
  // retained

  test('retained: late subscriber gets it with the retain flag; a live subscriber without', T, async () => {
    const live = await connectMqtt(url);
    const pub = await connectMqtt(url);
    const topic = uniq('ret');
    await live.client.subscribeAsync(topic, { qos: 1 });
    await pub.client.publishAsync(topic, 'kept', { qos: 1, retain: true });
    const [lm] = await live.waitMessages(1);
    assert.equal(lm.packet.retain, false, 'a message to an existing subscription must not carry RETAIN [MQTT-3.3.1-9]');

    const late = await connectMqtt(url);
    await late.client.subscribeAsync(topic, { qos: 1 });
    const [m] = await late.waitMessages(1);
    assert.equal(m.payload.toString(), 'kept');
    assert.equal(m.packet.retain, true);
    assert.equal(m.packet.qos, 1);
  });

  test('retained: a new retained message replaces the old one (wildcard subscriber sees only the latest)', T, async () => {
    const pub = await connectMqtt(url);
    const base = uniq('retrep');
    await pub.client.publishAsync(`${base}/x`, 'v1', { qos: 1, retain: true });
    await pub.client.publishAsync(`${base}/x`, 'v2', { qos: 1, retain: true });
    await pub.client.publishAsync(`${base}/y`, 'y1', { qos: 1, retain: true });
    const late = await connectMqtt(url, { protocolVersion: 5 });
    await late.client.subscribeAsync(`${base}/#`, { qos: 1 });
    await late.waitMessages(2);
    await pub.client.publishAsync(`${base}/marker`, 'marker', { qos: 1 });
    await late.waitMessages(1, (m) => m.topic === `${base}/marker`);
    const got = late.messages.map((m) => `${m.topic.slice(base.length + 1)}=${m.payload}:${m.packet.retain}`).sort();
    assert.deepEqual(got, ['marker=marker:false', 'x=v2:true', 'y=y1:true']);
  });

  test('retained: an empty retained payload clears it; a later subscriber gets only the marker', T, async () => {
    const pub = await connectMqtt(url);
    const topic = uniq('retclr');
    await pub.client.publishAsync(topic, 'soon gone', { qos: 1, retain: true });
    const check = await connectMqtt(url);
    await check.client.subscribeAsync(topic, { qos: 1 });
    await check.waitMessages(1);
    await pub.client.publishAsync(topic, '', { qos: 1, retain: true });
    const late = await connectMqtt(url);
    await late.client.subscribeAsync(topic, { qos: 1 });
    await pub.client.publishAsync(topic, 'marker', { qos: 1 });
    await late.waitMessages(1, (m) => m.payload.toString() === 'marker');
    assert.deepEqual(late.messages.map((m) => [m.payload.toString(), m.packet.retain]), [['marker', false]]);
  });

  test('retained with QoS 0 and retain handling rh=2 (v5: no retained on subscribe)', T, async () => {
    const pub = await connectMqtt(url, { protocolVersion: 5 });
    const topic = uniq('rh');
    await pub.client.publishAsync(topic, 'r0', { qos: 0, retain: true });
    // wait until it is stored: a plain late subscriber sees it
    const probe = await connectMqtt(url, { protocolVersion: 5 });
    await probe.client.subscribeAsync(topic, { qos: 0 });
    await probe.waitMessages(1);
    assert.equal(probe.messages[0].packet.retain, true);

    const rh2 = await connectMqtt(url, { protocolVersion: 5 });
    await rh2.client.subscribeAsync(topic, { qos: 1, rh: 2 });
    await pub.client.publishAsync(topic, 'marker', { qos: 1 });
    await rh2.waitMessages(1, (m) => m.payload.toString() === 'marker');
    assert.deepEqual(rh2.messages.map((m) => m.payload.toString()), ['marker']);
  });

  test('topics starting with $ are not matched by # or + [MQTT-4.7.2-1], only by an explicit $ filter', T, async () => {
    const hash = await connectMqtt(url, { protocolVersion: 5 });
    const plus = await connectMqtt(url);
    const dollar = await connectMqtt(url);
    const pub = await connectMqtt(url);
    const name = uniq('d');
    await hash.client.subscribeAsync('#', { qos: 1 });
    await plus.client.subscribeAsync(`+/${name}`, { qos: 1 });
    await dollar.client.subscribeAsync(`$app/${name}`, { qos: 1 });
    await pub.client.publishAsync(`$app/${name}`, 'dollar', { qos: 1 });
    await pub.client.publishAsync(`x/${name}`, 'marker', { qos: 1 });
    await dollar.waitMessages(1);
    await hash.waitMessages(1, (m) => m.topic === `x/${name}`);
    await plus.waitMessages(1);
    assert.ok(!hash.messages.some((m) => m.topic.startsWith('$')), `# got ${hash.messages.map((m) => m.topic)}`);
    assert.deepEqual(plus.messages.map((m) => m.topic), [`x/${name}`]);
    assert.equal(dollar.messages[0].payload.toString(), 'dollar');
  });

  // -------------------------------------------------------------------------
  // shared subscriptions

  test('shared subscription $share/g/topic: 100 messages split between two members, each once', T, async () => {
    const m1 = await connectMqtt(url, { protocolVersion: 5 });
    const m2 = await connectMqtt(url, { protocolVersion: 5 });
    const plain = await connectMqtt(url, { protocolVersion: 5 });
    const pub = await connectMqtt(url, { protocolVersion: 5 });
    const topic = `${uniq('shared')}/t`;
    await m1.client.subscribeAsync(`$share/g/${topic}`, { qos: 1 });
    await m2.client.subscribeAsync(`$share/g/${topic}`, { qos: 1 });
    await plain.client.subscribeAsync(topic, { qos: 1 });
    const N = 100;
    await Promise.all(Array.from({ length: N }, (_, i) => pub.client.publishAsync(topic, `s${i}`, { qos: 1 })));
    await plain.waitMessages(N);
    const describe = () => `m1=${m1.messages.length} m2=${m2.messages.length}`;
    await waitFor2(() => m1.messages.length + m2.messages.length >= N, null, describe);
    // a marker after the N: once it reached the group (and the plain
    // subscriber), a duplicate of an earlier message would have too
    await pub.client.publishAsync(topic, 'marker', { qos: 1 });
    await plain.waitMessages(N + 1);
    await waitFor2(() => [...m1.messages, ...m2.messages].some((m) => m.payload.toString() === 'marker'), null, describe);
    const all = [...m1.messages, ...m2.messages].map((m) => m.payload.toString());
    assert.equal(all.length, N + 1, describe());
    assert.equal(new Set(all).size, N + 1, 'a message reached both members');
    assert.ok(m1.messages.length > 0 && m2.messages.length > 0, `not split: ${describe()}`);
    for (const m of [...m1.messages, ...m2.messages]) assert.equal(m.topic, topic);
    assert.equal(plain.messages.length, N + 1);
  });

  test('shared subscription: when one member leaves, the other gets everything', T, async () => {
    const m1 = await connectMqtt(url);
    const m2 = await connectMqtt(url);
    const pub = await connectMqtt(url);
    const topic = uniq('shleave');
    await m1.client.subscribeAsync(`$share/grp/${topic}`, { qos: 1 });
    await m2.client.subscribeAsync(`$share/grp/${topic}`, { qos: 1 });
    await m1.end();
    await Promise.all(Array.from({ length: 10 }, (_, i) => pub.client.publishAsync(topic, `l${i}`, { qos: 1 })));
    await m2.waitMessages(10);
    assert.deepEqual(m2.messages.map((m) => m.payload.toString()).sort(), Array.from({ length: 10 }, (_, i) => `l${i}`).sort());
  });

  // -------------------------------------------------------------------------
  // sizes and counts

  for (const version of [4, 5]) {
    test(`v${version}: 1 MiB binary payload arrives byte-exact (QoS 1)`, T, async () => {
      const sub = await connectMqtt(url, { protocolVersion: version });
      const pub = await connectMqtt(url, { protocolVersion: version });
      const topic = uniq('big');
      await sub.client.subscribeAsync(topic, { qos: 1 });
      const payload = patternBytes(1 << 20, version);
      await pub.client.publishAsync(topic, payload, { qos: 1 });
      const [m] = await sub.waitMessages(1, undefined, 8000);
      assert.equal(m.payload.length, payload.length);
      assert.ok(m.payload.equals(payload), '1 MiB payload differs');
    });
  }

  test('one SUBSCRIBE with 1000 distinct topics; one message to each arrives', T, async () => {
    const sub = await connectMqtt(url);
    const pub = await connectMqtt(url);
    const base = uniq('many');
    const topics = Array.from({ length: 1000 }, (_, i) => `${base}/t${i}`);
    const granted = await sub.client.subscribeAsync(Object.fromEntries(topics.map((t) => [t, { qos: 1 }])));
    assert.equal(granted.length, 1000);
    assert.ok(granted.every((g) => g.qos === 1), 'some filters not granted QoS 1');
    for (let b = 0; b < 1000; b += 100) {
      await Promise.all(topics.slice(b, b + 100).map((t) => pub.client.publishAsync(t, t, { qos: 1 })));
    }
    await sub.waitMessages(1000, undefined, 8000);
    assert.equal(new Set(sub.messages.map((m) => m.topic)).size, 1000);
    assert.ok(sub.messages.every((m) => m.payload.toString() === m.topic));
  });

  test('publish to 1000 distinct topics; a wildcard subscriber gets all of them', T, async () => {
    const sub = await connectMqtt(url, { protocolVersion: 5 });
    const pub = await connectMqtt(url, { protocolVersion: 5 });
    const base = uniq('fan');
    await sub.client.subscribeAsync(`${base}/+/leaf`, { qos: 1 });
    for (let b = 0; b < 1000; b += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, i) => pub.client.publishAsync(`${base}/n${b + i}/leaf`, String(b + i), { qos: 1 })));
    }
    await sub.waitMessages(1000, undefined, 8000);
    const got = new Set(sub.messages.map((m) => m.topic));
    assert.equal(got.size, 1000);
    for (let i = 0; i < 1000; i++) assert.ok(got.has(`${base}/n${i}/leaf`), `missing n${i}`);
  });

  // -------------------------------------------------------------------------
  // other versions and paths

  test('MQTT 3.1 (MQIsdp, subprotocol mqttv3.1) interoperates with 3.1.1 and 5', T, async () => {
    const v3 = await connectMqtt(url, { protocolVersion: 3, protocolId: 'MQIsdp', clientId: uniq('v31') });
    const v5 = await connectMqtt(url, { protocolVersion: 5 });
    const topic = uniq('v31');
    await v3.client.subscribeAsync(topic, { qos: 1 });
    await v5.client.subscribeAsync(topic, { qos: 1 });
    await v3.client.publishAsync(topic, 'from 3.1', { qos: 1 });
    await v3.waitMessages(1);
    await v5.waitMessages(1);
    assert.equal(v5.messages[0].payload.toString(), 'from 3.1');
  });

  test('the /ws path serves MQTT too (subprotocol mqtt)', T, async () => {
    const a = await connectMqtt(mqttUrl(broker, '/ws'));
    const b = await connectMqtt(url);
    const topic = uniq('wspath');
    await a.client.subscribeAsync(topic, { qos: 1 });
    await b.client.publishAsync(topic, 'via /mqtt', { qos: 1 });
    const [m] = await a.waitMessages(1);
    assert.equal(m.payload.toString(), 'via /mqtt');
  });

  test('MQTT over plain TCP (mqtt://) and WebSocket clients exchange QoS 1/2 messages both ways', T, async () => {
    const tcp = await connectMqtt(tcpUrl, { protocolVersion: 5 });
    const ws = await connectMqtt(url, { protocolVersion: 4 });
    const topic = uniq('tcpws');
    await tcp.client.subscribeAsync(`${topic}/toTcp`, { qos: 2 });
    await ws.client.subscribeAsync(`${topic}/toWs`, { qos: 1 });
    await ws.client.publishAsync(`${topic}/toTcp`, 'hi tcp', { qos: 2 });
    await tcp.client.publishAsync(`${topic}/toWs`, 'hi ws', { qos: 1 });
    const [a] = await tcp.waitMessages(1);
    const [b] = await ws.waitMessages(1);
    assert.equal(a.payload.toString(), 'hi tcp');
    assert.equal(a.packet.qos, 2);
    assert.equal(b.payload.toString(), 'hi ws');
    assert.equal(b.packet.qos, 1);
  });
});

/** waitFor with the raw client's (or a custom) description. */
function waitFor2(fn, raw, describe) {
  return waitFor(fn, 5000, 'condition', { describe: describe ?? (() => raw?.describe()) });
}
