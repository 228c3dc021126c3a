// Helpers for the security interop tests (security-*.test.js).
//
// - secureEnv(): a temp folder for password files, ACL files and JWT keys,
//   with a test PKI made by `go run ./test/certgen` (once per process);
//   env.path(name), env.write(name, text), env.pem.ca, ...
// - startSecureBroker(env, config): runs the broker with a generated TOML
//   config (`-config FILE`) and parses every startup line of the plan into
//   {url, stompUrl, mqttUrl, wssUrl, wssStompUrl, wssMqttUrl, wssPort,
//   mqttTlsPort, stompTlsPort, mqttTcpPort, stompTcpPort, adminUrl};
//   reload() (SIGHUP, then waits for "reload done"), waitStderr(re), stop().
// - signJwt(): HS256 / RS256 / none tokens with node:crypto.
// - stomp(), stompRefusal(), mqttc(), mqttRefusal(): STOMP.js and MQTT.js
//   over ws:// or wss:// (trusting the test CA, optionally with a client
//   certificate); subackCode(), pubackCode(), stompDenied(), round trips.
// - neighbour(): a well-behaved client that keeps publishing to itself
//   while a test misbehaves next to it; flowing() proves it still
//   exchanges messages, stop() asserts it lost, duplicated or reordered
//   nothing.
//
// Clients go through harness.js / mqtt-harness.js, so mqttCleanup() closes
// them (and stops the neighbours); stopAllBrokers() and removeAllEnvs()
// clean up the rest (each test file calls them in a top-level after()).

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { appendFile, copyFile, cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';

import { WebSocket, brokerBinary, connectStomp, uniq, waitFor, withTimeout } from './harness.js';
import { connectMqtt } from './mqtt-harness.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../..');

// ---------------------------------------------------------------------------
// users

/**
 * bcrypt hashes (cost 4, so that logins stay fast under -race) of
 * `${user}-secret`, made with golang.org/x/crypto/bcrypt.
 */
export const HASHES = {
  alice: '$2a$04$FcrJRfkDRTMaSQsuWnUQFemoi8UpHX7o1V6oFso8t6iXl85D0Gr7C',
  bob: '$2a$04$7xsmpbjzfTxp1Ci7KC/T/.nBiAanz2mltrs1vh7wi9CW2bzKOZwbe',
  carol: '$2a$04$TllvSdL6AsFpqv9bnqX8l.T1mbRRpu60bbsz5rF5myP8amRVK9Q.6',
  dave: '$2a$04$.BQIUYyPEYlEhNP5NXJ6nuWpyd0nOxC7S7utEKKV77rT2CPiE7y5.',
  admin: '$2a$04$XVof4ywuHHtnwsJ5W4ooMeTNw/imvryFm9Ds4S6RHcSv6ayhZvbLu',
};

/** The password of a user in HASHES. */
export const pw = (user) => `${user}-secret`;

/** Password file text (`user:bcrypt-hash` lines, Mosquitto's layout). */
export function passwordFile(users) {
  return users.map((u) => `${u}:${HASHES[u]}\n`).join('');
}

// ---------------------------------------------------------------------------
// temp folder, PKI

function run(cmd, args, opts) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 60000, ...opts }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

const envs = new Set();
let pkiDir; // one PKI per test process (certgen takes a second), copied into each env

async function generatePki() {
  if (!pkiDir) {
    pkiDir = mkdtemp(path.join(os.tmpdir(), 'duplex-sec-pki-')).then(async (d) => {
      await run('go', ['run', './test/certgen', d], { cwd: repoRoot });
      return d;
    });
  }
  return pkiDir;
}

/**
 * A temp folder, with (unless pki is false) a test PKI in pki/ made by
 * `go run ./test/certgen` (once per test process). Returns {dir,
 * path(name), write(name, text), append(name, text), copy(from, to),
 * read(name), pem: {ca, client, clientKey, untrusted, untrustedKey},
 * fingerprint(name), remove()}.
 */
