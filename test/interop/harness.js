// Test harness for the Duplex interop suite.
//
// - startBroker(): runs the real broker binary on a random port and parses
//   its "duplex listening on 127.0.0.1:PORT" line.
// - connectStomp(): a connected STOMP.js Client (Node needs the `ws` package
//   as the WebSocket implementation).
// - openRaw(): a raw WebSocket client that sends hand-written frames and
//   parses everything the broker sends back (frames, heart-beats, close).
// - waitFor(): poll a condition with a deadline. Tests never use fixed
//   sleeps for synchronization.
//
// Every client and broker created here is registered so that cleanup() /
// broker.stop() can close them and the test process exits.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Client, Versions } from '@stomp/stompjs';
import WebSocket from 'ws';

export { Client, Versions, WebSocket };

const here = path.dirname(fileURLToPath(import.meta.url));

/** Path of the broker binary: $DUPLEX_BIN or <repo>/bin/duplex. */
export function brokerBinary() {
  const fromEnv = process.env.DUPLEX_BIN;
  if (fromEnv) return path.resolve(fromEnv);
  return path.resolve(here, '../../bin/duplex');
}

/** STOMP subprotocols in the order a browser STOMP.js client offers them. */
export const ALL_PROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

// ---------------------------------------------------------------------------
// small utilities

let uniqCounter = 0;
/** A name unique within this process, e.g. uniq('q') -> "q-3-1f2e". */
export function uniq(prefix = 'x') {
  uniqCounter += 1;
  return `${prefix}-${uniqCounter}-${randomBytes(3).toString('hex')}`;
}

/**
 * Race a promise against a deadline. The timer is cleared when the promise
 * settles so it never keeps the process alive.
 */
export function withTimeout(promise, ms, what = 'operation') {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`timed out after ${ms} ms waiting for ${what}${brokerDiagnostics()}`));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Poll fn() every `interval` ms until it returns a truthy value (which is
 * returned) or the deadline passes (throws, naming `what`).
 * fn may be async. If `describe` is given, its return value is appended to
 * the timeout error to show the state that was observed.
 */
