// app.js: the admin UI shell. It asks /api/v1/me who we are, shows the
// login form when the broker wants one, else the header, the navigation
// and the page of the hash route (#/NAME?query -> pages/NAME.js).
import { api, events, setCSRF, h, APIError } from './lib.js';

const PAGES = [
  ['overview', 'Overview'], ['clients', 'Clients'], ['sessions', 'Sessions'],
  ['topics', 'Topics'], ['queues', 'Queues'], ['retained', 'Retained'],
  ['publish', 'Publish'], ['tail', 'Tail'], ['cluster', 'Cluster'],
];

const root = document.getElementById('app');
let me = null;          // the last /api/v1/me (or login) answer
let view = '';          // 'login' or 'shell'
let main = null;        // the shell's <main>, holding the current page
let current = null;     // {name, unmount}
let routeSeq = 0;       // bumps on every navigation; stale mounts unmount at once

async function start() {
  try {
    me = await api('GET', '/api/v1/me');
  } catch (e) {
    if (e instanceof APIError && e.status === 401) return showLogin();
    root.replaceChildren(h('div', { class: 'fatal' },
      h('h1', {}, 'Duplex'), h('p', { class: 'error' }, (e instanceof APIError ? 'The broker answered: ' : 'Cannot reach the broker: ') + e.message),
      h('button', { type: 'button', onclick: start }, 'Retry')));
    return;
  }
  if (me.auth_required && !me.logged_in) showLogin();
  else showShell();
}

// ---- login ----

function showLogin(notice) {
  unmountPage();
  view = 'login';
  setCSRF('');
  const user = h('input', { id: 'login-user', name: 'user', autocomplete: 'username', required: true });
  const pass = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { id: 'login-submit', type: 'submit', class: 'primary' }, 'Log in');
  const err = h('p', { class: 'error login-error', role: 'alert' }, notice || '');
  const form = h('form', { class: 'login', onsubmit: async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    err.textContent = '';
    try {
      me = await api('POST', '/api/v1/login', null, { user: user.value, password: pass.value });
      showShell();
    } catch (e) {
      err.textContent = e.status === 401 || e.status === 403 ? 'Login failed: ' + e.message : 'Error: ' + e.message;
      pass.value = '';
      pass.focus();
    } finally {
      submit.disabled = false;
    }
  } },
  h('h1', {}, 'Duplex'),
  h('p', { class: 'muted' }, 'Sign in with an admin account.'),
  h('label', {}, 'User', user),
  h('label', {}, 'Password', pass),
  submit, err);
  root.replaceChildren(h('div', { class: 'login-wrap' }, form));
  user.focus();
}

window.addEventListener('duplex:login-needed', () => {
  if (view === 'shell' && me && me.auth_required) showLogin('Your session has ended; please log in again.');
});

// ---- shell ----

function showShell() {
  view = 'shell';
  setCSRF(me.csrf_token);
  const nav = h('nav', {}, PAGES.map(([name, label]) => h('a', { href: '#/' + name, dataset: { nav: name } }, label)));
  const right = h('div', { class: 'who' },
    me.user ? h('span', { class: 'muted' }, me.user) : null,
    me.auth_required ? h('button', { id: 'logout', type: 'button', onclick: logout }, 'Log out') : null);
  const header = h('header', { class: 'top' },
    h('a', { class: 'brand', href: '#/overview' }, 'Duplex', h('span', { class: 'version', title: 'broker version' }, me.version || '')),
    nav, right);
  main = h('main');
  root.replaceChildren(header, main);
  route();
}

async function logout() {
  try { await api('POST', '/api/v1/logout'); } catch { /* the session may be gone already */ }
  me = { ...me, logged_in: false, user: '', csrf_token: '' };
  showLogin('Logged out.');
}

// ---- router ----

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const name = (q < 0 ? raw : raw.slice(0, q)) || 'overview';
  const params = Object.fromEntries(new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)));
  return { name, params };
}

/** navigate('clients', {q: 'abc'}) changes the hash; the router does the rest. */
function navigate(name, params) {
  const qs = new URLSearchParams(params || {}).toString();
  location.hash = '#/' + name + (qs ? '?' + qs : '');
}

function unmountPage() {
  routeSeq++;
  if (current && typeof current.unmount === 'function') {
    try { current.unmount(); } catch (e) { console.error(e); }
  }
  current = null;
}

async function route() {
  if (view !== 'shell') return;
  unmountPage();
  const seq = routeSeq;
  const { name, params } = parseHash();
  for (const a of document.querySelectorAll('nav a')) {
    const on = a.dataset.nav === name;
    a.classList.toggle('active', on);
    if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const section = h('section', { dataset: { page: name } });
  main.replaceChildren(section);
  document.title = 'Duplex · ' + name;
  if (!PAGES.some(([n]) => n === name)) return pageError(section, 'No such page: ' + name);
  let mod;
  try {
    mod = await import(`./pages/${name}.js`);
  } catch (e) {
    if (seq !== routeSeq) return;
    return pageError(section, `The ${name} page is not available in this build (${e.message}).`);
  }
  if (seq !== routeSeq) return;
  let unmount;
  try {
    unmount = await mod.mount(section, { api, events, params, navigate, me });
  } catch (e) {
    console.error(e);
    if (seq === routeSeq) pageError(section, `The ${name} page failed: ${e.message}`);
    return;
  }
  if (seq !== routeSeq) { if (typeof unmount === 'function') unmount(); return; }
  current = { name, unmount };
}

function pageError(section, text) {
  section.replaceChildren(h('div', { class: 'page-error' }, h('h2', {}, 'Sorry'), h('p', {}, text),
    h('p', {}, h('a', { href: '#/overview' }, 'Back to the overview'))));
}

window.addEventListener('hashchange', route);
start();
