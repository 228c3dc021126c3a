// Bad MQTT input over a raw WebSocket (subprotocol mqtt): every case closes
// that connection (with a v5 DISCONNECT reason code where one applies)
// while an MQTT.js subscriber on the same broker keeps receiving.
//
// The broker runs with -max-frame-size 65536, so its MQTT Maximum Packet
// Size is 65536 + 64 KiB = 131072 bytes.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { startBroker, uniq, waitFor } from './harness.js';
import {
  PINGREQ,
  connectMqtt,
  connectPacket,
  mqttCleanup,
  mqttString,
  mqttUrl,
  openRawMqtt,
  packet,
  publishPacket,
  subscribePacket,
  u16,
  varint,
} from './mqtt-harness.js';

const T = { timeout: 10000 };
const MAX_PACKET = 65536 + 65536;

describe('MQTT bad input (raw WebSocket)', () => {
  let broker;
  let url;
  before(async () => {
    broker = await startBroker(['-max-frame-size', '65536']);
    url = mqttUrl(broker);
  }, { timeout: 15000 });
  afterEach(mqttCleanup);
  after(async () => {
    await broker?.stop();
  });

  /**
   * An MQTT.js subscriber and publisher on their own topic; check() sends
   * one more message and waits for it.
   */
  async function bystander() {
    const topic = uniq('bystander');
    const sub = await connectMqtt(url, { protocolVersion: 5 });
    const pub = await connectMqtt(url);
    await sub.client.subscribeAsync(topic, { qos: 1 });
    let n = 0;
    const check = async () => {
      n += 1;
      await pub.client.publishAsync(topic, `alive ${n}`, { qos: 1 });
      await sub.waitMessages(n, undefined, 3000, `bystander message ${n}`);
      assert.equal(sub.closed, false, 'bystander subscriber was closed');
      assert.equal(pub.closed, false, 'bystander publisher was closed');
    };
    await check();
    return { check, sub, pub, topic };
  }

  /** Open a raw socket; connect it (v4/v5) unless version is null. */
  async function rawClient(version) {
    const raw = await openRawMqtt(url);
    if (version) await raw.connect({ version, clientId: uniq(`bad${version}`) });
    return raw;
  }

  /** Wait for close; if a DISCONNECT came first, return its reason code. */
  async function closedWith(raw) {
    const closed = await raw.waitClose();
    const d = raw.packets.find((p) => p.name === 'DISCONNECT');
    return { ws: closed.code, reason: d?.reasonCode, packets: raw.packets.map((p) => p.name) };
  }

  test('text WebSocket frame → close 1003 (before and after CONNECT)', T, async () => {
    const alive = await bystander();
    const a = await rawClient(null);
    await a.send('\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00');
    assert.equal((await a.waitClose()).code, 1003, a.describe());
    assert.deepEqual(a.packets, []);

    const b = await rawClient(5);
    await b.send('hello');
    const r = await closedWith(b);
    assert.equal(r.ws, 1003, b.describe());
    await alive.check();
  });

  test('a packet before CONNECT closes the connection without CONNACK', T, async () => {
    const alive = await bystander();
    for (const first of [publishPacket(alive.topic, 'sneaky'), PINGREQ, subscribePacket(1, '#')]) {
      const raw = await rawClient(null);
      await raw.send(first);
      const closed = await raw.waitClose();
      assert.deepEqual(raw.packets, [], `first byte 0x${first[0].toString(16)}: ${raw.describe()}`);
      assert.equal(closed.code, 1002, `first byte 0x${first[0].toString(16)}: ${raw.describe()}`);
    }
    await alive.check();
    assert.ok(!alive.sub.messages.some((m) => m.payload.toString() === 'sneaky'), 'PUBLISH before CONNECT was routed');
  });

  test('a second CONNECT is a protocol error (v5 DISCONNECT 0x82)', T, async () => {
    const alive = await bystander();
    const raw = await rawClient(5);
    await raw.send(connectPacket({ version: 5, clientId: uniq('again') }));
    const r = await closedWith(raw);
    assert.equal(r.reason, 0x82, raw.describe());
    assert.equal(r.ws, 1002);
    await alive.check();
  });

  test('CONNECT with an unsupported protocol level → CONNACK 0x01, then close', T, async () => {
    const alive = await bystander();
    for (const level of [6, 2]) {
      const raw = await rawClient(null);
      await raw.send(connectPacket({ version: level, clientId: uniq('lvl') }));
      await raw.waitClose();
      // [MQTT-3.1.2-2]: CONNACK return code 0x01 (the 3.1.1 code: the
      // client's version is unknown), then close
      assert.deepEqual(raw.packets.map((p) => [p.name, p.code]), [['CONNACK', 0x01]], `level ${level}: ${raw.describe()}`);
    }
    await alive.check();
  });

  test('3.1.1 CONNECT with an empty client id and clean session 0 → CONNACK 0x02, then close', T, async () => {
    const alive = await bystander();
    const raw = await rawClient(null);
    await raw.send(connectPacket({ version: 4, clientId: '', clean: false }));
    await raw.waitClose();
    assert.deepEqual(raw.packets.map((p) => [p.name, p.code]), [['CONNACK', 0x02]], raw.describe());
    await alive.check();
  });

  test('remaining length with 5 continuation bytes → malformed (v5 DISCONNECT 0x81), before and after CONNECT', T, async () => {
    const alive = await bystander();
    const a = await rawClient(null);
    await a.send(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]));
    const ra = await a.waitClose();
    assert.equal(ra.code, 1002, a.describe());
    assert.deepEqual(a.packets, []);

    const b = await rawClient(5);
    await b.send(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00, 0x01, 0x61]));
    const rb = await closedWith(b);
    assert.equal(rb.reason, 0x81, b.describe());
    assert.equal(rb.ws, 1002);

    const c = await rawClient(4);
    await c.send(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]));
    const rc = await closedWith(c);
    assert.equal(rc.reason, undefined, 'a 3.1.1 client got a DISCONNECT');
    assert.equal(rc.ws, 1002, c.describe());
    await alive.check();
  });

  for (const [what, bytes, v5code] of [
    ['SUBSCRIBE with flags 0000 (must be 0010)', (topic) => subscribePacket(1, topic, { version: 5, firstByte: 0x80 }), 0x81],
    ['PUBREL with flags 0000 (must be 0010)', () => packet(0x60, Buffer.from([0, 1])), 0x81],
    ['PINGREQ with flags 0001', () => Buffer.from([0xc1, 0x00]), 0x81],
    ['PUBLISH with QoS 3', (topic) => packet(0x36, Buffer.concat([mqttString(topic), u16(1), varint(0), Buffer.from('x')])), 0x81],
    ['PUBLISH QoS 1 with packet id 0', (topic) => packet(0x32, Buffer.concat([mqttString(topic), u16(0), varint(0), Buffer.from('x')])), 0x82],
  ]) {
    test(`reserved/invalid bits: ${what} → DISCONNECT 0x${v5code.toString(16)} and close`, T, async () => {
      const alive = await bystander();
      const raw = await rawClient(5);
      await raw.send(bytes(alive.topic));
      const r = await closedWith(raw);
      assert.equal(r.reason, v5code, `${what}: ${raw.describe()}`);
      assert.equal(r.ws, 1002, raw.describe());
      await alive.check();
      assert.deepEqual(alive.sub.messages.map((m) => m.payload.toString()), ['alive 1', 'alive 2']);
    });
  }

  test('CONNECT with the reserved flag bit set → close without CONNACK (3.1.1 [MQTT-3.1.2-3]) / CONNACK 0x81 (v5)', T, async () => {
    const alive = await bystander();
    for (const [version, want] of [[4, []], [5, [['CONNACK', 0x81]]]]) {
      const raw = await rawClient(null);
      await raw.send(connectPacket({ version, clientId: uniq('rsv'), flags: 0x01 }));
      const closed = await raw.waitClose();
      assert.deepEqual(raw.packets.map((p) => [p.name, p.code]), want, `v${version}: ${raw.describe()}`);
      assert.equal(closed.code, 1002);
    }
    await alive.check();
  });

  for (const version of [4, 5]) {
    test(`v${version}: wildcard in a PUBLISH topic closes the connection and reaches nobody`, T, async () => {
      const alive = await bystander();
      const watcher = await connectMqtt(url);
      const base = uniq('wild');
      await watcher.client.subscribeAsync(`${base}/#`, { qos: 1 });
      for (const topic of [`${base}/+`, `${base}/#`, `${base}/a+b`]) {
        const raw = await rawClient(version);
        await raw.send(publishPacket(topic, 'bad', { version, qos: 1 }));
        const r = await closedWith(raw);
        if (version === 5) assert.equal(r.reason, 0x90, `${topic}: ${raw.describe()}`);
        else assert.equal(r.reason, undefined);
        assert.equal(r.ws, 1002, raw.describe());
        assert.ok(!raw.packets.some((p) => p.name === 'PUBACK'), `${topic} acknowledged: ${raw.describe()}`);
      }
      await watcher.client.publishAsync(`${base}/ok`, 'marker', { qos: 1 });
      await watcher.waitMessages(1);
      assert.deepEqual(watcher.messages.map((m) => m.payload.toString()), ['marker']);
      await alive.check();
    });
  }

  test('oversize packet (declared length > Maximum Packet Size) → DISCONNECT 0x95, close 1009', T, async () => {
    const alive = await bystander();
    const probe = await connectMqtt(url, { protocolVersion: 5 });
    assert.equal(probe.connack.properties?.maximumPacketSize, MAX_PACKET, JSON.stringify(probe.connack.properties));
    const raw = await rawClient(5);
    // only the header: the server must refuse before reading (or
    // allocating) the announced 200000 bytes
    await raw.send(Buffer.concat([Buffer.from([0x30]), varint(200000), mqttString('t'), Buffer.from([0])]));
    const r = await closedWith(raw);
    assert.equal(r.reason, 0x95, raw.describe());
    assert.equal(r.ws, 1009, raw.describe());
    await alive.check();
  });

  test('oversize PUBLISH actually sent (200 KiB in one message) → closed (0x95 or WebSocket 1009)', T, async () => {
    // the WebSocket layer's message limit (same size) may cut it first:
    // then the close is 1009 without a DISCONNECT
    const alive = await bystander();
    const raw = await rawClient(5);
    await raw.send(publishPacket(alive.topic, Buffer.alloc(200 * 1024, 0x61), { version: 5 })).catch(() => {});
    const r = await closedWith(raw);
    assert.ok(r.reason === 0x95 || r.ws === 1009, raw.describe());
    await alive.check();
    assert.equal(alive.sub.messages.length, 2, 'oversize message was delivered');
  });

  test('a packet just under the limit is accepted, in several WebSocket messages', T, async () => {
    const alive = await bystander();
    const raw = await rawClient(5);
    const pkt = publishPacket(alive.topic, Buffer.alloc(MAX_PACKET - 1024, 0x62), { version: 5, qos: 1, id: 9 });
    assert.ok(pkt.length < MAX_PACKET);
    // split across 3 WebSocket messages [MQTT-6.0.0-2]
    const third = Math.floor(pkt.length / 3);
    await raw.send(pkt.subarray(0, third));
    await raw.send(pkt.subarray(third, 2 * third));
    await raw.send(pkt.subarray(2 * third));
    const ack = await raw.waitPacket('PUBACK');
    assert.equal(ack.id, 9);
    const [big] = await alive.sub.waitMessages(1, (m) => m.payload.length > 1000, 5000);
    assert.ok(big.payload.equals(Buffer.alloc(MAX_PACKET - 1024, 0x62)), `payload of ${big.payload.length} bytes differs`);
    await alive.check();
  });

  test('two packets in one WebSocket message and garbage after CONNECT', T, async () => {
    const alive = await bystander();
    const raw = await rawClient(4);
    await raw.send(Buffer.concat([publishPacket(alive.topic, 'two-in-one', { qos: 1, id: 1 }), PINGREQ]));
    await raw.waitPacket('PINGRESP');
    await raw.waitPacket('PUBACK');
    await raw.send(Buffer.from([0x00, 0x00])); // packet type 0 is reserved
    const r = await closedWith(raw);
    assert.equal(r.ws, 1002, raw.describe());
    await alive.check();
    assert.ok(alive.sub.messages.some((m) => m.payload.toString() === 'two-in-one'));
  });

  test('the broker is still healthy after all of the above', T, async () => {
    const alive = await bystander();
    await alive.check();
    broker.assertAlive();
    await waitFor(() => !broker.exited, 100, 'broker alive');
  });
});
