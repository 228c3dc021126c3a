// MQTT helpers for the Duplex interop suite (MQTT.js over WebSocket).
//
// - mqttUrl(broker): ws://127.0.0.1:PORT/mqtt for a broker from startBroker().
// - connectMqtt(): a connected MQTT.js client (no auto-reconnect) wrapped in
//   a handle that records messages, server DISCONNECTs and closes.
// - openRawMqtt(): a raw `ws` WebSocket with subprotocol "mqtt" that sends
//   hand-encoded packets and parses what the broker sends back.
// - encode helpers (connectPacket, publishPacket, subscribePacket, ...).
// - freePort(): a free TCP port on 127.0.0.1 (for -mqtt-tcp-addr).
//
// Every MQTT.js client and raw socket created here is registered;
// mqttCleanup() closes them (and runs harness.js cleanup() too).

import net from 'node:net';

import mqtt from 'mqtt';

import { WebSocket, cleanup as stompCleanup, waitFor, withTimeout } from './harness.js';

export { mqtt };

/** ws://host:port/mqtt for a broker started by startBroker(). */
export function mqttUrl(broker, path = '/mqtt') {
  return `ws://${broker.host}:${broker.port}${path}`;
}

// ---------------------------------------------------------------------------
// resource tracking

const open = new Set();

/** Close every MQTT.js client and raw socket opened here, then harness.js's. */
export async function mqttCleanup() {
  const all = [...open];
  open.clear();
  await Promise.all(all.map((r) => r.dispose().catch(() => {})));
  await stompCleanup();
}

// ---------------------------------------------------------------------------
// MQTT.js clients

function describeHandle(h) {
  return `${h.messages.length} messages (last topics: ${h.messages.slice(-5).map((m) => m.topic).join(',') || 'none'}), ` +
    `disconnects=${JSON.stringify(h.disconnects.map((d) => d.reasonCode))}, closed=${h.closed}, errors=${h.errors.map((e) => e.message).join(';')}`;
}

/**
 * Connect an MQTT.js client. Resolves once CONNACK arrived (rejects on a
 * connect error, a close before CONNACK or the timeout).
 *
 * options: any MQTT.js client option (protocolVersion defaults to 4, clean
 * to true, reconnectPeriod is 0) plus `timeout` (ms, default 5000).
 *
 * The handle: {client, connack, messages, disconnects, errors, closed,
 * waitMessages(n, pred?), waitClosed(), end(), dispose()}; each message is
 * {topic, payload: Buffer, packet, at}.
 */
export async function connectMqtt(url, options = {}) {
  const { timeout = 5000, ...rest } = options;
  const client = mqtt.connect(url, {
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: timeout,
    keepalive: 60,
    ...rest,
  });
  const h = {
    client,
    connack: null,
    messages: [],
    disconnects: [],
    errors: [],
    closed: false,
    closedAt: null,
  };
  const waiters = new Set();
  const notify = () => {
    for (const w of waiters) {
      const v = w.check();
      if (v) {
        waiters.delete(w);
        w.resolve(v);
      }
    }
  };
  client.on('message', (topic, payload, packet) => {
    h.messages.push({ topic, payload: Buffer.from(payload), packet, at: Date.now() });
    notify();
  });
  client.on('disconnect', (packet) => {
    h.disconnects.push(packet);
    notify();
  });
  client.on('error', (err) => h.errors.push(err));
  client.on('close', () => {
    h.closed = true;
    h.closedAt = Date.now();
    notify();
  });
  h.describe = () => describeHandle(h);

  /** Messages whose topic is `topic` (all when omitted). */
  h.on = (topic) => (topic === undefined ? h.messages : h.messages.filter((m) => m.topic === topic));

  /**
   * Event-driven wait until at least n messages matching pred (default:
   * all) arrived. Resolves to the matching messages.
   */
  h.waitMessages = (n, pred = () => true, timeoutMs = 5000, what = undefined) => {
    const check = () => {
      const got = h.messages.filter(pred);
      return got.length >= n ? got : null;
    };
    const v = check();
    if (v) return Promise.resolve(v);
    const p = new Promise((resolve) => waiters.add({ check, resolve }));
    return withTimeout(p, timeoutMs, `${what ?? `${n} MQTT messages`}; ${h.describe()}`);
  };

  /** Wait until the connection closed. */
  h.waitClosed = (timeoutMs = 5000) => {
    if (h.closed) return Promise.resolve(true);
    const p = new Promise((resolve) => waiters.add({ check: () => h.closed, resolve }));
    return withTimeout(p, timeoutMs, `MQTT.js close; ${h.describe()}`);
  };

  /** Clean end (DISCONNECT, then close). */
  h.end = () => withTimeout(client.endAsync(false), 3000, 'MQTT.js end()');

  /** Abrupt close: destroy the WebSocket stream (no DISCONNECT). */
  h.kill = async () => {
    client.stream.destroy();
    await h.waitClosed(3000);
    // stop MQTT.js from doing anything else with this client
    await client.endAsync(true).catch(() => {});
  };

  h.dispose = async () => {
    if (client.disconnected && h.closed) {
      await client.endAsync(true).catch(() => {});
      return;
    }
    try {
      await withTimeout(client.endAsync(false), 2000, 'MQTT.js end');
    } catch {
      await withTimeout(client.endAsync(true), 2000, 'MQTT.js forced end').catch(() => {});
    }
  };
  open.add(h);

  try {
    h.connack = await withTimeout(
      new Promise((resolve, reject) => {
        client.once('connect', resolve);
        client.once('error', reject);
        client.once('close', () => reject(new Error('MQTT connection closed before CONNACK')));
      }),
      timeout + 500,
      `MQTT CONNACK from ${url}`,
    );
  } catch (err) {
    await h.dispose();
    throw err;
  }
  return h;
}

