// Self-checks of the harness itself. These use fake "brokers" (shell
// scripts), so they run even when the real broker is not built.

import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { buildFrame, FrameParser, startBroker, waitFor } from './harness.js';

const T = { timeout: 10000 };

describe('harness self-check', () => {
  let dir;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'duplex-harness-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function script(name, body) {
    const p = path.join(dir, name);
    await writeFile(p, `#!/bin/sh\n${body}\n`);
    await chmod(p, 0o755);
    return p;
  }

  test('missing binary gives a clear error naming the path and DUPLEX_BIN', T, async () => {
    const bin = path.join(dir, 'does-not-exist');
    await assert.rejects(startBroker([], { bin }), (err) => {
      assert.match(err.message, /not found/);
      assert.ok(err.message.includes(bin), err.message);
      assert.match(err.message, /DUPLEX_BIN/);
      return true;
    });
  });

  test('binary that exits early fails fast with its stderr and exit code', T, async () => {
    const bin = await script('early-exit', 'echo "flag provided but not defined: -bogus" >&2; exit 2');
    const started = Date.now();
    await assert.rejects(startBroker([], { bin, startTimeout: 8000 }), (err) => {
      assert.match(err.message, /exited before listening/);
      assert.match(err.message, /code=2/);
      assert.match(err.message, /flag provided but not defined/);
      return true;
    });
    assert.ok(Date.now() - started < 4000, 'did not fail fast');
  });

  test('binary that never prints the listening line times out', T, async () => {
    const bin = await script('silent', 'echo "something else"; exec sleep 30');
    await assert.rejects(startBroker([], { bin, startTimeout: 300 }), /did not print "duplex listening on/);
  });

  test('parses the listening line, passes -addr/-data, stop() sends SIGTERM', T, async () => {
    const bin = await script('fake', 'echo "args: $*" >&2; echo "duplex listening on 127.0.0.1:45678"; exec sleep 30');
    const b = await startBroker(['-max-frame-size', '65536'], { bin });
    assert.equal(b.port, 45678);
    assert.equal(b.url, 'ws://127.0.0.1:45678/ws');
    await waitFor(() => b.stderrTail().includes('args:'), 2000, 'fake stderr');
    assert.match(b.stderrTail(), /-addr 127\.0\.0\.1:0 -stomp-tcp-addr= -mqtt-tcp-addr= -data \S+ -max-frame-size 65536/);
    const res = await b.stop();
    assert.equal(res.signal, 'SIGTERM');
    assert.equal(res.killed, false);
  });

  test('stop() kills a process that ignores SIGTERM after the deadline', T, async () => {
    const bin = await script('stubborn', "trap '' TERM; echo 'duplex listening on 127.0.0.1:45679'; while :; do sleep 0.1; done");
    const b = await startBroker([], { bin });
    const res = await b.stop({ timeout: 300 });
    assert.equal(res.killed, true);
    assert.equal(res.signal, 'SIGKILL');
  });

  test('waitFor returns the value, and times out with a clear message', T, async () => {
    let n = 0;
    assert.equal(await waitFor(() => (++n >= 3 ? 'ok' : null), 1000, 'counter'), 'ok');
    await assert.rejects(waitFor(() => false, 50, 'never-true thing', { describe: () => 'state=42' }), /timed out after 50 ms waiting for never-true thing; observed: state=42/);
  });

  test('FrameParser: heart-beats, several frames per message, frames split across messages, content-length with NULs', T, () => {
    const frames = [];
    let hb = 0;
    const p = new FrameParser({ onFrame: (f) => frames.push(f), onHeartbeat: () => { hb += 1; } });
    p.push(Buffer.from('\n'), false);
    p.push(Buffer.from('\r\n'), false);
    p.push(Buffer.from(`${buildFrame('RECEIPT', { 'receipt-id': 'a' })}\n${buildFrame('MESSAGE', { destination: '/topic/a\\cb' }, 'hi')}`), false);
    const bin = Buffer.from([0, 1, 2, 0, 255]);
    const f = buildFrame('MESSAGE', { 'content-length': bin.length }, bin);
    p.push(f.subarray(0, 10), true);
    p.push(f.subarray(10), true);
    assert.equal(hb, 3);
    assert.equal(frames.length, 3);
    assert.equal(frames[0].command, 'RECEIPT');
    assert.equal(frames[1].headers.destination, '/topic/a:b');
    assert.equal(frames[1].text, 'hi');
    assert.equal(frames[1].isBinary, false);
    assert.deepEqual([...frames[2].body], [...bin]);
    assert.equal(frames[2].isBinary, true);
  });
});
