// TLS with real clients and a test CA made by `go run ./test/certgen`:
// STOMP.js and MQTT.js over wss://, MQTT.js over TLS (mqtts://), STOMP over
// the TLS TCP listener, client certificates (the CN is the user; a
// certificate from another CA is refused at the handshake), and a SIGHUP
// reload of users, ACL file and certificate with live connections kept.
// Each next to a well-behaved neighbour that keeps exchanging messages
// without loss.

import assert from 'node:assert/strict';
import tls from 'node:tls';
import { after, afterEach, before, describe, test } from 'node:test';

import { buildFrame, FrameParser, uniq, waitFor, withTimeout } from './harness.js';
import { mqttCleanup } from './mqtt-harness.js';
import {
  FAST_AUTH,
  duplexPasswd,
  mqttRefusal,
  mqttRoundTrip,
  mqttc,
  neighbour,
  passwordFile,
  peerFingerprint,
  pw,
  removeAllEnvs,
  secureEnv,
  startSecureBroker,
  stomp,
  stompRefusal,
  stompRoundTrip,
  stopAllBrokers,
  subackCode,
  tlsOpts,
  tryWebSocket,
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

const ACL = `# Mosquitto acl_file syntax
user alice
topic readwrite alice/#
topic readwrite shared/#

user bob
topic readwrite shared/#

user device-1
topic readwrite devices/device-1/#
`;

/** A STOMP frame exchange over a raw TLS socket (the stomp-tls listener). */
async function rawStompTls(port, ca, headers) {
  const frames = [];
  const parser = new FrameParser({ onFrame: (f) => frames.push(f) });
  const sock = tls.connect({ host: '127.0.0.1', port, ca });
  sock.on('data', (d) => parser.push(d, false));
  sock.on('error', () => {});
  await withTimeout(new Promise((resolve, reject) => {
    sock.once('secureConnect', resolve);
    sock.once('error', reject);
  }), 5000, 'STOMP TLS handshake');
  sock.write(buildFrame('CONNECT', { 'accept-version': '1.2', host: '127.0.0.1', ...headers }));
  const f = await waitFor(() => frames[0], 5000, 'CONNECTED or ERROR over stomp-tls');
  return { sock, frames, first: f, protocol: sock.getProtocol() };
}

describe('TLS listeners, client certificates and SIGHUP reload (STOMP.js, MQTT.js)', () => {
  let env;
  let b;
  before(async () => {
    env = await secureEnv();
    await env.write('passwd', passwordFile(['alice', 'bob', 'carol']));
    await env.write('acl', ACL);
    // The served certificate lives outside pki/ so the reload test can replace it.
    await env.copy('pki/server.pem', 'server.pem');
    await env.copy('pki/server-key.pem', 'server-key.pem');
    b = await startSecureBroker(env, {
      password_file: env.path('passwd'),
      acl_file: env.path('acl'),
      tls: {
        cert_file: env.path('server.pem'),
        key_file: env.path('server-key.pem'),
        client_ca_file: env.path('pki/ca.pem'),
        client_certs: 'optional',
        cert_username: 'cn',
        wss_addr: '127.0.0.1:0',
        mqtt_tls_addr: '127.0.0.1:0',
        stomp_tls_addr: '127.0.0.1:0',
      },
      auth: FAST_AUTH,
    });
  }, { timeout: 60000 });
  afterEach(mqttCleanup);

  const wss = () => tlsOpts(env);
  const aliceStomp = () => ({ login: 'alice', passcode: pw('alice'), tls: wss() });
  const bobMqtt = (v = 5) => ({ protocolVersion: v, username: 'bob', password: pw('bob'), tls: wss() });

  /** alice on STOMP.js wss:// and bob on MQTT.js wss://, both well-behaved. */
  async function neighbours() {
    const s = await neighbour('stomp', () => stomp(b.wssUrl, aliceStomp()), `/topic/alice/${uniq('nb')}`);
    const m = await neighbour('mqtt', () => mqttc(b.wssMqttUrl, bobMqtt()), `shared/${uniq('nb')}`);
    return {
      stompHandle: s.handle,
      flowing: () => Promise.all([s.flowing(), m.flowing()]),
      stop: () => Promise.all([s.stop(), m.stop()]),
    };
  }

  test('wss:// end to end: STOMP.js <-> MQTT.js, MQTT.js over mqtts://, STOMP over the TLS TCP listener', T, async () => {
    const nb = await neighbours();
    const s = await stomp(b.wssUrl, aliceStomp());
    assert.match(s.ws._socket.getProtocol(), /^TLSv1\.[23]$/, 'TLS version');
    const m = await mqttc(b.wssMqttUrl, bobMqtt(5));
    const t = await mqttc(`mqtts://127.0.0.1:${b.mqttTlsPort}`, bobMqtt(4));

    // MQTT -> STOMP
    const topic = `shared/${uniq('m2s')}`;
    const sub = await s.subscribe(`/topic/${topic}`);
    await m.client.publishAsync(topic, 'from mqtt wss', { qos: 1 });
    await t.client.publishAsync(topic, 'from mqtts', { qos: 1 });
    await sub.waitCount(2);
    assert.deepEqual(sub.bodies().sort(), ['from mqtt wss', 'from mqtts']);

    // STOMP -> MQTT (wss and mqtts)
    const back = `shared/${uniq('s2m')}`;
    await m.client.subscribeAsync(back, { qos: 1 });
    await t.client.subscribeAsync(back, { qos: 1 });
    await s.publishWithReceipt({ destination: `/topic/${back}`, body: 'from stomp wss' });
    for (const h of [m, t]) {
      const [x] = await h.waitMessages(1, (msg) => msg.topic === back);
      assert.equal(x.payload.toString(), 'from stomp wss');
    }

    // STOMP over TLS TCP: login works, a wrong password gets ERROR.
    const ok = await rawStompTls(b.stompTlsPort, env.pem.ca, { login: 'alice', passcode: pw('alice') });
    assert.equal(ok.first.command, 'CONNECTED', `stomp-tls: ${ok.first.command} ${JSON.stringify(ok.first.headers)}`);
    assert.match(ok.protocol, /^TLSv1\.[23]$/);
    ok.sock.destroy();
    const bad = await rawStompTls(b.stompTlsPort, env.pem.ca, { login: 'alice', passcode: 'nope' });
    assert.equal(bad.first.command, 'ERROR');
    assert.equal(bad.first.headers.message, 'access refused');
    bad.sock.destroy();

    await nb.flowing();
    await nb.stop();
  });

  test('a client certificate logs in as its CN (device-1); one from another CA is refused at the TLS handshake', T, async () => {
    const nb = await neighbours();

    // MQTT.js wss:// with the certificate and no user name: the ACL rules
    // of user device-1 apply, alice's do not.
    const m = await mqttc(b.wssMqttUrl, { protocolVersion: 4, tls: tlsOpts(env, 'client') });
    await mqttRoundTrip(m, 'devices/device-1/temp');
    assert.equal(await subackCode(m, 'alice/#', 1), 0x80, "device-1 got alice's topics");
    const t = await mqttc(`mqtts://127.0.0.1:${b.mqttTlsPort}`, { protocolVersion: 5, tls: tlsOpts(env, 'client') });
    await mqttRoundTrip(t, 'devices/device-1/tls');
    const s = await stomp(b.wssUrl, { tls: tlsOpts(env, 'client') });
    await stompRoundTrip(s, '/topic/devices/device-1/stomp');

    // Without a certificate (optional) the TLS handshake and the upgrade
    // succeed; with one from the other CA they do not even get that far.
    const plain = await tryWebSocket(b.wssMqttUrl, ['mqtt'], tlsOpts(env));
    assert.equal(plain.opened, true, `no certificate: ${plain.error?.message}`);
    plain.ws.terminate();
    const bad = await tryWebSocket(b.wssMqttUrl, ['mqtt'], tlsOpts(env, 'untrusted'));
    assert.equal(bad.opened, false, 'a certificate from an untrusted CA got a WebSocket');
    bad.ws?.terminate();
    await assert.rejects(
      mqttc(`mqtts://127.0.0.1:${b.mqttTlsPort}`, { protocolVersion: 5, tls: tlsOpts(env, 'untrusted'), timeout: 3000 }),
      (err) => typeof err.code !== 'number', 'mqtts with an untrusted certificate got a CONNACK');
    await nb.flowing();
    await nb.stop();
  });

  test('SIGHUP reloads users, ACL file and certificate; live connections keep flowing', T, async () => {
    const nb = await neighbours();
    const davePass = { login: 'dave', passcode: pw('dave'), tls: wss() };
    const daveMqtt = { protocolVersion: 5, username: 'dave', password: pw('dave'), tls: wss() };
    const before1 = await stompRefusal(b.wssUrl, davePass);
    assert.equal(before1.headers.message, 'access refused', 'dave before the reload');
    assert.equal(await mqttRefusal(b.wssMqttUrl, daveMqtt), 0x86, 'dave before the reload');
    const oldFp = await env.fingerprint('pki/server.pem');
    const newFp = await env.fingerprint('pki/server2.pem');
    assert.notEqual(oldFp, newFp);
    assert.equal(await peerFingerprint(b.wssPort, wss()), oldFp, 'served certificate before the reload');
    assert.equal(nb.stompHandle.ws._socket.getPeerX509Certificate()?.fingerprint256, oldFp, 'certificate of the live connection');

    // dave added (a cheap precomputed hash: `duplex passwd -b` hashes at
    // cost 10, slow under -race), carol removed with `duplex passwd -D`, a
    // rule for dave, a new certificate.
    await env.append('passwd', passwordFile(['dave']));
    await duplexPasswd('-D', env.path('passwd'), 'carol');
    await env.append('acl', '\nuser dave\ntopic readwrite dave/#\n');
    await env.copy('pki/server2.pem', 'server.pem');
    await env.copy('pki/server2-key.pem', 'server-key.pem');
    await b.reload();

    const d = await stomp(b.wssUrl, davePass);
    await stompRoundTrip(d, '/topic/dave/s');
    const dm = await mqttc(b.wssMqttUrl, daveMqtt);
    await mqttRoundTrip(dm, 'dave/m');
    assert.equal(await subackCode(dm, 'alice/#', 1), 0x87, "dave got alice's topics");
    assert.equal(await mqttRefusal(b.wssMqttUrl, { protocolVersion: 5, username: 'carol', password: pw('carol'), tls: wss() }), 0x86,
      'carol was removed from the password file');

    for (const [what, port] of [['wss', b.wssPort], ['mqtt-tls', b.mqttTlsPort], ['stomp-tls', b.stompTlsPort]]) {
      assert.equal(await peerFingerprint(port, wss()), newFp, `${what}: a new handshake sees the new certificate`);
    }
    // The connections made before the reload (on the old certificate,
    // checked above) are still up and flow. (Node stops reporting the peer
    // certificate of a long-lived TLS 1.3 socket, so it is read only once.)
    assert.deepEqual(nb.stompHandle.closes, [], 'the STOMP.js wss:// connection made before the reload was closed');
    await nb.flowing();
    await nb.stop();
  });
});

describe('wss only (addr = "")', () => {
  afterEach(mqttCleanup);

  test('only the wss line is printed, STOMP.js and MQTT.js work over wss://', T, async () => {
    const env = await secureEnv();
    await env.write('passwd', passwordFile(['alice']));
    const b = await startSecureBroker(env, {
      addr: '',
      password_file: env.path('passwd'),
      tls: { cert_file: env.path('pki/server.pem'), key_file: env.path('pki/server-key.pem'), wss_addr: '127.0.0.1:0' },
      auth: FAST_AUTH,
    });
    assert.ok(b.wssUrl, 'no wss line');
    assert.equal(b.url, undefined, `a plain listener line was printed: ${JSON.stringify(b.lines)}`);
    const s = await stomp(b.wssUrl, { login: 'alice', passcode: pw('alice'), tls: tlsOpts(env) });
    const m = await mqttc(b.wssMqttUrl, { protocolVersion: 5, username: 'alice', password: pw('alice'), tls: tlsOpts(env) });
    const topic = uniq('only-wss');
    const sub = await s.subscribe(`/topic/${topic}`);
    await m.client.subscribeAsync(topic, { qos: 1 });
    await m.client.publishAsync(topic, 'hello', { qos: 1 });
    await sub.waitCount(1);
    await m.waitMessages(1, (x) => x.topic === topic);
    assert.deepEqual(sub.bodies(), ['hello']);
    // The broker stops with the others in after() (in parallel).
  });
});

describe('client certificates required (tls.client_certs = "require")', () => {
  afterEach(mqttCleanup);

  test('no certificate or one from another CA: no TLS session; the CA\'s certificate logs in as device-1', T, async () => {
    const env = await secureEnv();
    await env.write('acl', ACL);
    const b = await startSecureBroker(env, {
      acl_file: env.path('acl'),
      tls: {
        cert_file: env.path('pki/server.pem'),
        key_file: env.path('pki/server-key.pem'),
        client_ca_file: env.path('pki/ca.pem'),
        client_certs: 'require',
        wss_addr: '127.0.0.1:0',
        mqtt_tls_addr: '127.0.0.1:0',
      },
      auth: FAST_AUTH,
    });
    const nb = await neighbour('mqtt', () => mqttc(b.wssMqttUrl, { protocolVersion: 5, tls: tlsOpts(env, 'client') }), `devices/device-1/${uniq('nb')}`);
    for (const cert of [undefined, 'untrusted']) {
      const r = await tryWebSocket(b.wssMqttUrl, ['mqtt'], tlsOpts(env, cert));
      assert.equal(r.opened, false, `wss with ${cert ?? 'no'} certificate got a WebSocket`);
      r.ws?.terminate();
      await assert.rejects(
        mqttc(`mqtts://127.0.0.1:${b.mqttTlsPort}`, { protocolVersion: 5, tls: tlsOpts(env, cert), timeout: 3000 }),
        (err) => typeof err.code !== 'number', `mqtts with ${cert ?? 'no'} certificate got a CONNACK`);
    }
    const s = await stomp(b.wssUrl, { tls: tlsOpts(env, 'client') });
    await stompRoundTrip(s, '/topic/devices/device-1/s');
    const t = await mqttc(`mqtts://127.0.0.1:${b.mqttTlsPort}`, { protocolVersion: 4, tls: tlsOpts(env, 'client') });
    await mqttRoundTrip(t, 'devices/device-1/t');
    assert.equal(await subackCode(t, 'alice/#', 1), 0x80, "device-1 got alice's topics");
    await nb.flowing();
    await nb.stop();
    // The broker stops with the others in after() (in parallel).
  });
});

describe('the user name from a certificate SAN (tls.cert_username = "san")', () => {
  afterEach(mqttCleanup);

  test('the DNS SAN device-1.devices.test is the user, not the CN', T, async () => {
    const env = await secureEnv();
    await env.write('acl', 'user device-1.devices.test\ntopic readwrite san/#\n\nuser device-1\ntopic readwrite cn/#\n');
    const b = await startSecureBroker(env, {
      acl_file: env.path('acl'),
      tls: {
        cert_file: env.path('pki/server.pem'),
        key_file: env.path('pki/server-key.pem'),
        client_ca_file: env.path('pki/ca.pem'),
        client_certs: 'optional',
        cert_username: 'san',
        wss_addr: '127.0.0.1:0',
      },
      auth: FAST_AUTH,
    });
    const m = await mqttc(b.wssMqttUrl, { protocolVersion: 5, tls: tlsOpts(env, 'client') });
    await mqttRoundTrip(m, 'san/x');
    assert.equal(await subackCode(m, 'cn/#', 1), 0x87, 'the CN was taken as the user');
    const s = await stomp(b.wssUrl, { tls: tlsOpts(env, 'client') });
    await stompRoundTrip(s, '/topic/san/s');
    // The broker stops with the others in after() (in parallel).
  });
});
