// Three broker processes as one cluster (embedded NATS routes on
// loopback), seen through the admin UI's Cluster page in headless
// Chromium, with the README's client set-ups for a cluster: MQTT.js with
// `servers` (one per node) and STOMP.js whose beforeConnect picks the next
// URL. Node 1 stops (SIGTERM): the page lists it as stopped, both clients
// move to another node and get a message published on node 3; node 1
// starts again on the same ports and the page lists it up.
//
// Skips, like admin-ui.test.js, when there is no chromium.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { chromium } from 'playwright-core';

import { Client, WebSocket, startBroker, uniq, waitFor } from './harness.js';
import { freePort, mqtt } from './mqtt-harness.js';
import { repoRoot } from './security-harness.js';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const SHOTS = path.join(repoRoot, 'build', 'screenshots');
const skip = existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM} (see admin-ui.test.js)`;
const T = { timeout: 120000 };
const WAIT = 30000; // ms: deadline of each wait

// STOMP.js makes its own WebSocket from brokerURL, as in a browser; Node 20
// has no global WebSocket.
globalThis.WebSocket ??= WebSocket;

describe('cluster of three in the admin UI, clients failing over', { skip }, () => {
  const nodes = []; // {http, mqtt, route, dataDir, args, b}
  let browser;
  let page;
  let mq;
  let st;
  const pageErrors = [];
  const stompMsgs = [];
  const mqttMsgs = [];
  const base = uniq('cl');
  const mqttId = uniq('cl-mqtt');

  async function start(n) {
    n.b = await startBroker(n.args, { dataDir: n.dataDir, startTimeout: 20000 });
    await waitFor(async () => {
      const r = await fetch(`http://127.0.0.1:${n.http}/readyz`).catch(() => null);
      return r && r.status === 200;
    }, WAIT, `node on ${n.http} ready`, { interval: 100 });
  }

  before(async () => {
    await mkdir(SHOTS, { recursive: true });
    for (let i = 0; i < 3; i++) {
      nodes.push({ http: await freePort(), route: await freePort(), dataDir: await mkdtemp(path.join(os.tmpdir(), 'duplex-cluster-ui-')) });
    }
    for (const [i, n] of nodes.entries()) {
      const peers = nodes.filter((_, j) => j !== i).map((p) => `127.0.0.1:${p.route}`).join(',');
      n.args = ['-addr', `127.0.0.1:${n.http}`, '-cluster-name', 'ui', '-cluster-listen', `127.0.0.1:${n.route}`, '-cluster-peers', peers];
    }
    await Promise.all(nodes.map(start));
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    page = await (await browser.newContext({ viewport: { width: 1440, height: 900 } })).newPage();
    page.setDefaultTimeout(WAIT);
    page.on('pageerror', (e) => pageErrors.push(e.message));
  }, { timeout: 90000 });

  after(async () => {
    mq?.end(true);
    await st?.deactivate().catch(() => {});
    await browser?.close().catch(() => {});
    for (const n of nodes) {
      if (n.b && !n.b.exited) await n.b.stop();
      await rm(n.dataDir, { recursive: true, force: true }).catch(() => {});
    }
  });

  /** The nodes table's rows: [{id, state, text}]. */
  const nodeRows = () => page.$$eval('table[data-table="nodes"] tbody tr[data-id]',
    (rs) => rs.map((r) => ({ id: r.dataset.id, state: r.dataset.state, text: r.innerText })));

  /** Poll check() on node 2's Cluster page, pressing its reload buttons between tries. */
  async function until(check, what) {
    return waitFor(async () => {
      const v = await check();
      if (v) return v;
      await page.$$eval('section[data-page] [data-refresh]', (bs) => bs.forEach((x) => x.click()));
      return false;
    }, WAIT, what, { interval: 300, describe: () => `page errors: ${JSON.stringify(pageErrors.slice(-3))}` });
  }

  test('the Cluster page lists the three nodes, ready', T, async () => {
    await page.goto(`http://127.0.0.1:${nodes[1].http}/#/cluster`);
    await page.waitForSelector('section[data-page="cluster"]');
    const rows = await until(async () => {
      const rs = await nodeRows();
      return rs.length === 3 && rs.every((r) => r.state === 'up' && /ready/.test(r.text)) && rs;
    }, 'three nodes up and ready');
    assert.match(rows[0].text, /this node/);
    assert.match(await page.innerText('[data-cluster="summary"]'), /3 of 3 nodes answering/);
  });

  test('MQTT.js with servers and STOMP.js with beforeConnect are found on their nodes', T, async () => {
    mq = mqtt.connect({
      servers: nodes.map((n) => ({ host: '127.0.0.1', port: n.http })),
      protocol: 'ws', path: '/mqtt', protocolVersion: 5, clientId: mqttId, reconnectPeriod: 200,
    });
    mq.on('connect', () => mq.subscribe(`${base}/#`, { qos: 1 }));
    mq.on('message', (topic) => mqttMsgs.push(topic));
    const urls = [nodes[0], nodes[2], nodes[1]].map((n) => `ws://127.0.0.1:${n.http}/ws`);
    let next = 0;
    st = new Client({
      beforeConnect: (c) => { c.brokerURL = urls[next++ % urls.length]; },
      reconnectDelay: 200, heartbeatIncoming: 0, heartbeatOutgoing: 0, debug: () => {},
      onConnect: () => st.subscribe(`/topic/${base}/#`, (m) => stompMsgs.push(m.headers.destination)),
    });
    st.activate();
    const publish = async (n, topic) => {
      const r = await fetch(`http://127.0.0.1:${n.http}/api/v1/publish`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ topic, payload: 'x', qos: 1 }),
      });
      assert.equal(r.status, 200, await r.text());
    };
    let k = 0;
    await waitFor(async () => {
      await publish(nodes[2], `${base}/start/${k++}`);
      return mqttMsgs.some((t) => t.startsWith(`${base}/start/`)) && stompMsgs.some((d) => d.includes(`${base}/start/`));
    }, WAIT, 'both clients get a message from node 3', { interval: 200 });

    // Both started on node 1 (the first of their lists).
    const self1 = (await nodeRows()).find((r) => r.id.endsWith(`:${nodes[0].route}`)).id;
    await page.fill('input[data-filter="cluster-clients"]', mqttId);
    await until(async () => (await page.$$eval('table[data-table="cluster-clients"] tbody tr[data-id]', (rs) => rs.map((r) => r.dataset.id)))
      .includes(`${mqttId}@${self1}`), `${mqttId} on ${self1} in the client search`);
    await page.screenshot({ path: path.join(SHOTS, 'cluster-3-nodes.png'), fullPage: true });

    // Node 1 stops: listed stopped; both clients move and are served.
    await nodes[0].b.stop({ timeout: 15000 });
    await until(async () => (await nodeRows()).find((r) => r.id === self1)?.state === 'stopped', `${self1} listed as stopped`);
    await waitFor(async () => {
      await publish(nodes[2], `${base}/moved/${k++}`);
      return mqttMsgs.some((t) => t.startsWith(`${base}/moved/`)) && stompMsgs.some((d) => d.includes(`${base}/moved/`));
    }, WAIT, 'both clients served by another node after node 1 stopped', { interval: 200 });
    await page.screenshot({ path: path.join(SHOTS, 'cluster-node-stopped.png'), fullPage: true });

    await start(nodes[0]);
    await until(async () => {
      const rs = await nodeRows();
      return rs.length === 3 && rs.every((r) => r.state === 'up');
    }, 'node 1 back up');
    assert.deepEqual(pageErrors, []);
  });
});