export async function waitFor(fn, timeoutMs = 5000, what = 'condition', { interval = 10, describe } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastErr;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      lastErr = undefined;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() >= deadline) {
      let msg = `timed out after ${timeoutMs} ms waiting for ${what}`;
      if (describe) {
        try {
          msg += `; observed: ${describe()}`;
        } catch { /* ignore */ }
      }
      if (lastErr) msg += `; last error: ${lastErr.message}`;
      msg += brokerDiagnostics();
      throw new Error(msg);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

// ---------------------------------------------------------------------------
// broker process

const liveBrokers = new Set();

function brokerDiagnostics() {
  const dead = [...liveBrokers].filter((b) => b.exited && !b.stopping);
  if (dead.length === 0) return '';
  return dead
    .map((b) => `\n  [broker pid ${b.proc.pid} exited unexpectedly: code=${b.exitCode} signal=${b.exitSignal}]\n  stderr tail:\n${indent(b.stderrTail())}`)
    .join('');
}

function indent(s) {
  return s.split('\n').map((l) => `    ${l}`).join('\n');
}

const LISTEN_RE = /^duplex listening on (127\.0\.0\.1):(\d+)\s*$/;

/**
 * Start the broker binary with `-addr 127.0.0.1:0 -data <tmpdir>` plus extra
 * flags. Resolves to {url, stompUrl, port, host, proc, dataDir, stderrTail(),
 * stop()} once the broker printed its listening line.
 *
 * options.bin           override the binary path
 * options.startTimeout  ms to wait for the listening line (default 10000)
 * options.stopTimeout   ms stop() waits after SIGTERM before SIGKILL (5000)
 * options.dataDir       use this data folder (a restart on the same store);
 *                       the caller owns it: stop() and kill() leave it
 *
 * Set DUPLEX_LOG=1 to copy the broker's stderr to this process's stderr.
 */
export async function startBroker(extraArgs = [], options = {}) {
  const bin = options.bin ?? brokerBinary();
  const startTimeout = options.startTimeout ?? 10000;
  const stopTimeout = options.stopTimeout ?? 5000;
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'duplex-interop-')));
  // TCP listeners off: their fixed default ports would clash between runs.
  const args = ['-addr', '127.0.0.1:0', '-stomp-tcp-addr=', '-mqtt-tcp-addr=', '-data', dataDir, ...extraArgs];

  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const broker = {
    bin,
    args,
    proc,
    dataDir,
    exited: false,
    stopping: false,
    exitCode: null,
    exitSignal: null,
    stdoutLines: [],
    stderrChunks: [],
    stderrTail(max = 4000) {
      const s = this.stderrChunks.join('');
      return s.length > max ? `...${s.slice(-max)}` : s;
    },
  };
  liveBrokers.add(broker);

  const exitPromise = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      broker.exited = true;
      broker.exitCode = code;
      broker.exitSignal = signal;
      resolve({ code, signal });
    });
  });
  broker.exitPromise = exitPromise;

  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk) => {
    broker.stderrChunks.push(chunk);
    // keep memory bounded
    if (broker.stderrChunks.length > 2000) broker.stderrChunks.splice(0, 1000);
    if (process.env.DUPLEX_LOG) process.stderr.write(chunk);
  });

  const cleanupDir = () => (ownDir ? rm(dataDir, { recursive: true, force: true }).catch(() => {}) : Promise.resolve());

  let listening;
  try {
    listening = await new Promise((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => {
        reject(new Error(`broker ${bin} did not print "duplex listening on 127.0.0.1:PORT" within ${startTimeout} ms; stdout so far: ${JSON.stringify(broker.stdoutLines)}; stderr:\n${broker.stderrTail()}`));
      }, startTimeout);
      const done = (fn, v) => {
        clearTimeout(timer);
        fn(v);
      };
      proc.on('error', (err) => {
        if (err.code === 'ENOENT') {
          done(reject, new Error(`broker binary not found at ${bin} (build it with "make build" / "go build -o bin/duplex ./cmd/duplex", or set DUPLEX_BIN): ${err.message}`));
        } else if (err.code === 'EACCES') {
          done(reject, new Error(`broker binary at ${bin} is not executable (set DUPLEX_BIN): ${err.message}`));
        } else {
          done(reject, new Error(`failed to start broker ${bin}: ${err.message}`));
        }
      });
      proc.stdout.setEncoding('utf8');
      proc.stdout.on('data', (chunk) => {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, '');
          buf = buf.slice(nl + 1);
          broker.stdoutLines.push(line);
          const m = LISTEN_RE.exec(line);
          if (m) done(resolve, { host: m[1], port: Number(m[2]) });
        }
      });
      exitPromise.then(({ code, signal }) => {
        // a no-op if the listening line was already seen
        setImmediate(() => {
          done(reject, new Error(`broker ${bin} ${args.join(' ')} exited before listening (code=${code} signal=${signal}); stdout: ${JSON.stringify(broker.stdoutLines)}; stderr:\n${broker.stderrTail()}`));
        });
      });
    });
  } catch (err) {
    if (!broker.exited && proc.pid !== undefined) {
      proc.kill('SIGKILL');
      await withTimeout(exitPromise, 5000, 'broker exit after SIGKILL').catch(() => {});
    }
    liveBrokers.delete(broker);
    await cleanupDir();
    throw err;
  }

  broker.host = listening.host;
  broker.port = listening.port;
  broker.url = `ws://${listening.host}:${listening.port}/ws`;
  broker.stompUrl = `ws://${listening.host}:${listening.port}/stomp`;
  broker.httpBase = `http://${listening.host}:${listening.port}`;

  /**
   * SIGTERM, wait for exit; SIGKILL after the deadline. Closes every client
   * opened by this harness first. Resolves to {code, signal, killed}.
   */
  broker.stop = async ({ timeout = stopTimeout } = {}) => {
    await cleanup();
    broker.stopping = true;
    let killed = false;
    if (!broker.exited) {
      proc.kill('SIGTERM');
      let timer;
      const res = await Promise.race([
        exitPromise,
        new Promise((resolve) => {
          timer = setTimeout(() => resolve(null), timeout);
        }),
      ]);
      clearTimeout(timer);
      if (res === null && !broker.exited) {
        killed = true;
        proc.kill('SIGKILL');
        await exitPromise;
      }
    }
    liveBrokers.delete(broker);
    await cleanupDir();
    return { code: broker.exitCode, signal: broker.exitSignal, killed };
  };

  /**
   * SIGKILL (a crash: nothing flushed, no will published, no goodbye to
   * clients), wait for exit. Resolves to {code, signal}.
   */
  broker.kill = async () => {
    broker.stopping = true;
    if (!broker.exited) proc.kill('SIGKILL');
    await withTimeout(exitPromise, 5000, 'broker exit after SIGKILL');
    liveBrokers.delete(broker);
    await cleanup();
    await cleanupDir();
    return { code: broker.exitCode, signal: broker.exitSignal };
  };

  /** Throws (with stderr) if the broker died. */
  broker.assertAlive = () => {
    if (broker.exited) {
      throw new Error(`broker exited unexpectedly: code=${broker.exitCode} signal=${broker.exitSignal}\nstderr:\n${broker.stderrTail()}`);
    }
  };

  return broker;
}