export async function secureEnv({ pki = true } = {}) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'duplex-sec-'));
  const env = {
    dir,
    path: (name) => path.join(dir, name),
    write: (name, text) => writeFile(path.join(dir, name), text),
    append: (name, text) => appendFile(path.join(dir, name), text),
    copy: (from, to) => copyFile(path.join(dir, from), path.join(dir, to)),
    read: (name) => readFile(path.join(dir, name), 'utf8'),
    /** SHA-256 fingerprint (node's format) of the certificate in file `name`. */
    fingerprint: async (name) => new crypto.X509Certificate(await readFile(path.join(dir, name))).fingerprint256,
    remove: () => rm(dir, { recursive: true, force: true }),
  };
  envs.add(env);
  if (!pki) return env;
  await cp(await generatePki(), path.join(dir, 'pki'), { recursive: true });
  const read = (f) => readFile(path.join(dir, 'pki', f), 'utf8');
  env.pem = {
    ca: await read('ca.pem'),
    client: await read('client.pem'),
    clientKey: await read('client-key.pem'),
    untrusted: await read('untrusted-client.pem'),
    untrustedKey: await read('untrusted-client-key.pem'),
  };
  return env;
}

/** Run `duplex passwd ARGS...` (the broker binary's subcommand); resolves to stdout. */
export function duplexPasswd(...args) {
  return run(brokerBinary(), ['passwd', ...args]);
}

// ---------------------------------------------------------------------------
// TOML

