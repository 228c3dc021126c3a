// Authorization with real clients: [[acl]] rules with %u and %c patterns,
// checked for MQTT.js 5 (SUBACK 0x87, PUBACK/PUBREC 0x87), MQTT.js 3.1.1
// (SUBACK 0x80, a denied publish dropped with the connection kept) and
// STOMP.js (ERROR `not authorized` for SUBSCRIBE and SEND, topics and
// queues), each next to a well-behaved neighbour that keeps exchanging
// messages without loss, while the allowed destinations keep flowing.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { uniq } from './harness.js';
import { mqttCleanup } from './mqtt-harness.js';
import {
  FAST_AUTH,
  mqttRefusal,
  mqttRoundTrip,
  mqttc,
  neighbour,
  passwordFile,
  pubackCode,
  pw,
  removeAllEnvs,
  secureEnv,
  startSecureBroker,
  stomp,
  stompDenied,
  stompRoundTrip,
  stopAllBrokers,
  subackCode,
} from './security-harness.js';

const T = { timeout: 20000 };
const hex = (c) => `0x${c.toString(16)}`;

after(async () => {
  await mqttCleanup();
  try {
    await stopAllBrokers(); // fails the file if a broker did not exit cleanly
  } finally {
    await removeAllEnvs();
  }
});