// ---------------------------------------------------------------------------
// resource tracking

const openResources = new Set();

function track(res) {
  openResources.add(res);
  return res;
}

/** Close every STOMP.js client and raw socket opened through the harness. */
export async function cleanup() {
  const all = [...openResources];
  openResources.clear();
  await Promise.all(all.map((r) => r.dispose().catch(() => {})));
}

// ---------------------------------------------------------------------------
// STOMP.js clients

/**
 * Connect a STOMP.js Client. Resolves once CONNECTED arrived.
 *
 * options: any STOMP.js Client config (heartbeatIncoming, stompVersions,
 * connectHeaders, ...) plus
 *   protocols   WebSocket subprotocols (default: from stompVersions)
 *   timeout     ms to wait for CONNECTED (default 5000)
 *
 * Returns a handle: {client, connectedFrame, errors, closes, unhandled,
 * heartbeats, subscribe(), publishWithReceipt(), receipt(), disconnect(),
 * dispose()}. errors are ERROR frames, closes are WebSocket close events.
 */
export async function connectStomp(url, options = {}) {
  const { protocols, timeout = 5000, ...config } = options;
  const versions = config.stompVersions ?? Versions.default;
  const handle = {
    client: null,
    connectedFrame: null,
    errors: [],
    closes: [],
    unhandled: [],
    unhandledFrames: [],
    unhandledReceipts: [],
    heartbeats: 0,
    wsErrors: [],
  };
  let connectResolve;
  let connectReject;
  const connected = new Promise((resolve, reject) => {
    connectResolve = resolve;
    connectReject = reject;
  });

  const client = new Client({
    brokerURL: url,
    webSocketFactory: () => new WebSocket(url, protocols ?? versions.protocolVersions()),
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    connectionTimeout: 0,
    debug: process.env.STOMP_DEBUG ? (s) => console.error(`[stomp] ${s}`) : () => {},
    ...config,
    stompVersions: versions,
    onConnect: (frame) => {
      handle.connectedFrame = frame;
      connectResolve(frame);
      config.onConnect?.(frame);
    },
    onStompError: (frame) => {
      handle.errors.push(frame);
      connectReject(new Error(`STOMP ERROR before CONNECTED: ${frame.headers.message} ${frame.body}`));
      config.onStompError?.(frame);
    },
    onWebSocketClose: (evt) => {
      handle.closes.push({ code: evt.code, reason: String(evt.reason ?? ''), wasClean: evt.wasClean, at: Date.now() });
      connectReject(new Error(`WebSocket closed before CONNECTED (code ${evt.code})`));
      config.onWebSocketClose?.(evt);
    },
    onWebSocketError: (evt) => {
      handle.wsErrors.push(evt);
      config.onWebSocketError?.(evt);
    },
    onUnhandledMessage: (msg) => {
      handle.unhandled.push(msg);
      config.onUnhandledMessage?.(msg);
    },
    onUnhandledFrame: (frame) => {
      handle.unhandledFrames.push(frame);
      config.onUnhandledFrame?.(frame);
    },
    onUnhandledReceipt: (frame) => {
      handle.unhandledReceipts.push(frame);
      config.onUnhandledReceipt?.(frame);
    },
    onHeartbeatReceived: () => {
      handle.heartbeats += 1;
      config.onHeartbeatReceived?.();
    },
  });
  handle.client = client;

  handle.dispose = async () => {
    if (!client.active) return;
    try {
      await withTimeout(client.deactivate(), 2000, 'STOMP.js deactivate');
    } catch {
      await withTimeout(client.deactivate({ force: true }), 2000, 'forced deactivate').catch(() => {});
    }
  };
  track(handle);

  /** true once the WebSocket closed. */
  handle.isClosed = () => handle.closes.length > 0;

  /**
   * Subscribe and collect messages into sub.messages. Waits for the
   * SUBSCRIBE receipt unless options.receipt === false. extra.onMessage is
   * called for every message too.
   */
  handle.subscribe = async (destination, headers = {}, extra = {}) => {
    const messages = [];
    const countWaiters = new Set();
    const cb = (msg) => {
      messages.push(msg);
      extra.onMessage?.(msg);
      for (const w of countWaiters) {
        if (messages.length >= w.n) {
          countWaiters.delete(w);
          w.resolve(messages.length);
        }
      }
    };
    let sub;
    if (extra.receipt === false) {
      sub = client.subscribe(destination, cb, headers);
    } else {
      await handle.receipt((receipt) => {
        sub = client.subscribe(destination, cb, { ...headers, receipt });
      }, `SUBSCRIBE ${destination} receipt`);
    }
    return {
      id: sub.id,
      messages,
      bodies: () => messages.map((m) => m.body),
      unsubscribe: (h) => sub.unsubscribe(h),
      /**
       * Event-driven wait (no polling) until at least n messages arrived;
       * for tight loops where waitFor's polling interval would add up.
       */
      waitCount: (n, timeoutMs = 5000) => {
        if (messages.length >= n) return Promise.resolve(messages.length);
        const p = new Promise((resolve) => countWaiters.add({ n, resolve }));
        return withTimeout(p, timeoutMs, `${n} messages on ${destination} (have ${messages.length})${handle.closes.length ? ` - subscriber closed: ${JSON.stringify(handle.closes)} errors: ${JSON.stringify(handle.errors.map((e) => e.headers))}` : ''}`);
      },
    };
  };

  /**
   * Run send(receiptId) and wait for the RECEIPT with that id.
   * Resolves to the RECEIPT frame.
   */
  handle.receipt = (send, what = 'RECEIPT', timeoutMs = 5000) => {
    const id = uniq('rcpt');
    const p = new Promise((resolve) => client.watchForReceipt(id, resolve));
    send(id);
    return withTimeout(p, timeoutMs, `${what} (receipt ${id})`);
  };

  /** publish() with a receipt header and wait for the RECEIPT. */
  handle.publishWithReceipt = (params, timeoutMs = 5000) =>
    handle.receipt((receipt) => {
      client.publish({ ...params, headers: { ...(params.headers ?? {}), receipt } });
    }, `SEND ${params.destination} receipt`, timeoutMs);

  /** Graceful DISCONNECT (STOMP.js waits for the DISCONNECT receipt). */
  handle.disconnect = () => withTimeout(client.deactivate(), 5000, 'STOMP.js deactivate');

  client.activate();
  try {
    await withTimeout(connected, timeout, `STOMP CONNECTED from ${url}`);
  } catch (err) {
    await handle.dispose();
    throw err;
  }
  return handle;
}

