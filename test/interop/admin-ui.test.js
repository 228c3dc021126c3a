// The admin UI in real headless Chromium (Debian's chromium, driven by
// playwright-core with executablePath) against the real broker binary,
// with a login (password file, admin user) and anonymous protocol clients
// (allow_anonymous): log in through the form; a STOMP.js and an MQTT.js
// client show up in the Clients table with their subscriptions; a message
// published from the Publish form reaches both clients and the Tail page;
// the overview's messages chart moves; a client disconnected from the
// Clients table is gone (and told so); a queue is purged; a retained
// message is deleted. A full-page screenshot of every page goes to
// build/screenshots/ at the repository root.
//
// `make interop` installs chromium when /usr/bin/chromium is missing; the
// file skips (with the reason) only when it is still missing.
// CHROMIUM_BIN overrides the browser path; HEADFUL=1 shows the window.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { chromium } from 'playwright-core';

import { connectStomp, uniq, waitFor } from './harness.js';
import { connectMqtt, mqttCleanup } from './mqtt-harness.js';
import {
  FAST_AUTH,
  passwordFile,
  pw,
  removeAllEnvs,
  repoRoot,
  secureEnv,
  startSecureBroker,
  stopAllBrokers,
} from './security-harness.js';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const SHOTS = path.join(repoRoot, 'build', 'screenshots');
const skip = existsSync(CHROMIUM)
  ? false
  : `no chromium at ${CHROMIUM}: install Debian's chromium (make interop does: apt-get install --no-install-recommends chromium) or set CHROMIUM_BIN`;
if (skip) console.error(`admin-ui.test.js skipped: ${skip}`);

const T = { timeout: 90000 };
const UI_TIMEOUT = 20000; // ms: deadline of each wait on the page

after(async () => {
  await mqttCleanup();
  try {
    await stopAllBrokers(); // fails the file if the broker did not exit cleanly (race report, panic, hang)
  } finally {
    await removeAllEnvs();
  }
});