// ---------------------------------------------------------------------------
// packet encoding (for raw tests)

/** MQTT Variable Byte Integer. */
export function varint(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

/** UTF-8 string with its two-byte length. */
export function mqttString(s) {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

export function u16(n) {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

/** A packet from its first byte and body (the remaining length is computed). */
export function packet(firstByte, body = Buffer.alloc(0)) {
  return Buffer.concat([Buffer.from([firstByte]), varint(body.length), body]);
}

/**
 * CONNECT; version 4 (3.1.1) or 5. flags are ORed into the connect flags.
 * will: {topic, payload, qos, retain} adds a will (no will properties).
 */
export function connectPacket({ clientId = '', version = 4, clean = true, keepAlive = 60, flags = 0, will } = {}) {
  let f = (clean ? 0x02 : 0) | flags;
  if (will) f |= 0x04 | ((will.qos ?? 0) << 3) | (will.retain ? 0x20 : 0);
  const parts = [mqttString('MQTT'), Buffer.from([version, f]), u16(keepAlive)];
  if (version === 5) parts.push(varint(0)); // no properties
  parts.push(mqttString(clientId));
  if (will) {
    if (version === 5) parts.push(varint(0)); // no will properties
    parts.push(mqttString(will.topic), mqttString(Buffer.from(will.payload ?? '')));
  }
  return packet(0x10, Buffer.concat(parts));
}

/**
 * PUBLISH (QoS 0 unless qos given; id for QoS > 0). props: raw v5 property
 * bytes (version 5 only).
 */
export function publishPacket(topic, payload, { qos = 0, id = 1, version = 4, retain = false, props = Buffer.alloc(0) } = {}) {
  const parts = [mqttString(topic)];
  if (qos > 0) parts.push(u16(id));
  if (version === 5) parts.push(varint(props.length), props);
  parts.push(Buffer.from(payload));
  return packet(0x30 | (qos << 1) | (retain ? 1 : 0), Buffer.concat(parts));
}

/** SUBSCRIBE with one filter; firstByte defaults to the required 0x82. */
export function subscribePacket(id, filter, { qos = 0, version = 4, firstByte = 0x82 } = {}) {
  const parts = [u16(id)];
  if (version === 5) parts.push(varint(0));
  parts.push(mqttString(filter), Buffer.from([qos]));
  return packet(firstByte, Buffer.concat(parts));
}

export const PINGREQ = Buffer.from([0xc0, 0x00]);

const PACKET_NAMES = {
  1: 'CONNECT', 2: 'CONNACK', 3: 'PUBLISH', 4: 'PUBACK', 5: 'PUBREC', 6: 'PUBREL', 7: 'PUBCOMP',
  8: 'SUBSCRIBE', 9: 'SUBACK', 10: 'UNSUBSCRIBE', 11: 'UNSUBACK', 12: 'PINGREQ', 13: 'PINGRESP',
  14: 'DISCONNECT', 15: 'AUTH',
};

/**
 * Incremental parser for server->client MQTT packets (a packet may span
 * WebSocket messages, a message may hold several packets). Packets are
 * {type, name, flags, body: Buffer}; CONNACK gets sessionPresent and code,
 * DISCONNECT gets reasonCode (0 when the body is empty).
 */
export class PacketParser {
  constructor(onPacket, version = 4) {
    this.onPacket = onPacket;
    this.version = version;
    this.buf = Buffer.alloc(0);
    this.error = null;
  }

  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      if (this.buf.length < 2) return;
      let len = 0;
      let mult = 1;
      let i = 1;
      for (;;) {
        if (i >= this.buf.length) return;
        const b = this.buf[i];
        len += (b & 0x7f) * mult;
        mult *= 128;
        i += 1;
        if ((b & 0x80) === 0) break;
        if (i > 4) {
          this.error = new Error('bad remaining length from server');
          return;
        }
      }
      if (this.buf.length < i + len) return;
      const type = this.buf[0] >> 4;
      const p = {
        type,
        name: PACKET_NAMES[type] ?? `type${type}`,
        flags: this.buf[0] & 0x0f,
        body: Buffer.from(this.buf.subarray(i, i + len)),
        at: Date.now(),
      };
      if (p.name === 'CONNACK') {
        p.sessionPresent = (p.body[0] & 1) === 1;
        p.code = p.body[1];
      } else if (p.name === 'DISCONNECT') {
        p.reasonCode = p.body.length ? p.body[0] : 0;
      } else if (p.name === 'PUBLISH') {
        p.qos = (p.flags >> 1) & 3;
        p.dup = (p.flags & 8) !== 0;
        p.retain = (p.flags & 1) !== 0;
        const tl = p.body.readUInt16BE(0);
        p.topic = p.body.subarray(2, 2 + tl).toString('utf8');
        let off = 2 + tl;
        if (p.qos > 0) {
          p.id = p.body.readUInt16BE(off);
          off += 2;
        }
        if (this.version === 5) {
          // skip the properties
          let plen = 0;
          let mul = 1;
          for (;;) {
            const b = p.body[off++];
            plen += (b & 0x7f) * mul;
            mul *= 128;
            if ((b & 0x80) === 0) break;
          }
          off += plen;
        }
        p.payload = p.body.subarray(off);
      } else if (['PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP', 'SUBACK', 'UNSUBACK'].includes(p.name)) {
        p.id = p.body.readUInt16BE(0);
      }
      this.buf = this.buf.subarray(i + len);
      this.onPacket(p);
    }
  }
}

// ---------------------------------------------------------------------------
// raw WebSocket MQTT client

/**
 * Open a raw WebSocket with subprotocol "mqtt" (options.protocols to
 * override). Collects packets (parsed), messages, closed {code, reason}.
 */
export async function openRawMqtt(url, options = {}) {
  const { protocols = ['mqtt'], timeout = 5000 } = options;
  const ws = new WebSocket(url, protocols, { handshakeTimeout: timeout });
  const raw = { ws, messages: [], packets: [], closed: null, errors: [] };
  const parser = new PacketParser((p) => raw.packets.push(p));
  ws.on('message', (data, isBinary) => {
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    raw.messages.push({ data: buf, isBinary, at: Date.now() });
    parser.push(buf);
  });
  ws.on('error', (err) => raw.errors.push(err));
  const closedP = new Promise((resolve) => {
    ws.on('close', (code, reason) => {
      raw.closed = { code, reason: reason.toString(), at: Date.now() };
      resolve(raw.closed);
    });
  });
  raw.describe = () =>
    `packets=[${raw.packets.map((p) => `${p.name}${p.reasonCode !== undefined ? `(0x${p.reasonCode.toString(16)})` : ''}${p.code !== undefined ? `(code ${p.code})` : ''}`).join(', ')}], ` +
    `closed=${JSON.stringify(raw.closed)}, errors=${raw.errors.map((e) => e.message).join(';')}`;
  raw.dispose = async () => {
    if (raw.closed) return;
    ws.terminate();
    await withTimeout(closedP, 2000, 'raw MQTT socket close').catch(() => {});
  };
  open.add(raw);

  /** Send bytes (Buffer) as one binary message, or a string as a text message. */
  raw.send = (data, opts = {}) =>
    new Promise((resolve, reject) => {
      ws.send(data, { binary: typeof data !== 'string', ...opts }, (err) => (err ? reject(err) : resolve()));
    });

  /** Wait for a packet named `name` (or matching pred) at index >= since. */
  raw.waitPacket = (pred, timeoutMs = 5000, since = 0) => {
    const test = typeof pred === 'string' ? (p) => p.name === pred : pred;
    return waitFor(() => raw.packets.slice(since).find(test), timeoutMs,
      typeof pred === 'string' ? `${pred} packet` : 'matching packet', { describe: raw.describe });
  };

  /** Wait for the socket to close. Resolves to {code, reason, at}. */
  raw.waitClose = (timeoutMs = 5000) => waitFor(() => raw.closed, timeoutMs, 'WebSocket close', { describe: raw.describe });

  /** Send CONNECT and wait for CONNACK (throws unless accepted). */
  raw.connect = async (opts = {}) => {
    parser.version = opts.version ?? 4;
    await raw.send(connectPacket(opts));
    const ack = await raw.waitPacket('CONNACK');
    if (ack.code !== 0) throw new Error(`CONNACK code ${ack.code}`);
    return ack;
  };

  try {
    await withTimeout(
      new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
        ws.once('unexpected-response', (req, res) => {
          reject(new Error(`unexpected HTTP ${res.statusCode} for WebSocket upgrade`));
          req.destroy();
        });
      }),
      timeout,
      `WebSocket open ${url}`,
    );
  } catch (err) {
    await raw.dispose();
    throw err;
  }
  return raw;
}

// ---------------------------------------------------------------------------
// misc

/** A free TCP port on 127.0.0.1 (bind :0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Distinct payload of `n` bytes (a counter pattern, not all zeros). */
export function patternBytes(n, seed = 7) {
  const b = Buffer.alloc(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** A v5 packet's user properties as a plain object ({} when none). */
export function userProps(pkt) {
  return { ...(pkt?.properties?.userProperties ?? {}) };
}