// ---------------------------------------------------------------------------
// raw frames

/**
 * Serialize a STOMP frame. headers: object or array of [k, v] pairs (for
 * repeated headers). Header values are written as-is (no escaping).
 * A Buffer/Uint8Array body gives a Buffer, otherwise a string.
 */
export function buildFrame(command, headers = {}, body = '') {
  const pairs = Array.isArray(headers) ? headers : Object.entries(headers);
  let head = `${command}\n`;
  for (const [k, v] of pairs) head += `${k}:${v}\n`;
  head += '\n';
  if (typeof body === 'string') return `${head}${body}\0`;
  return Buffer.concat([Buffer.from(head, 'utf8'), Buffer.from(body), Buffer.from([0])]);
}

function unescapeHeader(v) {
  return v.replace(/\\(.)/g, (m, c) => {
    switch (c) {
      case 'n': return '\n';
      case 'r': return '\r';
      case 'c': return ':';
      case '\\': return '\\';
      default: return m;
    }
  });
}

/**
 * Incremental parser for server->client STOMP data. A frame may span
 * several WebSocket messages and one message may hold several frames.
 * EOLs between frames are heart-beats.
 */
export class FrameParser {
  constructor({ onFrame, onHeartbeat }) {
    this.onFrame = onFrame;
    this.onHeartbeat = onHeartbeat;
    this.buf = Buffer.alloc(0);
    // [{remaining bytes of this message still in buf, isBinary}]
    this.segments = [];
    this.error = null;
  }