function tomlValue(v) {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(', ')}]`;
  throw new Error(`toml: unsupported value ${JSON.stringify(v)}`);
}

/**
 * A TOML document from a plain object: scalars and arrays of scalars as
 * keys, objects as [tables] (one level; their object values as dotted
 * sub-tables), arrays of objects as [[arrays of tables]].
 */
export function toToml(cfg) {
  const top = [];
  const rest = [];
  const table = (name, obj) => {
    const sub = [];
    rest.push(`\n[${name}]`);
    for (const [k, v] of Object.entries(obj)) {
      if (v === undefined) continue;
      if (v && typeof v === 'object' && !Array.isArray(v)) sub.push([`${name}.${k}`, v]);
      else rest.push(`${k} = ${tomlValue(v)}`);
    }
    for (const [n, o] of sub) table(n, o);
  };
  for (const [k, v] of Object.entries(cfg)) {
    if (v === undefined) continue;
    if (Array.isArray(v) && v.length > 0 && typeof v[0] === 'object') {
      for (const item of v) {
        rest.push(`\n[[${k}]]`);
        for (const [ik, iv] of Object.entries(item)) rest.push(`${ik} = ${tomlValue(iv)}`);
      }
    } else if (v && typeof v === 'object' && !Array.isArray(v)) {
      table(k, v);
    } else {
      top.push(`${k} = ${tomlValue(v)}`);
    }
  }
  return `${[...top, ...rest].join('\n')}\n`;
}

// ---------------------------------------------------------------------------
// broker

const LINE_RE = /^duplex (?:(wss|admin|mqtt-tcp|mqtt-tls|stomp-tcp|stomp-tls) )?listening on (\S+)\s*$/;

const liveBrokers = new Set();

/**
 * Stop every broker started by startSecureBroker (after hooks). Throws if
 * one did not exit with code 0 on SIGTERM (a data race report under
 * GORACE=halt_on_error=1, a panic, a hang), with its stderr tail.
 */
export async function stopAllBrokers() {
  const results = await Promise.all([...liveBrokers].map(async (b) => ({ b, r: await b.stop() })));
  const bad = results.filter(({ r }) => r && (r.code !== 0 || r.killed));
  if (bad.length > 0) {
    throw new Error(bad.map(({ b, r }) => `broker ${b.configFile} exited with code=${r.code} signal=${r.signal} killed=${r.killed}\n${b.stderr().slice(-3000)}`).join('\n'));
  }
}

/** Remove every temp folder made by secureEnv(). */
export async function removeAllEnvs() {
  const all = [...envs];
  envs.clear();
  await Promise.all(all.map((e) => e.remove()));
  if (pkiDir) {
    const d = await pkiDir.catch(() => undefined);
    pkiDir = undefined;
    if (d) await rm(d, { recursive: true, force: true });
  }
}

function splitHostPort(hp) {
  const i = hp.lastIndexOf(':');
  let host = hp.slice(0, i);
  if (host.startsWith('[')) host = host.slice(1, -1);
  return { host, port: Number(hp.slice(i + 1)) };
}

/**
 * Fast failure handling for tests: every test connects from 127.0.0.1, so
 * the brute-force delay and ban would otherwise slow or lock out the
 * well-behaved clients after a few deliberate failures.
 */
export const FAST_AUTH = { ban_after: 100000, failure_delay: '1ms', failure_delay_max: '1ms' };

/**
 * Start the broker with `-config <env.dir>/NAME.toml -data <tmp>`. config
 * is the TOML as an object (see toToml); addr defaults to 127.0.0.1:0 and
 * the TCP listeners to off. Resolves once every configured listener
 * printed its line:
 * {proc, configFile, lines, url, stompUrl, mqttUrl, wssUrl, wssStompUrl,
 * wssMqttUrl, wssPort, mqttTlsPort, stompTlsPort, mqttTcpPort,
 * stompTcpPort, adminUrl, stderr(), waitStderr(re, fromIndex), reload(),
 * stop()}.
 */
export async function startSecureBroker(env, config, { name = uniq('duplex'), startTimeout = 15000 } = {}) {
  const cfg = {
    addr: '127.0.0.1:0',
    stomp_tcp_addr: '',
    mqtt_tcp_addr: '',
    ...config,
  };
  const configFile = env.path(`${name}.toml`);
  await writeFile(configFile, toToml(cfg));
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'duplex-sec-data-'));
  const bin = brokerBinary();
  const args = ['-config', configFile, '-data', dataDir];

  const expected = new Set();
  if (cfg.addr) expected.add('');
  if (cfg.admin_addr) expected.add('admin');
  if (cfg.mqtt_tcp_addr) expected.add('mqtt-tcp');
  if (cfg.stomp_tcp_addr) expected.add('stomp-tcp');
  if (cfg.tls?.wss_addr) expected.add('wss');
  if (cfg.tls?.mqtt_tls_addr) expected.add('mqtt-tls');
  if (cfg.tls?.stomp_tls_addr) expected.add('stomp-tls');

  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const b = { proc, bin, args, configFile, dataDir, config: cfg, lines: [], listeners: {}, exited: false };
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c) => {
    stderr += c;
    if (stderr.length > 1 << 20) stderr = stderr.slice(-(1 << 19));
    if (process.env.DUPLEX_LOG) process.stderr.write(c);
  });
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      b.exited = true;
      b.exitCode = code;
      b.exitSignal = signal;
      resolve({ code, signal });
    });
  });
  b.exitPromise = exited;
  b.stderr = () => stderr;
  liveBrokers.add(b);

  /** SIGTERM, wait (SIGKILL after 5 s). Resolves to {code, signal, killed}; null if already stopped. */
  b.stop = async () => {
    if (!liveBrokers.has(b)) return null;
    liveBrokers.delete(b);
    const wasRunning = !b.exited;
    let killed = false;
    if (wasRunning) {
      proc.kill('SIGTERM');
      let timer;
      const r = await Promise.race([exited, new Promise((resolve) => { timer = setTimeout(() => resolve(null), 5000); })]);
      clearTimeout(timer);
      if (r === null && !b.exited) {
        killed = true;
        proc.kill('SIGKILL');
        await exited;
      }
    }
    await rm(dataDir, { recursive: true, force: true }).catch(() => {});
    return { code: b.exitCode, signal: b.exitSignal, killed, wasRunning };
  };

  try {
    await withTimeout(new Promise((resolve, reject) => {
      let buf = '';
      proc.on('error', (err) => reject(new Error(`cannot run ${bin}: ${err.message}`)));
      proc.stdout.setEncoding('utf8');
      proc.stdout.on('data', (chunk) => {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, '');
          buf = buf.slice(nl + 1);
          b.lines.push(line);
          const m = LINE_RE.exec(line);
          if (m) {
            b.listeners[m[1] ?? ''] = splitHostPort(m[2]);
            if ([...expected].every((k) => b.listeners[k])) resolve();
          }
        }
      });
      exited.then(({ code, signal }) => setImmediate(() => reject(new Error(
        `broker exited before listening (code=${code} signal=${signal})\nconfig:\n${toToml(cfg)}\nstdout: ${JSON.stringify(b.lines)}\nstderr:\n${stderr.slice(-4000)}`))));
    }), startTimeout, `startup lines ${JSON.stringify([...expected])} (got ${JSON.stringify(b.lines)}; stderr: ${stderr.slice(-2000)})`);
  } catch (err) {
    await b.stop();
    throw err;
  }

  const hostOf = (l) => (l.host.includes(':') ? `[${l.host}]` : l.host);
  const plain = b.listeners[''];
  if (plain) {
    b.url = `ws://${hostOf(plain)}:${plain.port}/ws`;
    b.stompUrl = `ws://${hostOf(plain)}:${plain.port}/stomp`;
    b.mqttUrl = `ws://${hostOf(plain)}:${plain.port}/mqtt`;
    b.port = plain.port;
  }
  const wss = b.listeners.wss;
  if (wss) {
    b.wssPort = wss.port;
    b.wssUrl = `wss://${hostOf(wss)}:${wss.port}/ws`;
    b.wssStompUrl = `wss://${hostOf(wss)}:${wss.port}/stomp`;
    b.wssMqttUrl = `wss://${hostOf(wss)}:${wss.port}/mqtt`;
  }
  if (b.listeners.admin) b.adminUrl = `http://${hostOf(b.listeners.admin)}:${b.listeners.admin.port}`;
  b.mqttTlsPort = b.listeners['mqtt-tls']?.port;
  b.stompTlsPort = b.listeners['stomp-tls']?.port;
  b.mqttTcpPort = b.listeners['mqtt-tcp']?.port;
  b.stompTcpPort = b.listeners['stomp-tcp']?.port;

  /** Wait for a stderr line matching re in the text after offset `from`. */
  b.waitStderr = (re, from = 0, timeoutMs = 10000) =>
    waitFor(() => re.test(stderr.slice(from)), timeoutMs, `broker stderr ${re}`, { describe: () => stderr.slice(from).slice(-2000) });

  /** SIGHUP, then wait for `reload done` (fails on `reload failed`). */
  b.reload = async () => {
    const from = stderr.length;
    proc.kill('SIGHUP');
    await waitFor(() => {
      const s = stderr.slice(from);
      if (/reload failed/.test(s)) throw new Error(`reload failed:\n${s}`);
      return /reload done/.test(s);
    }, 10000, '"reload done" on stderr', { describe: () => stderr.slice(from).slice(-2000) });
  };

  /** Throws (with stderr) if the broker died. */
  b.assertAlive = () => {
    if (b.exited) throw new Error(`broker exited: code=${b.exitCode} signal=${b.exitSignal}\n${stderr.slice(-4000)}`);
  };
  return b;
}

