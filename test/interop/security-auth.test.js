// Authentication with real clients (STOMP.js, MQTT.js 3.1.1 and 5): the
// password file, JWT (HS256 and RS256; STOMP passcode, MQTT password,
// access_token query parameter), a token that expires mid-session, and a
// session hijack attempt with another user's client id. Every refusal is
// checked next to a well-behaved neighbour that keeps exchanging messages
// without loss (security-harness.js neighbour()).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';

import { uniq, waitFor } from './harness.js';
import { mqttCleanup } from './mqtt-harness.js';
import {
  FAST_AUTH,
  mqttc,
  mqttRefusal,
  mqttRoundTrip,
  neighbour,
  nowSec,
  passwordFile,
  pubackCode,
  pw,
  removeAllEnvs,
  rsaKeys,
  secureEnv,
  signJwt,
  startSecureBroker,
  stomp,
  stompDenied,
  stompRefusal,
  stompRoundTrip,
  stopAllBrokers,
  subackCode,
} from './security-harness.js';

const T = { timeout: 20000 };

after(async () => {
  await mqttCleanup();
  try {
    await stopAllBrokers(); // fails the file if a broker did not exit cleanly
  } finally {
    await removeAllEnvs();
  }
});

/** A neighbour pair (MQTT.js v5 and STOMP.js) for a broker; opts give credentials. */
async function neighbours(b, mqttOpts, stompOpts, base) {
  const m = await neighbour('mqtt', () => mqttc(b.mqttUrl, { protocolVersion: 5, ...mqttOpts }), `${base}/nb-mqtt-${uniq('t')}`);
  const s = await neighbour('stomp', () => stomp(b.url, stompOpts), `/topic/${base}/nb-stomp-${uniq('t')}`);
  return {
    flowing: () => Promise.all([m.flowing(), s.flowing()]),
    stop: () => Promise.all([m.stop(), s.stop()]),
  };
}

describe('password file (STOMP.js, MQTT.js)', () => {
  let env;
  let b;
  before(async () => {
    env = await secureEnv({ pki: false });
    await env.write('passwd', passwordFile(['alice', 'bob']));
    b = await startSecureBroker(env, { password_file: env.path('passwd'), auth: FAST_AUTH });
  }, { timeout: 60000 });
  afterEach(mqttCleanup);

  test('wrong password, unknown user and anonymous are refused; a neighbour keeps flowing', T, async () => {
    const nb = await neighbours(b, { username: 'bob', password: pw('bob') }, { login: 'bob', passcode: pw('bob') }, 'nb');

    for (const [login, passcode] of [['alice', 'wrong'], ['mallory', 'x'], ['alice', '']]) {
      const err = await stompRefusal(b.url, { login, passcode });
      assert.equal(err.headers.message, 'access refused', `STOMP login ${login}/${passcode}`);
      assert.equal(await mqttRefusal(b.mqttUrl, { protocolVersion: 4, username: login, password: passcode }), 4,
        `MQTT 3.1.1 ${login}/${passcode}: CONNACK 4 (bad user name or password)`);
      assert.equal(await mqttRefusal(b.mqttUrl, { protocolVersion: 5, username: login, password: passcode }), 0x86,
        `MQTT 5 ${login}/${passcode}: CONNACK 0x86`);
    }
    // No credentials at all: a password file is configured, so anonymous
    // clients are refused (allow_anonymous unset).
    const anon = await stompRefusal(b.url, {});
    assert.equal(anon.headers.message, 'access refused', 'anonymous STOMP');
    assert.equal(await mqttRefusal(b.mqttUrl, { protocolVersion: 4 }), 5, 'anonymous MQTT 3.1.1: CONNACK 5');
    assert.equal(await mqttRefusal(b.mqttUrl, { protocolVersion: 5 }), 0x87, 'anonymous MQTT 5: CONNACK 0x87');

    // The right password still works in both protocols.
    const s = await stomp(b.url, { login: 'alice', passcode: pw('alice') });
    await stompRoundTrip(s, `/topic/${uniq('ok')}`);
    const m = await mqttc(b.mqttUrl, { protocolVersion: 4, username: 'alice', password: pw('alice') });
    await mqttRoundTrip(m, uniq('ok'));

    await nb.flowing();
    await nb.stop();
  });
});

