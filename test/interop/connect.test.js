// CONNECT / version negotiation / subprotocol selection / endpoints.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import {
  cleanup,
  connectStomp,
  openRaw,
  openRawConnected,
  rawSubscribe,
  startBroker,
  uniq,
  upgradeRequest,
  Versions,
  WebSocket,
  withTimeout,
} from './harness.js';
import { connectMqtt, mqttCleanup, mqttUrl, openRawMqtt } from './mqtt-harness.js';

const T = { timeout: 10000 };
const SERVER_RE = /^Duplex\/\d+\.\d+/;

describe('connect and version negotiation', () => {
  let broker;
  before(async () => {
    broker = await startBroker();
  }, { timeout: 15000 });
  afterEach(cleanup);
  after(async () => {
    await broker?.stop();
  });

  function assertConnected(frame, version) {
    assert.equal(frame.command ?? 'CONNECTED', 'CONNECTED');
    assert.equal(frame.headers.version, version, `CONNECTED headers: ${JSON.stringify(frame.headers)}`);
    assert.match(frame.headers.server ?? '', SERVER_RE, `server header: ${JSON.stringify(frame.headers)}`);
    assert.ok(frame.headers.session, `session header missing: ${JSON.stringify(frame.headers)}`);
    assert.ok(frame.headers['heart-beat'] !== undefined, `heart-beat header missing: ${JSON.stringify(frame.headers)}`);
  }

  test('STOMP.js default (offers 1.2,1.1,1.0) negotiates 1.2 over v12.stomp', T, async () => {
    const c = await connectStomp(broker.url);
    assertConnected(c.connectedFrame, '1.2');
    assert.equal(c.client.connectedVersion, '1.2');
    assert.equal(c.client.webSocket.protocol, 'v12.stomp');
  });

  test('STOMP.js forced to 1.1 negotiates 1.1 over v11.stomp', T, async () => {
    const c = await connectStomp(broker.url, { stompVersions: new Versions(['1.1']) });
    assertConnected(c.connectedFrame, '1.1');
    assert.equal(c.client.webSocket.protocol, 'v11.stomp');
  });

  test('STOMP.js forced to 1.2 on the /stomp endpoint', T, async () => {
    const c = await connectStomp(broker.stompUrl, { stompVersions: new Versions(['1.2']) });
    assertConnected(c.connectedFrame, '1.2');
  });

  test('raw STOMP 1.0: CONNECT without accept-version over v10.stomp -> version 1.0, and messaging works', T, async () => {
    const raw = await openRaw(broker.url, { protocols: ['v10.stomp'] });
    assert.equal(raw.ws.protocol, 'v10.stomp');
    const f = await raw.connect({ login: 'guest', passcode: 'guest' });
    assertConnected(f, '1.0');
    // 1.0: SUBSCRIBE without id is allowed
    const dest = `/topic/${uniq('v10')}`;
    const receipt = uniq('r');
    await raw.sendFrame('SUBSCRIBE', { destination: dest, receipt });
    await raw.waitFrame((fr) => fr.command === 'RECEIPT' && fr.headers['receipt-id'] === receipt);
    await raw.sendFrame('SEND', { destination: dest }, 'hello 1.0');
    const m = await raw.waitFrame('MESSAGE');
    assert.equal(m.headers.destination, dest);
    assert.equal(m.text, 'hello 1.0');
    assert.ok(m.headers['message-id'], 'MESSAGE without message-id');
  });

  test('raw: accept-version:1.1 -> version 1.1', T, async () => {
    const raw = await openRaw(broker.url, { protocols: ['v11.stomp'] });
    const f = await raw.connect({ 'accept-version': '1.1', host: '127.0.0.1' });
    assertConnected(f, '1.1');
  });

  test('raw: accept-version:1.0,1.1,1.2 -> version 1.2 (highest common)', T, async () => {
    const raw = await openRaw(broker.url, { protocols: ['v12.stomp'] });
    const f = await raw.connect({ 'accept-version': '1.0,1.1,1.2', host: '127.0.0.1' });
    assertConnected(f, '1.2');
  });

  test('raw: STOMP command (instead of CONNECT) works for 1.2', T, async () => {
    const raw = await openRaw(broker.url, { protocols: ['v12.stomp'] });
    const f = await raw.connect({ 'accept-version': '1.2', host: '127.0.0.1' }, 'STOMP');
    assertConnected(f, '1.2');
  });

  test('raw: login/passcode are accepted (allow-all)', T, async () => {
    const raw = await openRawConnected(broker.url, { connectHeaders: { login: 'alice', passcode: 'secret' } });
    assertConnected(raw.connectedFrame, '1.2');
  });

  test('session ids differ between connections', T, async () => {
    const a = await connectStomp(broker.url);
    const b = await connectStomp(broker.url);
    assert.notEqual(a.connectedFrame.headers.session, b.connectedFrame.headers.session);
  });

  test('server prefers the newest subprotocol offered', T, async () => {
    const raw = await openRaw(broker.url, { protocols: ['v10.stomp', 'v11.stomp', 'v12.stomp'] });
    assert.equal(raw.ws.protocol, 'v12.stomp');
    const raw2 = await openRaw(broker.url, { protocols: ['v10.stomp', 'v11.stomp'] });
    assert.equal(raw2.ws.protocol, 'v11.stomp');
  });

  test('version negotiation failure: accept-version:0.9 -> ERROR with version header, then close', T, async () => {
    const raw = await openRaw(broker.url, { protocols: ['v12.stomp'] });
    const f = await raw.connect({ 'accept-version': '0.9', host: '127.0.0.1' });
    assert.equal(f.command, 'ERROR', raw.describe());
    assert.equal(f.headers.version, '1.2,1.1,1.0');
    assert.ok(f.headers.message, `ERROR without message header: ${JSON.stringify(f.headers)}`);
    await raw.waitClose(5000);
  });

  test('STOMP.js sees the same negotiation failure as onStompError + close', T, async () => {
    await assert.rejects(
      connectStomp(broker.url, { stompVersions: new Versions(['0.9']), protocols: ['v12.stomp'] }),
      /STOMP ERROR before CONNECTED|WebSocket closed before CONNECTED/,
    );
  });

  test('no subprotocol on /ws -> HTTP 400 naming v12.stomp', T, async () => {
    const res = await upgradeRequest(broker.httpBase, '/ws');
    assert.equal(res.status, 400, `got ${res.status} ${res.body}`);
    assert.match(res.body, /v12\.stomp/);
  });

  test('no subprotocol on /stomp and /mqtt -> upgraded, no Sec-WebSocket-Protocol in the answer', T, async () => {
    for (const path of ['/stomp', '/mqtt']) {
      const res = await upgradeRequest(broker.httpBase, path);
      assert.equal(res.status, 101, `${path}: got ${res.status} ${res.body}`);
      assert.equal(res.headers['sec-websocket-protocol'], undefined, `${path}: ${JSON.stringify(res.headers)}`);
    }
  });

  test('unknown subprotocol -> HTTP 400 naming v12.stomp', T, async () => {
    const res = await upgradeRequest(broker.httpBase, '/ws', 'chat.example');
    assert.equal(res.status, 400, `got ${res.status} ${res.body}`);
    assert.match(res.body, /v12\.stomp/);
  });

  test('unknown subprotocol on /stomp -> HTTP 400 naming v12.stomp', T, async () => {
    const res = await upgradeRequest(broker.httpBase, '/stomp', 'v13.stomp');
    assert.equal(res.status, 400, `got ${res.status} ${res.body}`);
    assert.match(res.body, /v12\.stomp/);
  });

  test('unknown subprotocol on /mqtt -> HTTP 400 naming mqtt', T, async () => {
    const res = await upgradeRequest(broker.httpBase, '/mqtt', 'chat.example');
    assert.equal(res.status, 400, `got ${res.status} ${res.body}`);
    assert.match(res.body, /mqtt/);
  });

  test('ws client without subprotocol on /ws is rejected (unexpected-response 400)', T, async () => {
    await assert.rejects(openRaw(broker.url, { protocols: [] }), /unexpected HTTP 400/);
  });

  test('raw subscribe helper sanity (CONNECTED over /stomp then SUBSCRIBE receipt)', T, async () => {
    const raw = await openRawConnected(broker.stompUrl);
    await rawSubscribe(raw, `/topic/${uniq('t')}`);
  });
});