// ---------------------------------------------------------------------------
// JWT

const b64url = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

/**
 * A compact JWS. alg: 'HS256' (key: secret string/Buffer), 'RS256' (key:
 * private KeyObject or PEM) or 'none' (no signature). header adds fields.
 */
export function signJwt(claims, { alg = 'HS256', key, header = {} } = {}) {
  const input = `${b64url({ alg, typ: 'JWT', ...header })}.${b64url(claims)}`;
  let sig = '';
  if (alg === 'HS256') sig = crypto.createHmac('sha256', key).update(input).digest('base64url');
  else if (alg === 'RS256') sig = crypto.sign('sha256', Buffer.from(input), key).toString('base64url');
  else if (alg !== 'none') throw new Error(`signJwt: unsupported alg ${alg}`);
  return `${input}.${sig}`;
}

/** Unix seconds now. */
export const nowSec = () => Math.floor(Date.now() / 1000);

/** An RSA key pair: {privateKey (KeyObject), publicPem (SPKI PEM)}. */
export function rsaKeys() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }) };
}

// ---------------------------------------------------------------------------
// clients

/** TLS options for a client: trust the test CA; cert: 'client' | 'untrusted' | undefined. */
export function tlsOpts(env, cert) {
  const o = { ca: env.pem.ca };
  if (cert === 'client') Object.assign(o, { cert: env.pem.client, key: env.pem.clientKey });
  if (cert === 'untrusted') Object.assign(o, { cert: env.pem.untrusted, key: env.pem.untrustedKey });
  return o;
}

