// Bad input: each case must produce an ERROR frame with a `message` header
// and then the server closes the connection. A second, healthy client keeps
// receiving messages before and after.
//
// Broker: -max-frame-size 65536.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { cleanup, connectStomp, openRaw, openRawConnected, startBroker, uniq, waitFor } from './harness.js';

const T = { timeout: 10000 };

describe('bad input (-max-frame-size 65536)', () => {
  let broker;
  before(async () => {
    broker = await startBroker(['-max-frame-size', '65536']);
  }, { timeout: 15000 });
  afterEach(cleanup);
  after(async () => {
    await broker?.stop();
  });

  /** A healthy subscriber + publisher; check() proves delivery still works. */
  async function healthy() {
    const dest = `/topic/${uniq('healthy')}`;
    const sub = await connectStomp(broker.url);
    const pub = await connectStomp(broker.url);
    const s = await sub.subscribe(dest);
    let n = 0;
    const check = async (label) => {
      n += 1;
      const body = `${label}-${n}`;
      await pub.publishWithReceipt({ destination: dest, body });
      await waitFor(() => s.messages.some((m) => m.body === body), 3000, `healthy client to receive "${body}"`);
      assert.equal(sub.closes.length, 0, 'healthy subscriber was disconnected');
      assert.equal(sub.errors.length, 0, 'healthy subscriber got an ERROR');
    };
    return { check };
  }

  async function expectErrorThenClose(raw, { receiptId } = {}) {
    const err = await raw.waitFrame('ERROR', 5000);
    assert.ok(err.headers.message, `ERROR without message header: ${JSON.stringify(err.headers)} body=${JSON.stringify(err.text)}`);
    if (receiptId !== undefined) {
      assert.equal(err.headers['receipt-id'], receiptId, `ERROR headers: ${JSON.stringify(err.headers)}`);
    }
    await raw.waitClose(5000);
    return err;
  }

  /** run `bad(raw)` on a connected raw client between two healthy checks. */
  async function badCase(t, bad, { connect = true, receiptId } = {}) {
    const h = await healthy();
    await h.check('before');
    const raw = connect ? await openRawConnected(broker.url) : await openRaw(broker.url);
    await bad(raw);
    const err = await expectErrorThenClose(raw, { receiptId });
    t.diagnostic(`ERROR message: ${err.headers.message} | body: ${err.text.slice(0, 120)} | close: ${raw.closed.code}`);
    await h.check('after');
    return err;
  }

  test('garbage frame "\\x01\\x02garbage\\n\\n\\x00"', T, async (t) => {
    await badCase(t, (raw) => raw.send('\x01\x02garbage\n\n\x00'));
  });

  test('header line without a colon', T, async (t) => {
    await badCase(t, (raw) => raw.send('SEND\ndestination /topic/x\n\nbody\x00'));
  });

  test('unknown command FOO', T, async (t) => {
    await badCase(t, (raw) => raw.send('FOO\nx:y\n\n\x00'));
  });

  test('oversize frame: 100 KiB body with -max-frame-size 65536', T, async (t) => {
    await badCase(t, (raw) => raw.sendFrame('SEND', { destination: `/topic/${uniq('big')}` }, 'x'.repeat(100 * 1024)));
  });

  test('oversize binary frame with content-length', T, async (t) => {
    const body = Buffer.alloc(100 * 1024, 7);
    await badCase(t, (raw) => raw.sendFrame('SEND', { destination: `/topic/${uniq('bigb')}`, 'content-length': body.length }, body));
  });

  test('a frame just under max-frame-size is accepted', T, async () => {
    const h = await healthy();
    const raw = await openRawConnected(broker.url);
    await raw.sendFrame('SEND', { destination: `/topic/${uniq('ok')}`, receipt: 'ok-1' }, 'y'.repeat(60 * 1024));
    const r = await raw.waitFrame((f) => f.command === 'RECEIPT' || f.command === 'ERROR');
    assert.equal(r.command, 'RECEIPT', raw.describe());
    await h.check('after');
  });

  test('SEND missing destination (ERROR carries receipt-id)', T, async (t) => {
    await badCase(t, (raw) => raw.sendFrame('SEND', { receipt: 'bad-1' }, 'no destination'), { receiptId: 'bad-1' });
  });

  test('SUBSCRIBE missing destination', T, async (t) => {
    await badCase(t, (raw) => raw.sendFrame('SUBSCRIBE', { id: 's1' }));
  });

  test('SUBSCRIBE without id in STOMP 1.2', T, async (t) => {
    await badCase(t, (raw) => raw.sendFrame('SUBSCRIBE', { destination: `/topic/${uniq('noid')}` }));
  });

  test('SEND before CONNECT', T, async (t) => {
    await badCase(t, (raw) => raw.sendFrame('SEND', { destination: `/topic/${uniq('early')}` }, 'too early'), { connect: false });
  });

  test('SUBSCRIBE before CONNECT', T, async (t) => {
    await badCase(t, (raw) => raw.sendFrame('SUBSCRIBE', { id: 'x', destination: `/topic/${uniq('early')}` }), { connect: false });
  });

  test('SEND to a /topic containing the + wildcard', T, async (t) => {
    await badCase(t, (raw) => raw.sendFrame('SEND', { destination: `/topic/${uniq('wc')}/+/x` }, 'nope'));
  });

  test('SEND to a /topic containing the # wildcard', T, async (t) => {
    await badCase(t, (raw) => raw.sendFrame('SEND', { destination: `/topic/${uniq('wc')}/#` }, 'nope'));
  });

  test('SUBSCRIBE with an invalid filter (# not last)', T, async (t) => {
    await badCase(t, (raw) => raw.sendFrame('SUBSCRIBE', { id: 's1', destination: `/topic/${uniq('wc')}/#/x` }));
  });

  test('SEND to an unsupported destination prefix /exchange/x', T, async (t) => {
    await badCase(t, (raw) => raw.sendFrame('SEND', { destination: '/exchange/x' }, 'nope'));
  });

  test('SUBSCRIBE to an unsupported destination prefix /exchange/x', T, async (t) => {
    await badCase(t, (raw) => raw.sendFrame('SUBSCRIBE', { id: 's1', destination: '/exchange/x' }));
  });

  test('ACK of an unknown id', T, async (t) => {
    await badCase(t, (raw) => raw.sendFrame('ACK', { id: 'no-such-ack-id' }));
  });

  test('SEND in an unknown transaction', T, async (t) => {
    await badCase(t, (raw) => raw.sendFrame('SEND', { destination: `/topic/${uniq('tx')}`, transaction: 'no-such-tx' }, 'x'));
  });

  test('COMMIT of an unknown transaction (ERROR carries receipt-id)', T, async (t) => {
    await badCase(t, (raw) => raw.sendFrame('COMMIT', { transaction: 'no-such-tx', receipt: 'bad-commit' }), { receiptId: 'bad-commit' });
  });

  test('STOMP.js client: SEND to /exchange/x -> onStompError with message, then the socket closes', T, async () => {
    const h = await healthy();
    await h.check('before');
    const c = await connectStomp(broker.url);
    c.client.publish({ destination: '/exchange/x', body: 'nope' });
    await waitFor(() => c.errors.length === 1, 3000, 'onStompError');
    assert.ok(c.errors[0].headers.message);
    await waitFor(() => c.closes.length === 1, 3000, 'WebSocket close');
    await h.check('after');
  });

  test('ERROR body explains the problem (non-empty)', T, async (t) => {
    const err = await badCase(t, (raw) => raw.send('FOO\n\n\x00'));
    assert.ok(err.text.length > 0, `empty ERROR body; headers ${JSON.stringify(err.headers)}`);
  });
});