describe('brute force: a source that fails too often is banned (STOMP.js, MQTT.js)', () => {
  const BAN_AFTER = 5;
  let b;
  before(async () => {
    const env = await secureEnv({ pki: false });
    await env.write('passwd', passwordFile(['alice', 'bob']));
    b = await startSecureBroker(env, {
      password_file: env.path('passwd'),
      auth: { ban_after: BAN_AFTER, ban_window: '1m', ban_time: '3s', failure_delay: '1ms', failure_delay_max: '1ms' },
    });
  }, { timeout: 60000 });
  afterEach(mqttCleanup);

  test('after ban_after failures even the right password is refused until ban_time passed; connected clients keep flowing', T, async () => {
    const nb = await neighbours(b, { username: 'bob', password: pw('bob') }, { login: 'bob', passcode: pw('bob') }, 'ban');
    for (let i = 0; i < BAN_AFTER; i++) {
      assert.equal(await mqttRefusal(b.mqttUrl, { protocolVersion: 5, username: 'alice', password: `guess-${i}` }), 0x86, `guess ${i}`);
    }
    const alice = { username: 'alice', password: pw('alice') };
    assert.equal(await mqttRefusal(b.mqttUrl, { protocolVersion: 5, ...alice }), 0x8a, 'MQTT 5 while banned: CONNACK 0x8A (banned)');
    assert.equal(await mqttRefusal(b.mqttUrl, { protocolVersion: 4, ...alice }), 5, 'MQTT 3.1.1 while banned: CONNACK 5');
    const err = await stompRefusal(b.url, { login: 'alice', passcode: pw('alice') });
    assert.equal(err.headers.message, 'access refused', 'STOMP while banned');
    // The clients connected before the ban are not touched.
    await nb.flowing();
    // The ban ends (ban_time 3s): the right password works again.
    const back = await waitFor(() => mqttc(b.mqttUrl, { protocolVersion: 5, ...alice }).catch(() => null), 15000,
      'the ban to end', { interval: 500 });
    await mqttRoundTrip(back, uniq('after-ban'));
    await nb.stop();
  });
});