  push(data, isBinary) {
    const chunk = Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (chunk.length === 0) return;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    this.segments.push({ len: chunk.length, isBinary });
    this.drain();
  }

  consume(n) {
    this.buf = this.buf.subarray(n);
    while (n > 0 && this.segments.length) {
      const s = this.segments[0];
      const take = Math.min(n, s.len);
      s.len -= take;
      n -= take;
      if (s.len === 0) this.segments.shift();
    }
  }

  drain() {
    for (;;) {
      // heart-beats / EOLs between frames
      while (this.buf.length > 0) {
        if (this.buf[0] === 0x0a) {
          this.consume(1);
          this.onHeartbeat?.();
        } else if (this.buf[0] === 0x0d && this.buf.length > 1 && this.buf[1] === 0x0a) {
          this.consume(2);
          this.onHeartbeat?.();
        } else {
          break;
        }
      }
      if (this.buf.length === 0) return;
      if (this.buf[0] === 0x0d) return; // wait for the \n
      const isBinary = this.segments.length ? this.segments[0].isBinary : false;
      // find the blank line that ends the headers
      let pos = 0;
      const lines = [];
      let bodyStart = -1;
      for (;;) {
        const nl = this.buf.indexOf(0x0a, pos);
        if (nl < 0) break;
        let end = nl;
        if (end > pos && this.buf[end - 1] === 0x0d) end -= 1;
        const line = this.buf.subarray(pos, end).toString('utf8');
        pos = nl + 1;
        if (line === '' && lines.length > 0) {
          bodyStart = pos;
          break;
        }
        lines.push(line);
      }
      if (bodyStart < 0) return; // incomplete header section
      const command = lines[0];
      const rawHeaders = [];
      const headers = {};
      for (const line of lines.slice(1)) {
        const c = line.indexOf(':');
        const k = c < 0 ? line : line.slice(0, c);
        let v = c < 0 ? '' : line.slice(c + 1);
        if (command !== 'CONNECTED') v = unescapeHeader(v);
        rawHeaders.push([k, v]);
        if (!(k in headers)) headers[k] = v; // first one wins
      }
      let bodyEnd;
      if (headers['content-length'] !== undefined && /^\d+$/.test(headers['content-length'])) {
        const len = Number(headers['content-length']);
        if (this.buf.length < bodyStart + len + 1) return;
        bodyEnd = bodyStart + len;
        if (this.buf[bodyEnd] !== 0) {
          this.error = new Error(`frame ${command}: byte after content-length body is ${this.buf[bodyEnd]}, not NUL`);
        }
      } else {
        bodyEnd = this.buf.indexOf(0, bodyStart);
        if (bodyEnd < 0) return;
      }
      const body = Buffer.from(this.buf.subarray(bodyStart, bodyEnd));
      this.consume(bodyEnd + 1);
      this.onFrame({
        command,
        headers,
        rawHeaders,
        body,
        get text() { return body.toString('utf8'); },
        isBinary,
        at: Date.now(),
      });
    }
  }
}