describe('admin UI in headless Chromium', { skip }, () => {
  let b; // broker
  let base; // http://127.0.0.1:PORT
  let browser;
  let context;
  let page;
  const pageErrors = [];
  const consoleErrors = [];

  // the protocol clients
  const stompClientId = uniq('ui-stomp');
  const mqttClientId = uniq('ui-mqtt');
  let st; // STOMP.js handle
  let stSession; // its session id (CONNECTED session header)
  let stSub; // its /topic/ui/test subscription
  const durableId = uniq('ui-durable'); // its durable subscription (RabbitMQ dialect), deleted from the Queues page
  let mq; // MQTT.js handle
  const retainedTopic = `ui/keep/${uniq('r')}`;

  before(async () => {
    await mkdir(SHOTS, { recursive: true });
    const env = await secureEnv({ pki: false });
    await env.write('passwd', passwordFile(['admin']));
    b = await startSecureBroker(env, {
      password_file: env.path('passwd'),
      admins: ['admin'],
      allow_anonymous: true,
      auth: FAST_AUTH,
    });
    base = `http://127.0.0.1:${b.port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: !process.env.HEADFUL,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'].filter((a) => a !== '--headless' || !process.env.HEADFUL),
    });
    context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    page = await newPage();
  }, { timeout: 60000 });

  after(async () => {
    await browser?.close().catch(() => {});
  });

  async function newPage() {
    const p = await context.newPage();
    p.setDefaultTimeout(UI_TIMEOUT);
    p.on('pageerror', (e) => pageErrors.push(`${p.url()}: ${e.message}`));
    p.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`${p.url()}: ${m.text()}`); });
    p.on('dialog', (d) => d.accept()); // confirmAction (window.confirm)
    return p;
  }

  /** Go to #/NAME and wait for its <section data-page=NAME>; old toasts go. */
  async function open(name, p = page) {
    await p.goto(`${base}/#/${name}`);
    await p.waitForSelector(`section[data-page="${name}"]`);
    await p.$$eval('[data-toast]', (ts) => ts.forEach((t) => t.remove()));
  }

  async function shot(name, p = page) {
    await p.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  }

  /**
   * Poll check() (async, truthy when done) until the deadline; between
   * tries, press every reload button ([data-refresh]) of the page, or
   * reload the page when it has none. No fixed sleeps: waitFor polls.
   */
  async function until(check, what, { p = page, timeout = UI_TIMEOUT, refresh = true } = {}) {
    let last;
    return waitFor(async () => {
      last = await check();
      if (last) return last;
      if (refresh) {
        const n = await p.$$eval('section[data-page] [data-refresh]', (bs) => { bs.forEach((x) => x.click()); return bs.length; });
        if (n === 0) await p.reload();
      }
      return false;
    }, timeout, what, { interval: 250, describe: () => `${p.url()}; page errors: ${JSON.stringify(pageErrors.slice(-3))}` });
  }

  /** The data-id of every row of table[data-table=NAME]. */
  const rowIds = (name, p = page) => p.$$eval(`table[data-table="${name}"] tbody tr[data-id]`, (rs) => rs.map((r) => r.dataset.id));
  /** The text of row ID of table NAME ('' when absent). */
  const rowText = (name, id, p = page) => p.$$eval(`table[data-table="${name}"] tbody tr[data-id]`,
    (rs, want) => (rs.find((r) => r.dataset.id === want)?.innerText ?? ''), id);
  const cssAttr = (v) => JSON.stringify(v); // a quoted attribute value for a selector

  test('the login page, then the login form', T, async () => {
    await page.goto(`${base}/`);
    await page.waitForSelector('#login-user');
    await shot('login');
    // a wrong password first: the form stays, with an error
    await page.fill('#login-user', 'admin');
    await page.fill('#login-password', 'wrong');
    await page.click('#login-submit');
    await page.waitForSelector('.login-error:not(:empty), [role=alert]:not(:empty)');
    assert.ok(await page.$('#login-user'), 'the login form stays after a wrong password');
    await page.fill('#login-user', 'admin');
    await page.fill('#login-password', pw('admin'));
    await page.click('#login-submit');
    await page.waitForSelector('nav a[href="#/overview"]');
    assert.ok(await page.$('#logout'), 'a logout button once logged in');
    assert.equal(await page.$('#login-user'), null, 'the login form is gone');
  });

  test('a STOMP.js and an MQTT.js client appear in the Clients table', T, async () => {
    st = await connectStomp(b.url, { connectHeaders: { 'client-id': stompClientId } });
    stSession = st.connectedFrame.headers.session;
    assert.ok(stSession, 'CONNECTED has a session header');
    stSub = await st.subscribe('/topic/ui/test');
    await st.subscribe('/topic/ui/durable', { id: durableId, durable: 'true', 'auto-delete': 'false', ack: 'client-individual' });
    // three messages for a queue nobody consumes (purged later)
    for (let i = 0; i < 3; i++) await st.publishWithReceipt({ destination: '/queue/ui-q', body: `q${i}` });

    mq = await connectMqtt(b.mqttUrl, { protocolVersion: 5, clientId: mqttClientId, clean: false, properties: { sessionExpiryInterval: 600 } });
    await mq.client.subscribeAsync('ui/test', { qos: 1 });
    await mq.client.subscribeAsync('$share/ui-group/ui/shared/+', { qos: 0 });
    await mq.client.publishAsync(retainedTopic, 'kept for the Retained page', { qos: 1, retain: true });

    await open('clients');
    await until(async () => {
      const ids = await rowIds('clients');
      return ids.includes(stSession) && ids.includes(mqttClientId);
    }, `clients table rows ${stSession} and ${mqttClientId}`);
    const stRow = await rowText('clients', stSession);
    assert.match(stRow, /stomp/i, 'the STOMP client row names its protocol');
    const mqRow = await rowText('clients', mqttClientId);
    assert.match(mqRow, /mqtt/i, 'the MQTT client row names its protocol');
    await shot('clients');

    await open('sessions');
    await until(async () => (await rowIds('sessions')).includes(mqttClientId), `persistent session ${mqttClientId} on the Sessions page`);
    await shot('sessions');
  });

  test('the Cluster page on a single node: this node alone, and where each client is', T, async () => {
    await open('cluster');
    await until(async () => (await rowIds('nodes')).length === 1, 'one row in the nodes table');
    const [self] = await rowIds('nodes');
    const row = await rowText('nodes', self);
    assert.match(row, /this node/, `the row is this node: ${JSON.stringify(row)}`);
    assert.match(row, /ready/, `this node is ready: ${JSON.stringify(row)}`);
    assert.match(await page.innerText('[data-cluster="summary"]'), /Single node/);
    await page.fill('input[data-filter="cluster-clients"]', mqttClientId);
    await until(async () => {
      const ids = await rowIds('cluster-clients');
      return ids.length === 1 && ids[0] === `${mqttClientId}@${self}`;
    }, `client ${mqttClientId} alone, on node ${self}, in the client search`);
    await shot('cluster');
  });

  test('their subscriptions on the Topics page (tree and list)', T, async () => {
    await open('topics');
    // the tree: ui -> ui/test with both subscriptions
    await until(async () => (await rowIds('topics')).includes('ui'), 'topic tree node "ui"');
    await page.click(`table[data-table="topics"] tr[data-id="ui"] td:first-child button`);
    await until(async () => (await rowIds('topics')).includes('ui/test'), 'topic tree node "ui/test"', { refresh: false });
    const node = await rowText('topics', 'ui/test');
    const [here, total] = node.split('\t').slice(1, 3).map((s) => Number(s.replace(/[^0-9]/g, '')));
    assert.ok(here >= 2 && total >= 2, `ui/test counts both subscriptions: ${JSON.stringify(node)}`);
    assert.match(await page.$eval('[data-breadcrumb]', (e) => e.innerText), /ui/);

    // the list: one row per subscription, keyed by session id and the protocol's key
    await until(async () => {
      const ids = await rowIds('subscriptions');
      return ids.includes(`${mqttClientId} ui/test`) && ids.some((id) => id.startsWith(`${stSession} `));
    }, 'both subscriptions in the subscriptions table');
    const stompRows = await Promise.all((await rowIds('subscriptions')).filter((id) => id.startsWith(`${stSession} `)).map((id) => rowText('subscriptions', id)));
    assert.ok(stompRows.some((t) => /ui\/test/.test(t)), `the STOMP subscription shows its filter: ${JSON.stringify(stompRows)}`);
    assert.ok(stompRows.some((t) => /durable/.test(t) && t.includes(durableId)), `the STOMP durable subscription is listed: ${JSON.stringify(stompRows)}`);
    // the share group
    await until(async () => (await rowIds('shares')).includes('ui-group/ui/shared/+'), 'share group ui-group on ui/shared/+');
    assert.match(await rowText('shares', 'ui-group/ui/shared/+'), /\b1\b/, 'one member');
    await shot('topics');
  });

  test('a message from the Publish form reaches both clients and the Tail page', T, async () => {
    // the tail runs in its own tab while this one publishes
    const tail = await newPage();
    await open('tail', tail);
    await tail.fill('#tail-filter', 'ui/#');
    await tail.click('#tail-start');

    await open('publish');
    const body = `hello from the admin UI ${uniq('m')}`;
    await page.fill('#pub-topic', 'ui/test');
    await page.fill('#pub-payload', body);
    await page.selectOption('#pub-qos', '1');
    await page.fill('#pub-content-type', 'text/plain');
    await page.click('#pub-submit');
    await page.waitForSelector('[data-toast]');
    assert.equal(await page.$eval('#pub-error', (e) => e.textContent), '', 'no error under the form');
    await shot('publish');

    await mq.waitMessages(1, (m) => m.topic === 'ui/test' && m.payload.toString() === body, 5000, 'the published message at MQTT.js');
    await waitFor(() => stSub.bodies().includes(body), 5000, 'the published message at STOMP.js', { describe: () => JSON.stringify(stSub.bodies()) });

    // A tail that subscribes after the publish misses it: publish again
    // (from the form) until one shows up in the list.
    const msgs = `#tail-messages > .tail-msg[data-topic="ui/test"]`;
    await until(async () => {
      const texts = await tail.$$eval(msgs, (ms) => ms.map((m) => m.innerText));
      if (texts.some((t) => t.includes(body))) return true;
      await page.click('#pub-submit');
      return false;
    }, 'the published message on the Tail page', { p: tail, refresh: false });
    await shot('tail', tail);

    // the form's error path: a wildcard is not a topic name
    await page.fill('#pub-topic', 'ui/#');
    await page.click('#pub-submit');
    await page.waitForSelector('#pub-error:not(:empty)');
    await tail.close();
  });

  test('the overview messages chart moves with a burst of messages', T, async () => {
    await open('overview');
    const chart = '[data-chart="messages"]';
    await page.waitForSelector(`${chart}[data-points]`);
    const points0 = Number(await page.getAttribute(chart, 'data-points'));
    let sent = 0;
    let lastIn = 0;
    await waitFor(async () => {
      // a burst each poll, so some 1 s sample sees messages in
      const burst = [];
      for (let i = 0; i < 20; i++) burst.push(mq.client.publishAsync('ui/burst', `b${sent++}`, { qos: 0 }));
      await Promise.all(burst);
      lastIn = Number(await page.getAttribute(chart, 'data-last-in'));
      const points = Number(await page.getAttribute(chart, 'data-points'));
      return lastIn > 0 && points > points0;
    }, 15000, 'data-last-in > 0 and more data-points on the messages chart', {
      interval: 200,
      describe: () => `data-last-in=${lastIn}, points0=${points0}`,
    });
    const stat = await page.$eval('[data-stat="msgs_in_rate"]', (e) => e.textContent);
    assert.ok(stat.trim() !== '', 'the msgs_in_rate tile has a value');
    await shot('overview');
  });

  test('disconnect the STOMP client from the Clients table', T, async () => {
    await open('clients');
    await until(async () => (await rowIds('clients')).includes(stSession), `clients row ${stSession}`);
    await page.click(`table[data-table="clients"] tr[data-id=${cssAttr(stSession)}] button[data-action="disconnect"]`);
    await waitFor(() => st.isClosed(), 5000, 'the STOMP.js connection closed by the admin');
    assert.ok(st.errors.length >= 1, 'the STOMP client got an ERROR frame before the close');
    await until(async () => !(await rowIds('clients')).includes(stSession), `clients row ${stSession} gone`);
    assert.ok((await rowIds('clients')).includes(mqttClientId), 'the MQTT client stays');
    assert.equal(mq.closed, false, 'the MQTT client is still connected');
  });

  test('purge a queue from the Queues page', T, async () => {
    // a fourth message for ui-q, from the Publish form's queue mode
    await open('publish');
    await page.selectOption('#pub-kind', 'queue');
    await page.fill('#pub-topic', 'ui-q');
    await page.fill('#pub-payload', 'q3 from the form');
    await page.click('#pub-submit');
    await page.waitForSelector('[data-toast]');
    assert.equal(await page.$eval('#pub-error', (e) => e.textContent), '', 'no error under the form');

    await open('queues');
    const readyOf = (id) => page.$$eval(`table[data-table="queues"] tr[data-id=${cssAttr(id)}] td`, (tds) => tds.map((td) => td.innerText.trim())[2]);
    await until(async () => (await readyOf('ui-q')) === '4', 'queue ui-q with 4 ready messages');
    await page.click(`table[data-table="queues"] tr[data-id="ui-q"] button[data-action="purge"]`);
    await page.waitForSelector('[data-toast]');
    await until(async () => (await readyOf('ui-q')) === '0', 'ui-q ready 0 after the purge');
    await shot('queues');

    // the durable subscription of the (now disconnected) STOMP client: only durable ones have a delete button
    assert.equal(await page.$(`table[data-table="queues"] tr[data-id="ui-q"] button[data-action="delete"]`), null, 'no delete button for a plain queue');
    await page.selectOption('section[data-page="queues"] select[data-kind]', 'durable');
    let durable;
    await until(async () => {
      durable = (await rowIds('queues')).find((id) => id.includes(durableId));
      return durable && !(await rowIds('queues')).includes('ui-q');
    }, `only durable subscriptions, ${durableId} among them`);
    await page.click(`table[data-table="queues"] tr[data-id=${cssAttr(durable)}] button[data-action="delete"]`);
    await page.waitForSelector('[data-toast]');
    await until(async () => !(await rowIds('queues')).includes(durable), `durable subscription ${durable} gone`);
  });

  test('delete a retained message from the Retained page', T, async () => {
    await open('retained');
    // the topic-prefix filter hides the broker's own $SYS topics
    await page.fill('input[data-filter="retained"]', 'ui/');
    await until(async () => {
      const ids = await rowIds('retained');
      return ids.includes(retainedTopic) && ids.every((id) => id.startsWith('ui/'));
    }, `retained row ${retainedTopic} alone under ui/`, { refresh: false });
    assert.match(await rowText('retained', retainedTopic), /kept for the Retained page/, 'the preview shows the text payload');
    await shot('retained');
    await page.click(`table[data-table="retained"] tr[data-id=${cssAttr(retainedTopic)}] button[data-action="delete"]`);
    await until(async () => !(await rowIds('retained')).includes(retainedTopic), `retained row ${retainedTopic} gone`);
    // and the broker agrees: a new subscriber gets no retained message
    const fresh = await connectMqtt(b.mqttUrl, { protocolVersion: 5, clientId: uniq('ui-check') });
    await fresh.client.subscribeAsync(retainedTopic, { qos: 1 });
    await fresh.client.subscribeAsync('ui/marker2', { qos: 1 });
    await fresh.client.publishAsync('ui/marker2', 'm', { qos: 1 });
    await fresh.waitMessages(1, (m) => m.topic === 'ui/marker2', 5000, 'the marker');
    assert.equal(fresh.on(retainedTopic).length, 0, 'no retained message after the delete');
  });

  test('log out', T, async () => {
    await page.click('#logout');
    await page.waitForSelector('#login-user');
  });

  test('no uncaught errors in the pages', () => {
    assert.deepEqual(pageErrors, [], 'uncaught exceptions in the UI');
  });
});
