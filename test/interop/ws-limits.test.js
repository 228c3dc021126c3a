// Size limits over WebSocket answer as over TCP: a STOMP frame or MQTT
// packet just over the broker's limit gets the protocol's own error (STOMP
// ERROR with a message header, MQTT 5 DISCONNECT 0x95, MQTT 3.1.1 the
// close), because the WebSocket read limit sits above the protocol limits;
// only a message far beyond them is cut by the WebSocket layer (1009).
//
// Broker: -max-frame-size 65536, so the largest STOMP body is 64 KiB (plus
// up to 64 KiB of headers), the MQTT Maximum Packet Size 128 KiB, and the
// WebSocket read limit 64 KiB above the larger of the two.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { connectStomp, openRaw, startBroker, uniq, waitFor } from './harness.js';
import { connectMqtt, freePort, mqttCleanup, mqttUrl, openRawMqtt, publishPacket } from './mqtt-harness.js';

const T = { timeout: 20000 };
const MAX_FRAME = 65536;
const MAX_PACKET = MAX_FRAME + 65536;
const MAX_HEADER_BYTES = 65536;

describe('size limits over WebSocket answer like TCP (-max-frame-size 65536)', () => {
  let broker;
  let tcpUrl;
  before(async () => {
    const port = await freePort();
    tcpUrl = `mqtt://127.0.0.1:${port}`;
    broker = await startBroker(['-max-frame-size', String(MAX_FRAME), '-mqtt-tcp-addr', `127.0.0.1:${port}`]);
  }, { timeout: 15000 });
  afterEach(mqttCleanup);
  after(async () => {
    await broker?.stop();
  });

  test('STOMP.js: a body one byte over the limit gets ERROR with a message, then the close', T, async () => {
    const c = await connectStomp(broker.url);
    c.client.publish({ destination: `/topic/${uniq('big')}`, body: 'x'.repeat(MAX_FRAME + 1) });
    await waitFor(() => c.errors.length > 0 && c.closes.length > 0, 10000, 'ERROR and close',
      { describe: () => `errors=${JSON.stringify(c.errors.map((e) => e.headers))} closes=${JSON.stringify(c.closes)}` });
    assert.match(c.errors[0].headers.message ?? '', /too large/i, JSON.stringify(c.errors[0].headers));
    assert.equal(c.closes[0].code, 1009, JSON.stringify(c.closes));
  });

  test('STOMP.js: the largest frame STOMP accepts (full body, 64 KiB of headers) is delivered', T, async () => {
    const dest = `/topic/${uniq('full')}`;
    const sub = await connectStomp(broker.url);
    const s = await sub.subscribe(dest);
    const pub = await connectStomp(broker.url);
    // header lines (name:value, EOLs not counted) of exactly 64 KiB in all,
    // each under the 8 KiB line limit: with its EOLs the frame is then a
    // few bytes over 128 KiB, the size a read limit of max_frame_size +
    // 64 KiB would cut
    await pub.receipt((receipt) => {
      const headers = { receipt };
      const fixed = [`destination:${dest}`, `receipt:${receipt}`, `content-length:${MAX_FRAME}`];
      let room = MAX_HEADER_BYTES - fixed.reduce((n, l) => n + l.length, 0);
      for (let i = 0; room > 0; i++) {
        const name = `x-pad-${i}`;
        const n = Math.min(room - name.length - 1, 8000);
        headers[name] = 'p'.repeat(n);
        room -= name.length + 1 + n;
      }
      pub.client.publish({ destination: dest, headers, body: 'y'.repeat(MAX_FRAME) });
    }, 'RECEIPT of the largest frame', 10000);
    await s.waitCount(1, 10000);
    assert.equal(s.messages[0].body.length, MAX_FRAME);
    assert.equal(pub.errors.length, 0, JSON.stringify(pub.errors.map((e) => e.headers)));
  });

  // A QoS 0 PUBLISH whose whole packet is `size` bytes, through MQTT.js.
  function publishOfSize(client, version, size) {
    const topic = uniq('big');
    const head = 2 + Buffer.byteLength(topic) + (version === 5 ? 1 : 0);
    let payload = size - 1 - head;
    for (let len = 1; len <= 4; len++) {
      const rl = size - 1 - len;
      if (rl < 128 ** len) {
        payload = rl - head;
        break;
      }
    }
    client.publish(topic, Buffer.alloc(payload, 0x7a), { qos: 0 });
  }

  for (const transport of ['ws', 'tcp']) {
    test(`MQTT.js 5 over ${transport}: a packet one byte over Maximum Packet Size gets DISCONNECT 0x95`, T, async () => {
      const url = transport === 'ws' ? mqttUrl(broker) : tcpUrl;
      const c = await connectMqtt(url, { protocolVersion: 5 });
      assert.equal(c.connack.properties?.maximumPacketSize, MAX_PACKET, JSON.stringify(c.connack.properties));
      publishOfSize(c.client, 5, MAX_PACKET + 1);
      await c.waitClosed(10000);
      assert.equal(c.disconnects[0]?.reasonCode, 0x95, c.describe());
    });
  }

  for (const version of [5, 4]) {
    test(`raw MQTT ${version === 5 ? '5' : '3.1.1'}: a packet one byte over the limit in one WebSocket message gets ${version === 5 ? 'DISCONNECT 0x95' : 'the close'}`, T, async () => {
      const raw = await openRawMqtt(mqttUrl(broker));
      await raw.connect({ version, clientId: uniq('big') });
      const topic = 't';
      const head = 2 + topic.length + (version === 5 ? 1 : 0);
      const pkt = publishPacket(topic, Buffer.alloc(MAX_PACKET + 1 - 1 - 3 - head, 0x7a), { version });
      assert.equal(pkt.length, MAX_PACKET + 1);
      await raw.send(pkt).catch(() => {});
      const closed = await raw.waitClose(10000);
      if (version === 5) {
        const d = raw.packets.find((p) => p.name === 'DISCONNECT');
        assert.equal(d?.reasonCode, 0x95, raw.describe());
      }
      assert.equal(closed.code, 1009, raw.describe());
    });
  }

  test('MQTT.js 3.1.1: a packet one byte over the limit closes the connection; one at the limit is delivered', T, async () => {
    const sub = await connectMqtt(mqttUrl(broker));
    const topic = uniq('limit');
    await sub.client.subscribeAsync(topic, { qos: 0 });
    const pub = await connectMqtt(mqttUrl(broker));
    // at the limit: 1 + 3 (remaining length) + 2 + topic + payload
    const payload = MAX_PACKET - 1 - 3 - 2 - Buffer.byteLength(topic);
    pub.client.publish(topic, Buffer.alloc(payload, 0x61), { qos: 0 });
    const [m] = await sub.waitMessages(1, undefined, 10000);
    assert.equal(m.payload.length, payload);
    publishOfSize(pub.client, 4, MAX_PACKET + 1);
    await pub.waitClosed(10000);
    assert.equal(sub.closed, false, 'the subscriber was closed');
  });

  test('far beyond every limit: the WebSocket layer closes with 1009', T, async () => {
    const raw = await openRaw(broker.url);
    await raw.connect({ 'accept-version': '1.2', host: '127.0.0.1' });
    raw.ws.send(`SEND\ndestination:/topic/${uniq('huge')}\n\n${'x'.repeat(4 * MAX_PACKET)}\0`);
    const closed = await raw.waitClose(10000);
    assert.equal(closed.code, 1009, raw.describe());
  });
});
