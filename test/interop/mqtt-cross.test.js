// Cross-protocol: MQTT.js and STOMP.js on one broker. STOMP /topic/<t> is
// MQTT topic <t>; content-type <-> Content Type, custom STOMP headers <->
// MQTT 5 user properties, reply-to /topic/<t> <-> Response Topic,
// correlation-id <-> Correlation Data.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { connectStomp, openRawConnected, rawSubscribe, startBroker, uniq, waitFor } from './harness.js';
import { connectMqtt, mqttCleanup, mqttUrl, userProps } from './mqtt-harness.js';

const T = { timeout: 10000 };
const V5 = { protocolVersion: 5 };

describe('MQTT.js <-> STOMP.js', () => {
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

  test('MQTT.js binary publish to R/a/b reaches STOMP.js /topic/R/a/b and /topic/R/a/+ byte-exact', T, async () => {
    const root = uniq('x');
    const stomp = await connectStomp(broker.url);
    const exact = await stomp.subscribe(`/topic/${root}/a/b`);
    const plus = await stomp.subscribe(`/topic/${root}/a/+`);
    const hash = await stomp.subscribe(`/topic/${root}/#`);
    const pub = await connectMqtt(url);
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    await pub.client.publishAsync(`${root}/a/b`, bytes, { qos: 1 });
    await exact.waitCount(1);
    await plus.waitCount(1);
    await hash.waitCount(1);
    for (const s of [exact, plus, hash]) {
      const m = s.messages[0];
      assert.ok(Buffer.from(m.binaryBody).equals(bytes), 'body differs');
      assert.equal(m.headers.destination, `/topic/${root}/a/b`);
      assert.equal(m.headers['content-length'], '256');
    }
  });

  test('MQTT.js QoS 0/1/2 publishes all reach STOMP.js; UTF-8 text arrives as text', T, async () => {
    const root = uniq('x');
    const stomp = await connectStomp(broker.url);
    const s = await stomp.subscribe(`/topic/${root}/t`);
    const pub = await connectMqtt(url, V5);
    for (const qos of [0, 1, 2]) await pub.client.publishAsync(`${root}/t`, `q${qos} ✓ héllo`, { qos });
    await s.waitCount(3);
    assert.deepEqual(s.bodies(), ['q0 ✓ héllo', 'q1 ✓ héllo', 'q2 ✓ héllo']);
  });

  test('STOMP.js SEND with content-type and custom headers → MQTT.js v5 x/y: bytes, contentType, userProperties', T, async () => {
    const root = uniq('x');
    const sub5 = await connectMqtt(url, V5);
    const sub4 = await connectMqtt(url);
    await sub5.client.subscribeAsync(`${root}/x/y`, { qos: 2 });
    await sub4.client.subscribeAsync(`${root}/x/#`, { qos: 1 });
    const stomp = await connectStomp(broker.url);
    const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff, 0x0a, 0x00, 0x7f]);
    await stomp.publishWithReceipt({
      destination: `/topic/${root}/x/y`,
      binaryBody: bytes,
      headers: { 'content-type': 'application/x-sensor', mode: 'eco', 'x-trace': 'abc:123', 'unicodé': 'välue ✓' },
    });
    const [m5] = await sub5.waitMessages(1);
    const [m4] = await sub4.waitMessages(1);
    assert.equal(m5.topic, `${root}/x/y`);
    assert.ok(m5.payload.equals(bytes), `v5 payload ${m5.payload.toString('hex')}`);
    assert.equal(m5.packet.properties?.contentType, 'application/x-sensor');
    const up = userProps(m5.packet);
    assert.equal(up.mode, 'eco', JSON.stringify(up));
    assert.equal(up['x-trace'], 'abc:123');
    assert.equal(up['unicodé'], 'välue ✓');
    for (const k of ['destination', 'content-length', 'content-type', 'receipt']) {
      assert.equal(up[k], undefined, `STOMP header ${k} leaked into user properties: ${JSON.stringify(up)}`);
    }
    // a SEND is QoS 1: a QoS 2 subscription gets it at QoS 1
    assert.equal(m5.packet.qos, 1);
    assert.ok(m4.payload.equals(bytes));
    assert.equal(m4.topic, `${root}/x/y`);
  });

  test('MQTT v5 user properties and content type → STOMP headers (escaped and unescaped by STOMP.js)', T, async () => {
    const root = uniq('x');
    const stomp = await connectStomp(broker.url);
    const s = await stomp.subscribe(`/topic/${root}/props`);
    const raw = await openRawConnected(broker.url);
    await rawSubscribe(raw, `/topic/${root}/props`);
    const pub = await connectMqtt(url, V5);
    await pub.client.publishAsync(`${root}/props`, 'with props', {
      qos: 1,
      properties: {
        contentType: 'text/plain;charset=utf-8',
        userProperties: { unit: 'C', multi: 'line1\nline2', colon: 'a:b', back: 'x\\y ü ✓', 'key:with:colons': 'v' },
      },
    });
    await s.waitCount(1);
    const m = s.messages[0];
    assert.equal(m.body, 'with props');
    assert.equal(m.headers['content-type'], 'text/plain;charset=utf-8');
    assert.equal(m.headers.unit, 'C');
    assert.equal(m.headers.multi, 'line1\nline2');
    assert.equal(m.headers.colon, 'a:b');
    assert.equal(m.headers.back, 'x\\y ü ✓');
    // STOMP.js does not unescape header names; check the wire: the name is
    // escaped as STOMP 1.2 requires
    const f = await raw.waitFrame('MESSAGE');
    const lines = f.rawHeaders.map(([k, v]) => `${k}:${v}`);
    assert.ok(lines.includes('key\\cwith\\ccolons:v'), `raw MESSAGE headers ${JSON.stringify(f.rawHeaders)}`);
  });

  test('MQTT v5 user property named like a STOMP header (content-length) does not corrupt the STOMP frame', T, async () => {
    const root = uniq('x');
    const raw = await openRawConnected(broker.url);
    await rawSubscribe(raw, `/topic/${root}/clash`);
    const stomp = await connectStomp(broker.url);
    const s = await stomp.subscribe(`/topic/${root}/clash`);
    const pub = await connectMqtt(url, V5);
    await pub.client.publishAsync(`${root}/clash`, 'hello world', {
      qos: 1,
      properties: { userProperties: { 'content-length': '1', destination: '/topic/elsewhere', subscription: 'nope' } },
    });
    await pub.client.publishAsync(`${root}/clash`, 'marker', { qos: 1 });
    await waitFor(() => raw.messages.some((msg) => msg.data.includes('marker')), 5000, 'marker on the raw socket');
    const wire = Buffer.concat(raw.messages.map((msg) => msg.data)).toString('utf8');
    const first = raw.frames.find((fr) => fr.command === 'MESSAGE');
    // STOMP: the first occurrence of a repeated header wins, so the user's
    // content-length:1 (written before the real one) cuts the body
    assert.equal(first?.text, 'hello world', `raw STOMP data from the broker: ${JSON.stringify(wire)}`);
    assert.equal(first.headers.destination, `/topic/${root}/clash`);
    await s.waitCount(2, 3000);
    assert.deepEqual(s.bodies(), ['hello world', 'marker']);
    assert.equal(stomp.errors.length, 0);
  });

  test('request/response across protocols: MQTT responseTopic/correlationData ↔ STOMP reply-to/correlation-id', T, async () => {
    const root = uniq('x');
    // STOMP.js service answers requests on /topic/R/svc
    const stomp = await connectStomp(broker.url);
    await stomp.subscribe(`/topic/${root}/svc`, {}, {
      onMessage: (msg) => {
        stomp.client.publish({
          destination: msg.headers['reply-to'],
          body: `answer to ${msg.body}`,
          headers: { 'correlation-id': msg.headers['correlation-id'] },
        });
      },
    });
    const mq = await connectMqtt(url, V5);
    const respTopic = `${root}/replies/one`;
    await mq.client.subscribeAsync(respTopic, { qos: 1 });
    await mq.client.publishAsync(`${root}/svc`, 'q1', {
      qos: 1,
      properties: { responseTopic: respTopic, correlationData: Buffer.from('corr-17') },
    });
    const [m] = await mq.waitMessages(1);
    assert.equal(m.topic, respTopic);
    assert.equal(m.payload.toString(), 'answer to q1');
    assert.equal(Buffer.from(m.packet.properties?.correlationData ?? []).toString(), 'corr-17');

    // and the other way: STOMP reply-to /topic/... becomes the Response Topic
    const req = await connectMqtt(url, V5);
    await req.client.subscribeAsync(`${root}/svc2`, { qos: 1 });
    const replies = await stomp.subscribe(`/topic/${root}/stomp-replies`);
    req.client.on('message', (topic, payload, pkt) => {
      req.client.publish(pkt.properties.responseTopic, 'pong', { qos: 1, properties: { correlationData: pkt.properties.correlationData } });
    });
    stomp.client.publish({ destination: `/topic/${root}/svc2`, body: 'ping', headers: { 'reply-to': `/topic/${root}/stomp-replies`, 'correlation-id': 'c-99' } });
    const [r] = await req.waitMessages(1);
    assert.equal(r.packet.properties?.responseTopic, `${root}/stomp-replies`);
    assert.equal(Buffer.from(r.packet.properties?.correlationData ?? []).toString(), 'c-99');
    await replies.waitCount(1);
    assert.equal(replies.messages[0].body, 'pong');
    assert.equal(replies.messages[0].headers['correlation-id'], 'c-99');
  });

  test('an MQTT will reaches a STOMP.js subscriber', T, async () => {
    const root = uniq('x');
    const stomp = await connectStomp(broker.url);
    const s = await stomp.subscribe(`/topic/${root}/status/+`);
    const dev = await connectMqtt(url, {
      protocolVersion: 5,
      clientId: uniq('dev'),
      will: { topic: `${root}/status/dev1`, payload: Buffer.from('offline'), qos: 1, retain: false, properties: { contentType: 'text/plain' } },
    });
    await dev.kill();
    await s.waitCount(1);
    assert.equal(s.messages[0].body, 'offline');
    assert.equal(s.messages[0].headers.destination, `/topic/${root}/status/dev1`);
    assert.equal(s.messages[0].headers['content-type'], 'text/plain');
  });

  test('1000 STOMP.js SENDs reach an MQTT.js wildcard subscriber in order', T, async () => {
    const root = uniq('x');
    const mq = await connectMqtt(url);
    await mq.client.subscribeAsync(`${root}/#`, { qos: 1 });
    const stomp = await connectStomp(broker.url);
    for (let i = 0; i < 999; i++) stomp.client.publish({ destination: `/topic/${root}/n/${i % 10}`, body: `m${i}` });
    await stomp.publishWithReceipt({ destination: `/topic/${root}/n/last`, body: 'm999' });
    await mq.waitMessages(1000, undefined, 8000);
    assert.deepEqual(mq.messages.map((m) => m.payload.toString()), Array.from({ length: 1000 }, (_, i) => `m${i}`));
    await waitFor(() => mq.messages.length === 1000, 100, 'no extra messages');
  });
});
