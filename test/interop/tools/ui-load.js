#!/usr/bin/env node
// ui-load.js: how long the admin UI takes to show its data (bench/admin.sh).
//
//   node test/interop/tools/ui-load.js http://127.0.0.1:8080 [runs]
//
// Opens #/overview and #/clients in headless Chromium (playwright-core,
// executable $CHROMIUM or /usr/bin/chromium) and times each from the
// navigation to the data on screen: the overview's [data-stat=connections]
// tile filled in (not the "–" placeholder), the clients table's first row
// (table[data-table=clients] tr[data-id]). Each page is loaded `runs` times
// (default 5) in fresh pages of one browser context: the first load fetches
// the scripts, later ones hit the HTTP cache. Prints one line per page:
//
//   ui overview: 5 loads, first 412 ms, median 150 ms, max 412 ms, connections 10,000
//
// When the broker asks for a login, $DUPLEX_USER and $DUPLEX_PASSWORD are
// typed into the login form first (not timed). Exits 1 when a page does
// not show its data within $UI_LOAD_TIMEOUT ms (default 30000).
import { chromium } from 'playwright-core';

const base = (process.argv[2] || '').replace(/\/+$/, '');
const runs = Number(process.argv[3] || 5);
if (!/^https?:\/\//.test(base) || !(runs >= 1)) {
  console.error('usage: ui-load.js http://HOST:PORT [runs]');
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = Number(process.env.UI_LOAD_TIMEOUT || 30000);

// What "the data is shown" means for each page, evaluated in the page.
const pages = [
  {
    name: 'overview',
    ready: () => {
      const e = document.querySelector('[data-stat=connections]');
      const t = e ? e.textContent.trim() : '';
      return t !== '' && t !== '–' && t !== '-' && t !== '—' ? t : false;
    },
    what: 'connections',
  },
  {
    name: 'clients',
    ready: () => {
      const rows = document.querySelectorAll('table[data-table=clients] tr[data-id]');
      return rows.length > 0 ? String(rows.length) : false;
    },
    what: 'rows',
  },
];

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const ms = (v) => `${Math.round(v)} ms`;

async function login(page) {
  const form = await page.waitForSelector('#login-user, nav', { timeout: TIMEOUT });
  if ((await form.evaluate((e) => e.id)) !== 'login-user') return;
  if (!process.env.DUPLEX_USER) throw new Error('the broker asks for a login: set DUPLEX_USER and DUPLEX_PASSWORD');
  await page.fill('#login-user', process.env.DUPLEX_USER);
  await page.fill('#login-password', process.env.DUPLEX_PASSWORD || '');
  await page.click('#login-submit');
  await page.waitForSelector('nav', { timeout: TIMEOUT });
}

let browser;
let failed = false;
try {
  const launched = performance.now();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const context = await browser.newContext();
  {
    const page = await context.newPage();
    await page.goto(base + '/', { timeout: TIMEOUT });
    await login(page); // the cookie stays in the context
    await page.close();
  }
  console.error(`ui-load: browser up and logged in after ${ms(performance.now() - launched)}`);
  for (const p of pages) {
    const times = [];
    let shown = '';
    for (let i = 0; i < runs; i++) {
      const page = await context.newPage();
      const began = performance.now();
      try {
        await page.goto(`${base}/#/${p.name}`, { timeout: TIMEOUT });
        const h = await page.waitForFunction(p.ready, null, { timeout: TIMEOUT, polling: 'raf' });
        times.push(performance.now() - began);
        shown = await h.jsonValue();
      } catch (e) {
        console.log(`ui ${p.name}: FAIL: no data within ${TIMEOUT} ms (${e.message.split('\n')[0]})`);
        failed = true;
        await page.close();
        break;
      }
      await page.close();
    }
    if (times.length === runs) {
      const sorted = [...times].sort((a, b) => a - b);
      console.log(`ui ${p.name}: ${runs} loads, first ${ms(times[0])}, median ${ms(quantile(sorted, 0.5))}, ` +
        `max ${ms(sorted[sorted.length - 1])}, ${p.what} ${shown}`);
    }
  }
} catch (e) {
  console.log(`ui: FAIL: ${e.message.split('\n')[0]}`);
  failed = true;
} finally {
  if (browser) await browser.close();
}
process.exit(failed ? 1 : 0);