/**
 * STOMP.js client (harness connectStomp) over ws:// or wss://.
 * opts: {login, passcode, connectHeaders, tls (ws TLS options), timeout, ...}.
 * The handle gets .ws (the WebSocket, for the TLS peer certificate).
 */
export async function stomp(url, { login, passcode, connectHeaders = {}, tls: tlsOptions, ...rest } = {}) {
  const headers = { ...connectHeaders };
  if (login !== undefined) headers.login = login;
  if (passcode !== undefined) headers.passcode = passcode;
  let ws;
  const h = await connectStomp(url, {
    connectHeaders: headers,
    webSocketFactory: () => {
      ws = new WebSocket(url, ['v12.stomp', 'v11.stomp', 'v10.stomp'], { ...(tlsOptions ?? {}) });
      return ws;
    },
    ...rest,
  });
  h.ws = ws;
  return h;
}

/**
 * Try a STOMP.js connection that must be refused. Resolves to the ERROR
 * frame; throws if CONNECTED arrived or no ERROR came.
 */
export async function stompRefusal(url, opts = {}) {
  const errors = [];
  let h;
  try {
    h = await stomp(url, { ...opts, onStompError: (f) => errors.push(f) });
  } catch (err) {
    if (errors.length === 0) throw new Error(`expected a STOMP ERROR frame, got: ${err.message}`);
    return errors[0];
  }
  await h.dispose();
  throw new Error(`expected a STOMP ERROR, got CONNECTED ${JSON.stringify(h.connectedFrame.headers)}`);
}

/**
 * MQTT.js client (mqtt-harness connectMqtt): url ws://, wss://, mqtts://.
 * opts: MQTT.js options plus tls (ca/cert/key).
 */
export function mqttc(url, { tls: tlsOptions, ...rest } = {}) {
  return connectMqtt(url, { ...(tlsOptions ?? {}), ...rest });
}

/**
 * Try an MQTT.js connection that must be refused. Resolves to the CONNACK
 * code MQTT.js reported (err.code); throws if it connected or closed
 * without a CONNACK.
 */
export async function mqttRefusal(url, opts = {}) {
  let h;
  try {
    h = await mqttc(url, opts);
  } catch (err) {
    if (typeof err.code !== 'number') throw new Error(`expected a refusing CONNACK, got: ${err.message}`);
    return err.code;
  }
  await h.dispose();
  throw new Error(`expected a refusing CONNACK, got CONNACK 0 (session present ${h.connack.sessionPresent})`);
}

/**
 * Open a TLS connection to port and resolve to the server certificate's
 * SHA-256 fingerprint (node's format). tlsOptions: ca, cert, key...
 */
export function peerFingerprint(port, tlsOptions) {
  return withTimeout(new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ...tlsOptions }, () => {
      const fp = s.getPeerX509Certificate()?.fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.on('error', reject);
  }), 5000, `TLS handshake with 127.0.0.1:${port}`);
}