describe('ACL rules with %u and %c (MQTT.js 3.1.1 and 5, STOMP.js)', () => {
  let b;
  const alice = { username: 'alice', password: pw('alice') };
  const bob = { username: 'bob', password: pw('bob') };
  before(async () => {
    const env = await secureEnv({ pki: false });
    await env.write('passwd', passwordFile(['alice', 'bob', 'admin']));
    b = await startSecureBroker(env, {
      password_file: env.path('passwd'),
      admins: ['admin'],
      groups: { ops: ['bob'] },
      acl: [
        { group: 'ops', access: 'allow', action: 'subscribe', topic: 'ops/#' },
        { access: 'allow', action: 'all', topic: 'users/%u/#' },
        { access: 'allow', action: 'all', topic: 'devices/%c/#' },
        { access: 'allow', action: 'subscribe', topic: 'news/#' },
        { user: 'alice', access: 'allow', action: 'publish', topic: 'news/#' },
        { user: 'alice', access: 'deny', action: 'subscribe', topic: 'news/secret/#' },
        { access: 'allow', action: 'all', queue: 'q-%u' },
      ],
      auth: FAST_AUTH,
    });
  }, { timeout: 60000 });
  afterEach(mqttCleanup);

  /** bob's neighbours, and a watcher on bob's inbox that must see only bob's own marker. */
  async function bobSide() {
    const m = await neighbour('mqtt', () => mqttc(b.mqttUrl, { protocolVersion: 5, ...bob }), `users/bob/${uniq('nb')}`);
    const s = await neighbour('stomp', () => stomp(b.url, { login: 'bob', passcode: pw('bob') }), `/topic/users/bob/${uniq('nb')}`);
    const inbox = `users/bob/${uniq('inbox')}`;
    const watcher = await mqttc(b.mqttUrl, { protocolVersion: 5, ...bob });
    assert.equal(await subackCode(watcher, inbox, 1), 1);
    return {
      inbox,
      /** bob publishes a marker to his inbox; the watcher got exactly that. */
      async onlyMarker() {
        const marker = uniq('marker');
        assert.equal(await pubackCode(watcher, inbox, marker, 1), 0);
        const got = await watcher.waitMessages(1, (x) => x.topic === inbox);
        assert.deepEqual(got.map((x) => x.payload.toString()), [marker], "a denied publish reached bob's inbox");
      },
      async stop() {
        await Promise.all([m.flowing(), s.flowing()]);
        await Promise.all([m.stop(), s.stop()]);
      },
    };
  }

  test('MQTT 5: SUBACK 0x87 and PUBACK/PUBREC 0x87 outside the rules; allowed topics flow', T, async () => {
    const side = await bobSide();
    const cid = uniq('dev');
    const a = await mqttc(b.mqttUrl, { protocolVersion: 5, clientId: cid, ...alice });
    const subs = {
      'users/bob/#': 0x87, // another user's %u
      'users/+/inbox': 0x87, // wider than users/alice/#
      '#': 0x87,
      [`devices/${cid}-other/#`]: 0x87, // another client's %c
      'news/#': 0x87, // a deny rule for alice intersects it
      '$SYS/#': 0x87, // not an admin
      'users/alice/#': 1,
      [`devices/${cid}/#`]: 1,
      'news/public': 1,
    };
    for (const [filter, want] of Object.entries(subs)) {
      assert.equal(hex(await subackCode(a, filter, 1)), hex(want), `SUBSCRIBE ${filter}`);
    }
    assert.equal(hex(await pubackCode(a, side.inbox, 'denied q1', 1)), '0x87', 'QoS 1 PUBLISH to bob\'s inbox');
    assert.equal(hex(await pubackCode(a, side.inbox, 'denied q2', 2)), '0x87', 'QoS 2 PUBLISH to bob\'s inbox');
    assert.equal(hex(await pubackCode(a, `devices/${cid}-other/x`, 'denied', 1)), '0x87', "PUBLISH to another client's %c topic");
    const bm = await mqttc(b.mqttUrl, { protocolVersion: 5, ...bob });
    assert.equal(hex(await pubackCode(bm, 'news/today', 'denied', 1)), '0x87', 'bob may not publish news');
    await side.onlyMarker();

    // The allowed topics flow, on the same connection that was refused.
    assert.equal(a.closed, false, 'a refusal closed the connection');
    await mqttRoundTrip(a, 'users/alice/x');
    await mqttRoundTrip(a, `devices/${cid}/y`);
    assert.equal(await pubackCode(a, 'news/public', 'headline', 1), 0);
    await a.waitMessages(1, (m) => m.topic === 'news/public' && m.payload.toString() === 'headline');
    await side.stop();
  });

  test('MQTT 3.1.1: SUBACK 0x80 outside the rules; a denied publish is dropped and the connection kept', T, async () => {
    const side = await bobSide();
    const cid = uniq('dev');
    const a = await mqttc(b.mqttUrl, { protocolVersion: 4, clientId: cid, ...alice });
    for (const filter of ['users/bob/#', 'users/+/inbox', `devices/${cid}-other/#`, 'news/#', '$SYS/#']) {
      assert.equal(hex(await subackCode(a, filter, 1)), '0x80', `SUBSCRIBE ${filter}`);
    }
    // 3.1.1 has no reason code in PUBACK: the publish is acknowledged and dropped.
    assert.equal(await pubackCode(a, side.inbox, 'denied q1', 1), 0);
    await a.client.publishAsync(side.inbox, 'denied q0', { qos: 0 });
    await side.onlyMarker();
    assert.equal(a.closed, false, 'a denied publish closed the 3.1.1 connection');
    await mqttRoundTrip(a, 'users/alice/v4');
    await mqttRoundTrip(a, `devices/${cid}/v4`);
    await side.stop();
  });

  test('STOMP.js: ERROR `not authorized` for SUBSCRIBE and SEND outside the rules (topics and queues); allowed destinations flow', T, async () => {
    const side = await bobSide();
    const login = { login: 'alice', passcode: pw('alice') };
    const denied = [
      ['subscribe', '/topic/users/bob/#'],
      ['subscribe', '/topic/news/#'],
      ['subscribe', '/queue/q-bob'],
      ['send', `/topic/${side.inbox}`],
      ['send', '/queue/q-bob'],
    ];
    for (const [kind, dest] of denied) {
      const s = await stomp(b.url, login);
      const err = await stompDenied(s, kind, dest);
      assert.equal(err.headers.message, 'not authorized', `${kind} ${dest}`);
    }
    // %c is the STOMP client-id header.
    const cid = uniq('stomp-dev');
    const d = await stomp(b.url, { ...login, connectHeaders: { 'client-id': cid } });
    const err = await stompDenied(d, 'subscribe', `/topic/devices/${cid}-other/x`);
    assert.equal(err.headers.message, 'not authorized', "another client's %c topic");
    await side.onlyMarker();

    const okCid = uniq('stomp-dev');
    const ok = await stomp(b.url, { ...login, connectHeaders: { 'client-id': okCid } });
    await stompRoundTrip(ok, '/topic/users/alice/s');
    await stompRoundTrip(ok, '/queue/q-alice');
    await stompRoundTrip(ok, '/topic/news/public');
    await side.stop();
    // Last, so that the checks above stand on their own: %c matches the
    // client-id header of this STOMP connection.
    await stompRoundTrip(ok, `/topic/devices/${okCid}/s`);
  });

  test('group rules apply to members only; $SYS is for admins', T, async () => {
    const side = await bobSide();
    const a = await mqttc(b.mqttUrl, { protocolVersion: 5, ...alice });
    const bm = await mqttc(b.mqttUrl, { protocolVersion: 5, ...bob });
    assert.equal(hex(await subackCode(bm, 'ops/alerts/#', 1)), '0x1', 'bob is in group ops');
    assert.equal(hex(await subackCode(a, 'ops/alerts/#', 1)), '0x87', 'alice is not in group ops');
    assert.equal(hex(await subackCode(bm, 'ops/alerts/#', 1)), '0x1');
    assert.equal(hex(await subackCode(a, '$SYS/#', 0)), '0x87', 'alice is not an admin');
    const adm = await mqttc(b.mqttUrl, { protocolVersion: 5, username: 'admin', password: pw('admin') });
    assert.ok(await subackCode(adm, '$SYS/#', 0) < 0x80, 'an admin may subscribe to $SYS/#');
    assert.equal(hex(await pubackCode(a, '$SYS/fake', 'x', 1)), '0x87', 'nobody but admins publishes to $SYS');
    await side.stop();
  });
});