describe('JWT HS256 (STOMP.js, MQTT.js)', () => {
  const AUD = 'duplex-test';
  const ISS = 'duplex-tests';
  const secret = crypto.randomBytes(32).toString('hex');
  const claims = (sub, extra = {}) => ({ sub, aud: AUD, iss: ISS, iat: nowSec(), exp: nowSec() + 3600, ...extra });
  const tok = (sub, extra, opts = {}) => signJwt(claims(sub, extra), { key: secret, ...opts });
  let env;
  let b;
  before(async () => {
    env = await secureEnv({ pki: false });
    await env.write('jwt.secret', secret);
    b = await startSecureBroker(env, {
      jwt: { secret_file: env.path('jwt.secret'), audience: AUD, issuer: ISS, leeway: '0s' },
      // Only the user's own topics: a round trip proves the token's sub is the user.
      acl: [{ access: 'allow', action: 'all', topic: 'users/%u/#' }],
      auth: FAST_AUTH,
    });
  }, { timeout: 60000 });
  afterEach(mqttCleanup);

  const nbOpts = () => {
    const t = tok('nb');
    return [{ username: 'nb', password: t }, { login: 'nb', passcode: t }];
  };

  test('a valid token logs in as STOMP passcode, MQTT password and access_token', T, async () => {
    const s = await stomp(b.url, { login: 'tok-a', passcode: tok('tok-a') });
    await stompRoundTrip(s, '/topic/users/tok-a/x');
    for (const v of [4, 5]) {
      const m = await mqttc(b.mqttUrl, { protocolVersion: v, username: 'tok-b', password: tok('tok-b') });
      await mqttRoundTrip(m, `users/tok-b/v${v}`);
    }
    // Browsers cannot set headers: the token in the URL, no login at all.
    const qs = await stomp(`${b.url}?access_token=${tok('tok-c')}`);
    await stompRoundTrip(qs, '/topic/users/tok-c/x');
    const qm = await mqttc(`${b.mqttUrl}?access_token=${tok('tok-d')}`, { protocolVersion: 5 });
    await mqttRoundTrip(qm, 'users/tok-d/x');
  });

  test('expired, forged, wrong-audience, wrong-issuer, not-yet-valid and alg:none tokens are refused; a neighbour keeps flowing', T, async () => {
    const [nm, ns] = nbOpts();
    const nb = await neighbours(b, nm, ns, 'users/nb');
    const bad = {
      expired: tok('eve', { iat: nowSec() - 7200, exp: nowSec() - 3600 }),
      // Within the default 30 s leeway: refused because leeway = "0s" means none.
      'expired 10 s ago (leeway 0s)': tok('eve', { iat: nowSec() - 3600, exp: nowSec() - 10 }),
      forged: tok('eve', {}, { key: crypto.randomBytes(32).toString('hex') }),
      'wrong audience': tok('eve', { aud: 'another-service' }),
      'wrong issuer': tok('eve', { iss: 'someone-else' }),
      'not yet valid': tok('eve', { nbf: nowSec() + 600 }),
      'alg none': tok('eve', {}, { alg: 'none' }),
    };
    for (const [what, t] of Object.entries(bad)) {
      const err = await stompRefusal(b.url, { login: 'eve', passcode: t });
      assert.equal(err.headers.message, 'access refused', `STOMP passcode, ${what} token`);
      assert.equal(await mqttRefusal(b.mqttUrl, { protocolVersion: 4, username: 'eve', password: t }), 4, `MQTT 3.1.1, ${what} token`);
      assert.equal(await mqttRefusal(b.mqttUrl, { protocolVersion: 5, username: 'eve', password: t }), 0x86, `MQTT 5, ${what} token`);
    }
    const err = await stompRefusal(`${b.url}?access_token=${bad.expired}`);
    assert.equal(err.headers.message, 'access refused', 'STOMP access_token, expired token');
    assert.equal(await mqttRefusal(`${b.mqttUrl}?access_token=${bad.forged}`, { protocolVersion: 5 }), 0x86, 'MQTT 5 access_token, forged token');
    await nb.flowing();
    await nb.stop();
  });

  test('a token expiring mid-session closes STOMP with ERROR and MQTT 5 with DISCONNECT 0xA0; a neighbour keeps flowing', T, async () => {
    const [nm, ns] = nbOpts();
    const nb = await neighbours(b, nm, ns, 'users/nb');
    const exp = nowSec() + 5; // room for three logins and round trips on a loaded machine
    const t = tok('short', { exp });
    const s = await stomp(b.url, { login: 'short', passcode: t });
    const m5 = await mqttc(b.mqttUrl, { protocolVersion: 5, username: 'short', password: t });
    const m4 = await mqttc(b.mqttUrl, { protocolVersion: 4, username: 'short', password: t });
    // Working until the token expires.
    await stompRoundTrip(s, '/topic/users/short/s');
    await mqttRoundTrip(m5, 'users/short/m5');
    await mqttRoundTrip(m4, 'users/short/m4');

    await waitFor(() => s.errors.length > 0 && s.closes.length > 0 && m5.closed && m4.closed, 15000,
      'the expiring connections to be closed',
      { describe: () => `stomp errors=${s.errors.length} closes=${s.closes.length}; mqtt5 ${m5.describe()}; mqtt4 ${m4.describe()}` });
    assert.equal(s.errors[0].headers.message, 'credential expired', 'STOMP ERROR message');
    assert.deepEqual(m5.disconnects.map((d) => d.reasonCode), [0xa0], 'MQTT 5 DISCONNECT reason (Maximum connect time)');
    for (const [what, at] of [['STOMP', s.closes[0].at], ['MQTT 5', m5.closedAt], ['MQTT 3.1.1', m4.closedAt]]) {
      assert.ok(at >= exp * 1000 - 1000, `${what} closed ${exp * 1000 - at} ms before the token's exp`);
    }
    await nb.flowing();
    await nb.stop();
  });
  test('rules in the token\'s acl claim decide first; the configured rules decide what they leave open', T, async () => {
    const acl = [
      { permission: 'allow', action: 'all', topic: 'extra/%u/#' },
      { permission: 'deny', action: 'all', topic: 'users/claimy/private/#' },
    ];
    const t = tok('claimy', { acl });
    const m = await mqttc(b.mqttUrl, { protocolVersion: 5, username: 'claimy', password: t });
    await mqttRoundTrip(m, 'extra/claimy/x'); // allowed by the token only
    assert.equal(await subackCode(m, 'users/claimy/private/#', 1), 0x87, 'the token denies what the config allows');
    assert.equal(await pubackCode(m, 'users/claimy/private/x', 'no', 1), 0x87, 'the token denies what the config allows');
    await mqttRoundTrip(m, 'users/claimy/open'); // the token says nothing: the config allows
    assert.equal(await subackCode(m, 'extra/other/#', 1), 0x87, "%u in a token rule is the token's user");
    const s = await stomp(b.url, { login: 'claimy', passcode: t });
    await stompRoundTrip(s, '/topic/extra/claimy/s');
    // A token without the claim gets only the configured rules.
    const plain = await mqttc(b.mqttUrl, { protocolVersion: 5, username: 'plain', password: tok('plain') });
    assert.equal(await subackCode(plain, 'extra/plain/#', 1), 0x87, 'no acl claim, no extra topics');
  });
});