/**
 * Open a raw `ws` WebSocket with TLS options. Resolves to
 * {opened: true, ws} once it opened, or {opened: false, error} when the
 * handshake (TLS or HTTP) failed or the socket closed before opening.
 */
export function tryWebSocket(url, protocols, tlsOptions, timeoutMs = 5000) {
  return withTimeout(new Promise((resolve) => {
    const ws = new WebSocket(url, protocols, { ...tlsOptions, handshakeTimeout: timeoutMs });
    ws.once('open', () => resolve({ opened: true, ws }));
    ws.once('error', (error) => resolve({ opened: false, error }));
    ws.once('unexpected-response', (req, res) => {
      req.destroy();
      resolve({ opened: false, error: new Error(`HTTP ${res.statusCode}`) });
    });
  }), timeoutMs + 1000, `WebSocket ${url}`);
}

// ---------------------------------------------------------------------------
// the well-behaved neighbour

const pause = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/**
 * Start a well-behaved client that subscribes to its own destination and
 * keeps publishing numbered messages to it (QoS 1 with PUBACK / SEND with
 * a receipt, one at a time, a few ms apart) until stop().
 *
 * kind: 'mqtt' | 'stomp'; connect: () => Promise<handle> (from mqttc or
 * stomp); dest: MQTT topic or STOMP destination.
 *
 * Returns {flowing(n), stop(), sent(), received()}:
 *   flowing(n)  waits until n messages published after the call came back
 *   stop()      stops publishing, waits for the last ones and asserts the
 *               received bodies are exactly n0..n(k-1) (no loss, no
 *               duplicate, no reordering) and the connection never closed
 */
export async function neighbour(kind, connect, dest, { gapMs = 5 } = {}) {
  const h = await connect();
  let received;
  let closed;
  if (kind === 'mqtt') {
    await h.client.subscribeAsync(dest, { qos: 1 });
    received = () => h.messages.filter((m) => m.topic === dest).map((m) => m.payload.toString());
    closed = () => h.closed;
  } else {
    const sub = await h.subscribe(dest);
    received = () => sub.bodies();
    closed = () => h.closes.length > 0;
  }
  let sent = 0;
  let running = true;
  let failure = null;
  // mqttCleanup() (afterEach) disposes the handle: stop publishing then,
  // also when the test failed before stop().
  const dispose = h.dispose;
  h.dispose = async () => {
    running = false;
    await dispose();
  };
  const loop = (async () => {
    while (running) {
      const body = `n${sent}`;
      try {
        if (kind === 'mqtt') await withTimeout(h.client.publishAsync(dest, body, { qos: 1 }), 5000, `neighbour PUBACK for ${body}`);
        else await h.publishWithReceipt({ destination: dest, body });
      } catch (err) {
        failure = err;
        return;
      }
      sent += 1;
      await pause(gapMs);
    }
  })();
  const describe = () => `${kind} neighbour on ${dest}: sent ${sent}, received ${received().length}, closed=${closed()}, failure=${failure?.message}`;
  return {
    handle: h,
    sent: () => sent,
    received,
    describe,
    async flowing(n = 3, timeoutMs = 10000) {
      const target = sent + n;
      await waitFor(() => {
        if (failure) throw failure;
        if (closed()) throw new Error('neighbour connection closed');
        return received().length >= target;
      }, timeoutMs, `${n} more round trips of the well-behaved neighbour`, { describe });
    },
    async stop() {
      running = false;
      await loop;
      assert.equal(failure, null, `neighbour publish failed: ${failure?.message}; ${describe()}`);
      assert.equal(closed(), false, `neighbour connection closed; ${describe()}`);
      await waitFor(() => received().length >= sent, 10000, 'neighbour receives everything it sent', { describe });
      const want = Array.from({ length: sent }, (_, i) => `n${i}`);
      assert.deepEqual(received(), want, `neighbour lost, duplicated or reordered messages; ${describe()}`);
      assert.ok(sent > 0, 'neighbour sent nothing');
      return sent;
    },
  };
}