describe('anonymous clients next to users (allow_anonymous = true)', () => {
  let b;
  const alice = { username: 'alice', password: pw('alice') };
  before(async () => {
    const env = await secureEnv({ pki: false });
    await env.write('passwd', passwordFile(['alice']));
    b = await startSecureBroker(env, {
      allow_anonymous: true,
      password_file: env.path('passwd'),
      acl: [
        { anonymous: true, access: 'allow', action: 'subscribe', topic: 'public/#' },
        { user: 'alice', access: 'allow', action: 'all', topic: 'public/#' },
        { access: 'allow', action: 'all', topic: 'users/%u/#' },
      ],
      auth: FAST_AUTH,
    });
  }, { timeout: 60000 });
  afterEach(mqttCleanup);

  test('anonymous rules apply to anonymous clients; %u never matches an empty user name', T, async () => {
    const nb = await neighbour('mqtt', () => mqttc(b.mqttUrl, { protocolVersion: 5, ...alice }), `users/alice/${uniq('nb')}`);
    const anon = await mqttc(b.mqttUrl, { protocolVersion: 5 });
    assert.equal(hex(await subackCode(anon, 'public/#', 1)), '0x1');
    assert.equal(hex(await subackCode(anon, 'users//#', 1)), '0x87', '%u matched an anonymous client');
    assert.equal(hex(await pubackCode(anon, 'public/news', 'anon', 1)), '0x87', 'anonymous may only read public/#');
    assert.equal(hex(await pubackCode(anon, 'users//x', 'anon', 1)), '0x87', '%u matched an anonymous client');
    const a = await mqttc(b.mqttUrl, { protocolVersion: 5, ...alice });
    assert.equal(await pubackCode(a, 'public/news', 'from alice', 1), 0);
    const [m] = await anon.waitMessages(1, (x) => x.topic === 'public/news');
    assert.equal(m.payload.toString(), 'from alice');
    // STOMP.js without login: reads public/#, may not send there.
    const s = await stomp(b.url);
    const sub = await s.subscribe('/topic/public/#');
    await a.client.publishAsync('public/more', 'again', { qos: 1 });
    await sub.waitCount(1);
    const err = await stompDenied(s, 'send', '/topic/public/x');
    assert.equal(err.headers.message, 'not authorized');
    // A wrong password is still refused: allow_anonymous does not make bad credentials anonymous.
    assert.equal(await mqttRefusal(b.mqttUrl, { protocolVersion: 5, username: 'alice', password: 'wrong' }), 0x86);
    await nb.flowing();
    await nb.stop();
  });
});