// Legacy clients (new WebSocket(url), Stomp.over(ws), some device stacks)
// offer no subprotocol: /stomp and /mqtt then speak their path's protocol,
// as RabbitMQ Web-STOMP does, and CONNECT decides the version.
describe('no subprotocol on /stomp and /mqtt', () => {
  let broker;
  before(async () => {
    broker = await startBroker();
  }, { timeout: 15000 });
  afterEach(mqttCleanup);
  after(async () => {
    await broker?.stop();
  });

  test('STOMP.js over a plain new WebSocket(url) on /stomp connects at 1.2 and messages', T, async () => {
    const factory = () => new WebSocket(broker.stompUrl);
    const sub = await connectStomp(broker.stompUrl, { webSocketFactory: factory });
    assert.equal(sub.client.webSocket.protocol, '');
    assert.equal(sub.connectedFrame.headers.version, '1.2');
    const dest = `/topic/${uniq('legacy')}`;
    const s = await sub.subscribe(dest);
    const pub = await connectStomp(broker.stompUrl, { webSocketFactory: factory });
    await pub.publishWithReceipt({ destination: dest, body: 'hello legacy' });
    await s.waitCount(1);
    assert.deepEqual(s.bodies(), ['hello legacy']);
  });

  test('raw STOMP on /stomp without subprotocol: CONNECT without accept-version -> 1.0', T, async () => {
    const raw = await openRaw(broker.stompUrl, { protocols: [] });
    assert.equal(raw.ws.protocol, '');
    const f = await raw.connect({ login: 'guest', passcode: 'guest' });
    assert.equal(f.command, 'CONNECTED', raw.describe());
    assert.equal(f.headers.version, '1.0');
  });

  for (const protocolVersion of [4, 5]) {
    test(`MQTT.js ${protocolVersion === 5 ? '5' : '3.1.1'} without subprotocol on /mqtt connects and messages`, T, async () => {
      let offered;
      const createWebsocket = (url, _protocols, opts) => {
        const ws = new WebSocket(url, opts.wsOptions);
        offered = ws;
        return ws;
      };
      const c = await connectMqtt(mqttUrl(broker), { protocolVersion, createWebsocket });
      assert.equal(offered.protocol, '');
      const topic = uniq('legacy');
      await c.client.subscribeAsync(topic, { qos: 1 });
      await c.client.publishAsync(topic, 'hello mqtt', { qos: 1 });
      const [m] = await c.waitMessages(1);
      assert.equal(m.payload.toString(), 'hello mqtt');
    });
  }

  test('raw MQTT without subprotocol on /mqtt: CONNECT level 4 -> CONNACK 0', T, async () => {
    const raw = await openRawMqtt(mqttUrl(broker), { protocols: [] });
    assert.equal(raw.ws.protocol, '');
    const ack = await raw.connect({ version: 4, clientId: uniq('raw') });
    assert.equal(ack.code, 0, raw.describe());
  });

  test('/ws still needs a subprotocol, and only unknown ones are still refused on /stomp', T, async () => {
    await assert.rejects(openRaw(broker.url, { protocols: [] }), /unexpected HTTP 400/);
    await assert.rejects(openRaw(broker.stompUrl, { protocols: ['chat.example'] }), /unexpected HTTP 400/);
    await assert.rejects(openRawMqtt(mqttUrl(broker), { protocols: ['v13.stomp'] }), /unexpected HTTP 400/);
  });
});

describe('graceful shutdown', () => {
  test('SIGTERM with connected clients -> broker exits 0 and clients see the close', T, async () => {
    const b = await startBroker();
    try {
      const raw = await openRawConnected(b.url);
      b.stopping = true;
      b.proc.kill('SIGTERM');
      const { code, signal } = await withTimeout(b.exitPromise, 6000, 'broker exit after SIGTERM');
      assert.equal(signal, null, `broker died by ${signal}; stderr:\n${b.stderrTail()}`);
      assert.equal(code, 0, `exit code ${code}; stderr:\n${b.stderrTail()}`);
      await raw.waitClose(3000);
    } finally {
      await b.stop();
    }
  });
});
