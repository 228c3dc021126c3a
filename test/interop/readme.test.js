// The README's STOMP.js snippet, run verbatim (only the URL changes) against
// the real broker: what a new user copies must work.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { startBroker, cleanup, withTimeout } from './harness.js';

const here = path.dirname(fileURLToPath(import.meta.url));
after(cleanup);

/** readmeSnippet returns the code block between the readme-snippet markers. */
function readmeSnippet(name) {
  const readme = readFileSync(path.join(here, '..', '..', 'README.md'), 'utf8');
  const start = readme.indexOf(`<!-- readme-snippet:${name} -->`);
  const end = readme.indexOf('<!-- /readme-snippet -->', start);
  assert.ok(start >= 0 && end > start, `README.md has no readme-snippet:${name} block`);
  const block = readme.slice(start, end);
  const m = block.match(/```js\n([\s\S]*?)```/);
  assert.ok(m, 'the snippet block holds a js code fence');
  return m[1];
}

/**
 * runSnippet runs a README snippet against a fresh broker (its make-run
 * address replaced by the broker's) and returns its stdout.
 */
async function runSnippet(name, makeRunURL, brokerURL) {
  const broker = await startBroker();
  const code = readmeSnippet(name);
  assert.ok(code.includes(`'${makeRunURL}`), `the ${name} snippet targets make run's address ${makeRunURL}`);
  // The snippet lives in this folder while it runs, so its imports resolve
  // from this folder's node_modules.
  const file = path.join(here, `.readme-snippet-${name}-${process.pid}.mjs`);
  writeFileSync(file, code.replaceAll(makeRunURL, brokerURL(broker)));
  try {
    const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const exit = await withTimeout(new Promise((resolve) => child.on('exit', resolve)), 10000, `README ${name} snippet to exit`)
      .catch((e) => { child.kill('SIGKILL'); throw e; });
    assert.equal(exit, 0, `snippet exited ${exit}: ${err}`);
    return out;
  } finally {
    rmSync(file, { force: true });
    await broker.stop();
  }
}

test('README STOMP.js snippet sends and receives through the broker', async () => {
  const out = await runSnippet('stompjs', 'ws://127.0.0.1:8080/ws', (b) => b.url);
  assert.match(out, /received on \/topic\/greetings\/world: Hello, Duplex!/);
});

test('README STOMP.js durable subscription snippet gets what was published while it was away', async () => {
  const out = await runSnippet('stompjs-durable', 'ws://127.0.0.1:8080/ws', (b) => b.url);
  assert.match(out, /kept for the audit: order 42 placed/);
});

test('README MQTT.js snippet sends and receives through the broker', async () => {
  const out = await runSnippet('mqttjs', 'ws://127.0.0.1:8080/mqtt', (b) => b.url.replace(/\/ws$/, '/mqtt'));
  assert.match(out, /received on sensors\/t1: 21\.5 \(text\/plain\)/);
});