// ---------------------------------------------------------------------------
// small protocol steps

/** SUBSCRIBE one filter; resolves to the SUBACK code (granted QoS or failure code). */
export async function subackCode(h, filter, qos = 1) {
  try {
    const granted = await withTimeout(h.client.subscribeAsync(filter, { qos }), 5000, `SUBACK for ${filter}`);
    return granted[0].qos;
  } catch (err) {
    if (err.packet?.granted) return err.packet.granted[0];
    throw err;
  }
}

/**
 * PUBLISH at QoS 1 or 2; resolves to the PUBACK/PUBREC reason code (0 when
 * accepted, also for 3.1.1 where acks carry no code).
 */
export async function pubackCode(h, topic, payload, qos = 1) {
  try {
    await withTimeout(h.client.publishAsync(topic, payload, { qos }), 5000, `PUBACK for ${topic}`);
    return 0;
  } catch (err) {
    if (typeof err.code === 'number') return err.code;
    throw err;
  }
}

/** Subscribe an MQTT.js handle to topic, publish to it (QoS 1) and wait for the message. */
export async function mqttRoundTrip(h, topic, body = uniq('rt')) {
  const code = await subackCode(h, topic, 1);
  assert.ok(code < 0x80, `SUBACK for ${topic} refused with 0x${code.toString(16)}`);
  const rc = await pubackCode(h, topic, body, 1);
  assert.equal(rc, 0, `PUBACK for ${topic} refused with 0x${rc.toString(16)}`);
  await h.waitMessages(1, (m) => m.topic === topic && m.payload.toString() === body, 5000, `round trip on ${topic}`);
}

/** Subscribe a STOMP.js handle to dest (with a receipt), SEND with a receipt, wait for the MESSAGE. */
export async function stompRoundTrip(h, dest, body = uniq('rt')) {
  const why = (err) => new Error(`round trip on ${dest}: ${err.message}${h.errors.length ? `; ERROR frames: ${h.errors.map((e) => `${e.headers.message}: ${e.body}`).join(' | ')}` : ''}`);
  const sub = await h.subscribe(dest).catch((err) => { throw why(err); });
  await h.publishWithReceipt({ destination: dest, body }).catch((err) => { throw why(err); });
  await sub.waitCount(1, 5000);
  assert.deepEqual(sub.bodies(), [body], `round trip on ${dest}`);
  return sub;
}

/**
 * Run a STOMP frame that must be refused: kind 'subscribe' or 'send' on
 * dest (with headers and a receipt header), then wait for the ERROR frame.
 * Resolves to the ERROR frame; throws if a RECEIPT came instead.
 */
export async function stompDenied(h, kind, dest, headers = {}) {
  let receipted = false;
  const messages = [];
  const receipt = uniq('rcpt');
  h.client.watchForReceipt(receipt, () => { receipted = true; });
  if (kind === 'subscribe') h.client.subscribe(dest, (m) => messages.push(m.body), { ...headers, receipt });
  else h.client.publish({ destination: dest, body: 'must not pass', headers: { ...headers, receipt } });
  await waitFor(() => receipted || h.errors.length > 0, 5000, `STOMP ERROR for ${kind} ${dest}`,
    { describe: () => `errors=${h.errors.length} closes=${JSON.stringify(h.closes)}` });
  if (h.errors.length === 0) {
    // Accepted: for a subscription, show what it delivers (bounded wait).
    if (kind === 'subscribe') await waitFor(() => messages.length > 0, 1000).catch(() => {});
    throw new Error(`${kind} ${dest} ${JSON.stringify(headers)} got a RECEIPT, not an ERROR${kind === 'subscribe' ? `; it delivered ${messages.length} messages ${JSON.stringify(messages.slice(0, 5))}` : ''}`);
  }
  return h.errors[0];
}