describe('JWT RS256 (STOMP.js, MQTT.js)', () => {
  const AUD = 'duplex-rs';
  const keys = rsaKeys();
  const other = rsaKeys();
  const claims = (sub, extra = {}) => ({ sub, aud: AUD, iat: nowSec(), exp: nowSec() + 3600, ...extra });
  let b;
  before(async () => {
    const env = await secureEnv({ pki: false });
    await env.write('jwt.pub', keys.publicPem);
    b = await startSecureBroker(env, {
      jwt: { public_key_file: env.path('jwt.pub'), audience: AUD },
      auth: FAST_AUTH,
    });
  }, { timeout: 60000 });
  afterEach(mqttCleanup);

  test('RS256 tokens log in; another key, HS256 with the public key as secret and alg:none are refused; a neighbour keeps flowing', T, async () => {
    const nt = signJwt(claims('nb'), { alg: 'RS256', key: keys.privateKey });
    const nb = await neighbours(b, { username: 'nb', password: nt }, { login: 'nb', passcode: nt }, 'rs');

    const good = signJwt(claims('rs-user'), { alg: 'RS256', key: keys.privateKey });
    const s = await stomp(b.url, { login: 'rs-user', passcode: good });
    await stompRoundTrip(s, `/topic/rs/${uniq('s')}`);
    const m = await mqttc(b.mqttUrl, { protocolVersion: 5, username: 'rs-user', password: good });
    await mqttRoundTrip(m, `rs/${uniq('m')}`);
    const q = await mqttc(`${b.mqttUrl}?access_token=${good}`, { protocolVersion: 4 });
    await mqttRoundTrip(q, `rs/${uniq('q')}`);

    const bad = {
      'signed by another key': signJwt(claims('eve'), { alg: 'RS256', key: other.privateKey }),
      'HS256 keyed with the public key': signJwt(claims('eve'), { alg: 'HS256', key: keys.publicPem }),
      'alg none': signJwt(claims('eve'), { alg: 'none' }),
      expired: signJwt(claims('eve', { exp: nowSec() - 3600 }), { alg: 'RS256', key: keys.privateKey }),
    };
    for (const [what, t] of Object.entries(bad)) {
      const err = await stompRefusal(b.url, { login: 'eve', passcode: t });
      assert.equal(err.headers.message, 'access refused', `STOMP, ${what}`);
      assert.equal(await mqttRefusal(b.mqttUrl, { protocolVersion: 5, username: 'eve', password: t }), 0x86, `MQTT 5, ${what}`);
      assert.equal(await mqttRefusal(b.mqttUrl, { protocolVersion: 4, username: 'eve', password: t }), 4, `MQTT 3.1.1, ${what}`);
    }
    await nb.flowing();
    await nb.stop();
  });
});