// ---------------------------------------------------------------------------
// raw WebSocket client

/**
 * Open a raw WebSocket to the broker. Resolves when open (rejects on
 * handshake failure). options: protocols (default ['v12.stomp']), timeout.
 *
 * The returned object collects:
 *   messages    every WebSocket message {data: Buffer, isBinary, at}
 *   frames      parsed STOMP frames {command, headers, body, text, isBinary}
 *   heartbeats  number of EOL heart-beats received
 *   closed      {code, reason, at} once the socket closed, else null
 */
export async function openRaw(url, options = {}) {
  const { protocols = ['v12.stomp'], timeout = 5000 } = options;
  const ws = new WebSocket(url, protocols, { handshakeTimeout: timeout });
  const raw = {
    ws,
    messages: [],
    frames: [],
    heartbeats: 0,
    heartbeatTimes: [],
    closed: null,
    errors: [],
  };
  const parser = new FrameParser({
    onFrame: (f) => raw.frames.push(f),
    onHeartbeat: () => {
      raw.heartbeats += 1;
      raw.heartbeatTimes.push(Date.now());
    },
  });
  raw.parser = parser;
  ws.on('message', (data, isBinary) => {
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    raw.messages.push({ data: buf, isBinary, at: Date.now() });
    parser.push(buf, isBinary);
  });
  ws.on('error', (err) => raw.errors.push(err));
  const closedP = new Promise((resolve) => {
    ws.on('close', (code, reason) => {
      raw.closed = { code, reason: reason.toString(), at: Date.now() };
      resolve(raw.closed);
    });
  });

  raw.dispose = async () => {
    if (raw.closed) return;
    try {
      ws._socket?.resume();
    } catch { /* ignore */ }
    ws.terminate();
    await withTimeout(closedP, 2000, 'raw socket close').catch(() => {});
  };
  track(raw);

  /** Send a raw string or Buffer as one WebSocket message. */
  raw.send = (data, opts = {}) =>
    new Promise((resolve, reject) => {
      ws.send(data, opts, (err) => (err ? reject(err) : resolve()));
    });

  /** Send a frame built with buildFrame(). */
  raw.sendFrame = (command, headers = {}, body = '') => raw.send(buildFrame(command, headers, body));

  /**
   * Wait for a frame: pred is a command name or a predicate. Only frames
   * at index >= since are considered. Resolves to the frame.
   */
  raw.waitFrame = (pred, timeoutMs = 5000, since = 0) => {
    const test = typeof pred === 'string' ? (f) => f.command === pred : pred;
    return waitFor(
      () => raw.frames.slice(since).find(test),
      timeoutMs,
      typeof pred === 'string' ? `${pred} frame` : 'matching frame',
      { describe: () => raw.describe() },
    );
  };

  /** Wait for the socket to close. Resolves to {code, reason, at}. */
  raw.waitClose = (timeoutMs = 5000) =>
    waitFor(() => raw.closed, timeoutMs, 'WebSocket close', { describe: () => raw.describe() });

  /** Short summary of what was received, for error messages. */
  raw.describe = () => {
    const fr = raw.frames.slice(-5).map((f) => `${f.command} ${JSON.stringify(f.headers)} ${JSON.stringify(f.text.slice(0, 60))}`);
    return `${raw.frames.length} frames (last: ${fr.join(' | ') || 'none'}), ${raw.heartbeats} heart-beats, closed=${JSON.stringify(raw.closed)}, errors=${raw.errors.map((e) => e.message).join(';')}`;
  };

  /**
   * Send CONNECT (or `command`) and wait for CONNECTED or ERROR.
   * Resolves to that frame.
   */
  raw.connect = async (headers = { 'accept-version': '1.2', host: '127.0.0.1' }, command = 'CONNECT') => {
    const since = raw.frames.length;
    await raw.sendFrame(command, headers);
    return raw.waitFrame((f) => f.command === 'CONNECTED' || f.command === 'ERROR', 5000, since);
  };

  /** Pause reading from the TCP socket (simulates a consumer that never reads). */
  raw.pause = () => ws._socket.pause();
  raw.resume = () => ws._socket.resume();

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

/** openRaw + CONNECT (1.2 by default); throws unless CONNECTED. */
export async function openRawConnected(url, { version = '1.2', protocols, connectHeaders = {} } = {}) {
  const raw = await openRaw(url, { protocols: protocols ?? [`v${version.replace('.', '')}.stomp`] });
  const f = await raw.connect({ 'accept-version': version, host: '127.0.0.1', ...connectHeaders });
  if (f.command !== 'CONNECTED') {
    throw new Error(`expected CONNECTED, got ${f.command} ${JSON.stringify(f.headers)} ${f.text}`);
  }
  raw.connectedFrame = f;
  return raw;
}

/** Subscribe on a raw connection with a receipt and wait for it. */
export async function rawSubscribe(raw, destination, headers = {}) {
  const id = headers.id ?? uniq('sub');
  const receipt = uniq('rcpt');
  const since = raw.frames.length;
  await raw.sendFrame('SUBSCRIBE', { id, destination, ack: 'auto', ...headers, receipt });
  const f = await raw.waitFrame((fr) => (fr.command === 'RECEIPT' && fr.headers['receipt-id'] === receipt) || fr.command === 'ERROR', 5000, since);
  if (f.command !== 'RECEIPT') throw new Error(`SUBSCRIBE ${destination} got ${f.command} ${JSON.stringify(f.headers)} ${f.text}`);
  return id;
}

// ---------------------------------------------------------------------------
// plain HTTP upgrade request (to see non-101 responses and their bodies)

/**
 * Send a WebSocket upgrade request with optional Sec-WebSocket-Protocol and
 * resolve to {status, headers, body}. A 101 response resolves with status
 * 101 (and the socket is destroyed).
 */
export function upgradeRequest(httpBase, pathname = '/ws', protocol) {
  const u = new URL(pathname, httpBase);
  const headers = {
    Connection: 'Upgrade',
    Upgrade: 'websocket',
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
  };
  if (protocol !== undefined) headers['Sec-WebSocket-Protocol'] = protocol;
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'GET', headers, agent: false });
      req.on('upgrade', (res, socket) => {
        socket.destroy();
        resolve({ status: res.statusCode, headers: res.headers, body: '' });
      });
      req.on('response', (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => { body += c; });
        res.on('end', () => {
          resolve({ status: res.statusCode, headers: res.headers, body });
          req.destroy();
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    }),
    5000,
    `HTTP upgrade response from ${u}`,
  );
}

// ---------------------------------------------------------------------------
// misc helpers for tests

/** Wait until a STOMP.js handle's WebSocket closed. */
export function waitClosed(handle, timeoutMs = 5000) {
  return waitFor(() => handle.closes[0], timeoutMs, 'STOMP.js WebSocket close');
}
