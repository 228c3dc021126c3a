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

test('README STOMP.js snippet sends and receives through the broker', async () => {
  const broker = await startBroker();
  const code = readmeSnippet('stompjs');
  assert.ok(code.includes("'ws://127.0.0.1:8080/ws'"), 'the snippet targets make run\'s address');
  // The snippet lives in this folder while it runs, so its imports resolve
  // from this folder's node_modules.
  const file = path.join(here, `.readme-snippet-${process.pid}.mjs`);
  writeFileSync(file, code.replaceAll('ws://127.0.0.1:8080/ws', broker.url));
  try {
    const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const code = await withTimeout(new Promise((resolve) => child.on('exit', resolve)), 10000, 'README snippet to exit')
      .catch((e) => { child.kill('SIGKILL'); throw e; });
    assert.equal(code, 0, `snippet exited ${code}: ${err}`);
    assert.match(out, /received on \/topic\/greetings\/world: Hello, Duplex!/);
  } finally {
    rmSync(file, { force: true });
    await broker.stop();
  }
});