describe('client id and durable subscription ownership (MQTT.js, STOMP.js)', () => {
  let b;
  before(async () => {
    const env = await secureEnv({ pki: false });
    await env.write('passwd', passwordFile(['alice', 'bob', 'carol']));
    b = await startSecureBroker(env, { password_file: env.path('passwd'), auth: FAST_AUTH });
  }, { timeout: 60000 });
  afterEach(mqttCleanup);

  test("bob presenting alice's client id is refused, never handed or kicks her session; alice gets her queued messages", T, async () => {
    const N = 10;
    const nb = await neighbours(b, { username: 'carol', password: pw('carol') }, { login: 'carol', passcode: pw('carol') }, 'hijack');
    const clientId = uniq('alice-phone');
    const inbox = uniq('inbox/alice');
    const aliceOpts = { clientId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 }, username: 'alice', password: pw('alice') };
    const bobTries = [
      ['v5 resume', { protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 3600 } }, 0x85],
      ['v5 clean start', { protocolVersion: 5, clean: true }, 0x85],
      ['3.1.1 clean session 0', { protocolVersion: 4, clean: false }, 2],
      ['3.1.1 clean session 1', { protocolVersion: 4, clean: true }, 2],
    ];
    const tryBob = async () => {
      for (const [what, opts, code] of bobTries) {
        assert.equal(await mqttRefusal(b.mqttUrl, { clientId, username: 'bob', password: pw('bob'), ...opts }), code, `bob, ${what}`);
      }
    };

    // While alice is connected: bob neither takes over nor kicks her.
    let alice = await mqttc(b.mqttUrl, aliceOpts);
    await alice.client.subscribeAsync(inbox, { qos: 1 });
    await tryBob();
    assert.equal(alice.closed, false, "bob's attempts closed alice's connection");
    await mqttRoundTrip(alice, uniq('alice/live'));
    await alice.end();

    // While alice is away: her messages wait in her session.
    const pub = await mqttc(b.mqttUrl, { protocolVersion: 5, username: 'carol', password: pw('carol') });
    for (let i = 0; i < N; i++) await pub.client.publishAsync(inbox, `q${i}`, { qos: 1 });
    await tryBob();

    alice = await mqttc(b.mqttUrl, aliceOpts);
    assert.equal(alice.connack.sessionPresent, true, "alice's session is gone");
    const got = await alice.waitMessages(N, (m) => m.topic === inbox, 5000);
    assert.deepEqual(got.map((m) => m.payload.toString()), Array.from({ length: N }, (_, i) => `q${i}`));
    await nb.flowing();
    await nb.stop();
  });

  for (const [dialect, connectHeaders, subHeaders] of [
    ['ActiveMQ (client-id + activemq.subscriptionName)', (cid) => ({ 'client-id': cid }), () => ({ 'activemq.subscriptionName': 'inbox' })],
    ['RabbitMQ (durable:true, named by the subscription id)', () => ({}), (cid) => ({ id: cid, durable: 'true', 'auto-delete': 'false' })],
  ]) {
    test(`STOMP.js durable subscription, ${dialect}: bob reusing alice's names gets none of her messages; hers keeps them`, T, async () => {
      const N = 10;
      const nb = await neighbours(b, { username: 'carol', password: pw('carol') }, { login: 'carol', passcode: pw('carol') }, 'hijack');
      const cid = uniq('alice-app');
      const dest = `/topic/${uniq('alice-feed')}`;
      const aliceLogin = { login: 'alice', passcode: pw('alice'), connectHeaders: connectHeaders(cid) };
      const sub = { ...subHeaders(cid), ack: 'client-individual' };
      const want = Array.from({ length: N }, (_, i) => `d${i}`);

      let alice = await stomp(b.url, aliceLogin);
      await alice.subscribe(dest, sub);
      await alice.disconnect();
      const carol = await stomp(b.url, { login: 'carol', passcode: pw('carol') });
      for (let i = 0; i < N; i++) await carol.publishWithReceipt({ destination: dest, body: want[i] });

      // bob uses the same client-id and subscription name (STOMP.js's
      // default ids sub-0, sub-1... make that common between users). He may
      // be refused (at CONNECT or SUBSCRIBE) or get a durable subscription
      // of his own; never alice's: a marker published after his
      // subscription is the first message he gets.
      const bobLogin = { login: 'bob', passcode: pw('bob'), connectHeaders: connectHeaders(cid) };
      let bob = null;
      try {
        bob = await stomp(b.url, bobLogin);
      } catch (e) {
        if (!/STOMP ERROR before CONNECTED/.test(e.message)) throw e;
        const err = await stompRefusal(b.url, bobLogin);
        assert.equal(err.headers.message, 'access refused', 'bob refused at CONNECT');
      }
      if (bob) {
        const got = [];
        const receipt = uniq('rcpt');
        let receipted = false;
        bob.client.watchForReceipt(receipt, () => { receipted = true; });
        bob.client.subscribe(dest, (m) => { got.push(m.body); m.ack(); }, { ...sub, receipt });
        await waitFor(() => receipted || bob.errors.length > 0, 5000, "bob's SUBSCRIBE answered");
        if (receipted) {
          await carol.publishWithReceipt({ destination: dest, body: 'marker' });
          want.push('marker'); // alice's subscription gets it too
          await waitFor(() => got.length > 0, 5000, 'the marker at bob', { describe: () => JSON.stringify(got) });
          assert.equal(got[0], 'marker', `bob got alice's stored messages: ${JSON.stringify(got.slice(0, 5))}`);
        } else {
          assert.ok(['access refused', 'not authorized'].includes(bob.errors[0].headers.message), `bob got ERROR ${bob.errors[0].headers.message}`);
        }
        await bob.dispose();
      }

      alice = await stomp(b.url, aliceLogin);
      const back = await alice.subscribe(dest, sub, { receipt: false, onMessage: (m) => m.ack() });
      await back.waitCount(want.length, 5000);
      assert.deepEqual(back.bodies(), want, "alice's durable messages");
      await nb.flowing();
      await nb.stop();
    });
  }
});

