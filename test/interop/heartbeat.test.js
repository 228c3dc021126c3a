// Heart-beat negotiation and enforcement.
// Broker: -heartbeat-min 100ms -heartbeat-slack 0s (grace stays at 2), so a
// negotiated client->server interval of N ms gives a read deadline of 2N ms.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { cleanup, connectStomp, openRaw, startBroker, uniq, waitFor } from './harness.js';

const T = { timeout: 10000 };

describe('heart-beats (-heartbeat-min 100ms -heartbeat-slack 0s)', () => {
  let broker;
  const timers = new Set();
  before(async () => {
    broker = await startBroker(['-heartbeat-min', '100ms', '-heartbeat-slack', '0s']);
  }, { timeout: 15000 });
  afterEach(async () => {
    for (const t of timers) clearInterval(t);
    timers.clear();
    await cleanup();
  });
  after(async () => {
    await broker?.stop();
  });

  // client heart-beat cx,cy -> expected CONNECTED heart-beat sx,sy with min 100:
  // sx = cy ? max(cy,100) : 0 ; sy = cx ? max(cx,100) : 0
  const table = [
    ['0,0', '0,0'],
    ['200,200', '200,200'],
    ['50,50', '100,100'],
    ['0,200', '200,0'],
    ['300,0', '0,300'],
    ['1000,500', '500,1000'],
  ];
  for (const [offer, expected] of table) {
    test(`CONNECT heart-beat:${offer} -> CONNECTED heart-beat:${expected}`, T, async () => {
      const raw = await openRaw(broker.url);
      const f = await raw.connect({ 'accept-version': '1.2', host: '127.0.0.1', 'heart-beat': offer });
      assert.equal(f.command, 'CONNECTED', raw.describe());
      assert.equal(f.headers['heart-beat'].replace(/\s/g, ''), expected);
    });
  }

  test('STOMP.js with heartbeatIncoming/Outgoing 200: CONNECTED heart-beat 200,200, pings flow both ways, connection survives', T, async () => {
    const c = await connectStomp(broker.url, { heartbeatIncoming: 200, heartbeatOutgoing: 200 });
    assert.equal(c.connectedFrame.headers['heart-beat'].replace(/\s/g, ''), '200,200');
    // server->client heart-beats every 200 ms; ~5 of them is > 2 read deadlines
    // (400 ms) on the server side, so STOMP.js's own pings must have been accepted.
    await waitFor(() => c.heartbeats >= 5, 5000, 'server heart-beats seen by STOMP.js', { describe: () => `heartbeats=${c.heartbeats} closes=${JSON.stringify(c.closes)} errors=${JSON.stringify(c.errors.map((e) => e.headers))} connected=${c.client.connected}` });
    assert.equal(c.closes.length, 0, `connection closed: ${JSON.stringify(c.closes)}`);
    assert.ok(c.client.connected);
    // and it still works
    const dest = `/topic/${uniq('hb')}`;
    const sub = await c.subscribe(dest);
    await c.publishWithReceipt({ destination: dest, body: 'still alive' });
    await waitFor(() => sub.messages.length === 1, 3000, 'message after heart-beats');
  });

  test('raw client heart-beat:0,200 receives EOL heart-beats from the server', T, async () => {
    const raw = await openRaw(broker.url);
    const f = await raw.connect({ 'accept-version': '1.2', host: '127.0.0.1', 'heart-beat': '0,200' });
    assert.equal(f.command, 'CONNECTED');
    await waitFor(() => raw.heartbeats >= 4, 4000, '4 server heart-beats', { describe: () => raw.describe() });
    // the heart-beats are EOL-only WebSocket messages (not part of a frame)
    const eolMessages = raw.messages.filter((m) => /^(\r?\n)+$/.test(m.data.toString('latin1')));
    assert.ok(eolMessages.length >= 1, 'no EOL-only WebSocket message seen');
    // sanity: not a flood (negotiated interval is 200 ms)
    const ts = raw.heartbeatTimes;
    const avgGap = (ts[3] - ts[0]) / 3;
    assert.ok(avgGap >= 50, `heart-beats too frequent: average gap ${avgGap} ms`);
    // this client promised nothing (cx=0), so it must not be disconnected
    assert.equal(raw.closed, null);
  });

  test('raw client heart-beat:200,0 that stays silent is disconnected', T, async () => {
    const raw = await openRaw(broker.url);
    const f = await raw.connect({ 'accept-version': '1.2', host: '127.0.0.1', 'heart-beat': '200,0' });
    assert.equal(f.command, 'CONNECTED');
    assert.equal(f.headers['heart-beat'].replace(/\s/g, ''), '0,200');
    const connectedAt = f.at;
    const closed = await raw.waitClose(4000);
    const elapsed = closed.at - connectedAt;
    // read deadline = 200 ms * grace 2 + 0 s slack = 400 ms
    assert.ok(elapsed >= 150, `disconnected too early (${elapsed} ms after CONNECTED)`);
  });

  test('raw client heart-beat:200,0 that sends EOL every 100 ms stays connected', T, async () => {
    const raw = await openRaw(broker.url);
    const f = await raw.connect({ 'accept-version': '1.2', host: '127.0.0.1', 'heart-beat': '200,0' });
    assert.equal(f.command, 'CONNECTED');
    let sent = 0;
    const timer = setInterval(() => {
      if (raw.closed) return;
      raw.ws.send('\n');
      sent += 1;
    }, 100);
    timers.add(timer);
    // 12 pings = ~1.2 s = 3 read deadlines
    await waitFor(() => sent >= 12 || raw.closed, 5000, '12 pings sent');
    assert.equal(raw.closed, null, `closed although it sent heart-beats: ${raw.describe()}`);
  });

  test('raw client heart-beat:200,0 that sends frames (no EOLs) stays connected', T, async () => {
    const raw = await openRaw(broker.url);
    const f = await raw.connect({ 'accept-version': '1.2', host: '127.0.0.1', 'heart-beat': '200,0' });
    assert.equal(f.command, 'CONNECTED');
    const dest = `/topic/${uniq('hbf')}`;
    let sent = 0;
    const timer = setInterval(() => {
      if (raw.closed) return;
      raw.ws.send(`SEND\ndestination:${dest}\n\nping ${sent}\0`);
      sent += 1;
    }, 100);
    timers.add(timer);
    await waitFor(() => sent >= 12 || raw.closed, 5000, '12 frames sent');
    assert.equal(raw.closed, null, `closed although it sent frames: ${raw.describe()}`);
  });
});