describe('anonymous sessions belong to their source address (behind a trusted proxy)', () => {
  let b;
  before(async () => {
    const env = await secureEnv({ pki: false });
    b = await startSecureBroker(env, {
      allow_anonymous: true,
      // The test's connections come through "a proxy" on 127.0.0.1 that
      // says which address each client has.
      web: { trusted_proxies: ['127.0.0.1'] },
      auth: FAST_AUTH,
    });
  }, { timeout: 60000 });
  afterEach(mqttCleanup);

  test("an anonymous client from another address cannot resume or take over an anonymous session; its owner gets her messages", T, async () => {
    const N = 10;
    const via = (addr) => ({ wsOptions: { headers: { 'X-Forwarded-For': addr } } });
    const nb = await neighbours(b, {}, {}, 'anon');
    const clientId = uniq('anon-dev');
    const topic = uniq('anon/inbox');
    const ownerOpts = { clientId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 }, ...via('203.0.113.5') };
    let owner = await mqttc(b.mqttUrl, ownerOpts);
    await owner.client.subscribeAsync(topic, { qos: 1 });
    const tries = async () => {
      assert.equal(await mqttRefusal(b.mqttUrl, { ...ownerOpts, ...via('198.51.100.7') }), 0x85, 'v5 from another address');
      assert.equal(await mqttRefusal(b.mqttUrl, { clientId, clean: false, protocolVersion: 4, ...via('198.51.100.7') }), 2, '3.1.1 from another address');
    };
    await tries();
    assert.equal(owner.closed, false, 'the attempt from another address closed the owner');
    await owner.end();
    const pub = await mqttc(b.mqttUrl, { protocolVersion: 5, ...via('198.51.100.20') });
    for (let i = 0; i < N; i++) await pub.client.publishAsync(topic, `a${i}`, { qos: 1 });
    await tries();
    owner = await mqttc(b.mqttUrl, ownerOpts);
    assert.equal(owner.connack.sessionPresent, true, "the owner's session is gone");
    const got = await owner.waitMessages(N, (m) => m.topic === topic);
    assert.deepEqual(got.map((m) => m.payload.toString()), Array.from({ length: N }, (_, i) => `a${i}`));
    await nb.flowing();
    await nb.stop();
  });
});
