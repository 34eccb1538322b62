// The status page: sign-in, the live overview, a channel's detail, the message browser,
// and the routing and notices that tie them together. Plain ES modules served by the
// engine; no build step.

import { api, ApiError, errorTitle, setCsrf, whenUnauthorized } from './api.js';
import { h, fill } from './dom.js';
import { refreshTimes, setServerTime, ago } from './format.js';
import { LiveStatus } from './live.js';
import { renderAlerts } from './alerts.js';
import { createOverview } from './overview.js';
import { createDetail } from './detail.js';
import { createMessageBrowser } from './browse.js';
import { createRevisions } from './revisions.js';

const $ = (id) => document.getElementById(id);

const session = { user: null, role: null, permissions: new Set() };
let snapshot = { channels: [], alerts: [], at: null };
let lastUpdate = 0; // Date.now() of the last snapshot
let live = null;
let link = 'connecting';

const ctx = {
  api,
  can: (permission) => session.permissions.has(permission),
  summary: (name) => snapshot.channels.find((c) => c.name === name) ?? null,
  channels: () => snapshot.channels.map((c) => c.name),
  notify,
  fail,
  refreshStatus,
};

const overview = createOverview();
const detail = createDetail(ctx);
const browser = createMessageBrowser(ctx);
const revisions = createRevisions(ctx, () => session.user);

// -- notices ----------------------------------------------------------------------------

function notify(text) {
  const item = h('div', { class: 'notice ok', role: 'status' }, h('p', null, text));
  $('notices').append(item);
  setTimeout(() => item.remove(), 6000);
}

function fail(error) {
  if (error instanceof ApiError && error.status === 401) return; // back at the sign-in
  if (!(error instanceof ApiError)) console.error(error);
  const close = h('button', { type: 'button', class: 'button small quiet',
    'aria-label': 'Dismiss' }, '✕');
  const item = h('div', { class: 'notice error', role: 'alert' },
    h('div', null, h('strong', null, errorTitle(error)),
      h('p', null, error.message, error.code ? h('span', { class: 'code' },
        ` (${error.status ? `${error.status} ` : ''}${error.code})`) : null)),
    close);
  close.addEventListener('click', () => item.remove());
  $('notices').append(item);
}

// -- session ----------------------------------------------------------------------------

function showSignIn(message) {
  $('app').hidden = true;
  $('who').hidden = true;
  $('live').hidden = true;
  $('views').hidden = true;
  $('signin').hidden = false;
  const problem = $('signin-problem');
  problem.textContent = message ?? '';
  problem.hidden = !message;
  $('token').value = '';
  $('token').focus();
}

async function enter() {
  const me = await api('/api/session', { quiet401: true });
  session.user = me.user;
  session.role = me.role;
  session.permissions = new Set(me.permissions ?? []);
  setCsrf(me.csrf);
  $('who-name').textContent = me.user;
  $('who-role').textContent = me.role;
  $('signin').hidden = true;
  $('who').hidden = false;
  $('live').hidden = false;
  $('views').hidden = !ctx.can('view-status');
  $('app').hidden = false;
  live = new LiveStatus({ onStatus: applySnapshot, onLink: setLink, onRefused: stillSignedIn });
  live.start();
  await refreshStatus();
  revisions.start();
  route();
}

/** Forget everything on screen that came from the engine, then show the sign-in form. */
function leave(message) {
  live?.stop();
  live = null;
  session.user = null;
  session.permissions = new Set();
  setCsrf(null);
  snapshot = { channels: [], alerts: [], at: null };
  detail.hide();
  browser.hide();
  revisions.stop();
  $('views').querySelector('[data-view=messages]').href = '#/messages';
  overview.clear();
  $('alerts').replaceChildren();
  delete $('alerts').dataset.signature;
  $('notices').replaceChildren();
  showSignIn(message);
}

async function stillSignedIn() {
  try {
    await api('/api/session', { quiet401: true });
    return true; // signed in: the stream failed for another reason; try again
  } catch (error) {
    if (error.status === 401) {
      leave('Your session has ended. Sign in again.');
      return false;
    }
    return true;
  }
}

whenUnauthorized(() => {
  if (session.user) leave('Your session has ended. Sign in again.');
});

$('signin-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const token = $('token').value.trim();
  const button = event.submitter ?? $('signin-form').querySelector('button');
  button.disabled = true;
  try {
    await api('/api/session', { method: 'POST', body: { token }, quiet401: true });
    $('token').value = '';
    await enter();
  } catch (error) {
    const problem = $('signin-problem');
    problem.textContent = error.status === 401
      ? 'That token was not accepted. Check it, or ask an administrator for a new one.'
      : `${errorTitle(error)}: ${error.message}`;
    problem.hidden = false;
    $('token').focus();
  } finally {
    button.disabled = false;
  }
});

$('sign-out').addEventListener('click', async () => {
  try {
    await api('/api/session', { method: 'DELETE', quiet401: true });
  } catch (error) {
    if (error.status !== 401) {
      fail(error);
      return;
    }
  }
  leave('You have signed out.');
});

// -- live status ------------------------------------------------------------------------

function applySnapshot(next) {
  snapshot = next;
  lastUpdate = Date.now();
  setServerTime(next.at);
  renderAlerts($('alerts'), next.alerts);
  overview.update(next.channels ?? []);
  for (const channel of next.channels ?? []) detail.update(channel);
  browser.channelsChanged();
  showLink();
}

/** Fetch a snapshot now (after an action, or before the stream's first event). */
async function refreshStatus() {
  try {
    const [channels, alerts] = await Promise.all([api('/api/channels'), api('/api/alerts')]);
    applySnapshot({ channels, alerts, at: snapshot.at });
  } catch (error) {
    fail(error);
  }
}

function setLink(state) {
  link = state;
  showLink();
}

function showLink() {
  const el = $('live');
  const age = lastUpdate ? (Date.now() - lastUpdate) / 1000 : null;
  const stale = age === null || age > 6;
  const tone = link === 'live' && !stale ? 'live' : link === 'lost' || stale ? 'lost' : '';
  el.className = `live ${tone}`;
  const when = snapshot.at ? `updated ${ago(snapshot.at)}` : 'waiting for data';
  $('live-text').textContent = link === 'live' && !stale ? `Live · ${when}`
    : link === 'lost' ? `Reconnecting… ${when}` : `Connecting… ${when}`;
}

// One ticker keeps every "… ago" on the page and the link indicator current.
setInterval(() => {
  if (!session.user) return;
  refreshTimes();
  showLink();
}, 1000);

// -- routing ----------------------------------------------------------------------------

function showView(view) {
  for (const name of ['overview', 'detail', 'messages']) {
    $(`${name}-view`).hidden = name !== view;
  }
  for (const link of $('views').querySelectorAll('a')) {
    if (link.dataset.view === view) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

function route() {
  if (!session.user) return;
  const match = location.hash.match(/^#\/channels\/([^/]+)(?:\/messages\/([^/]+))?$/);
  // #/messages?filters, or #/messages/ID?filters with one message open
  const messages = location.hash.match(/^#\/messages(?:\/([^/?]+))?(?:\?(.*))?$/);
  const from = ['overview', 'detail', 'messages'].find((v) => !$(`${v}-view`).hidden);
  if (!messages) browser.hide();
  if (match) {
    showView('detail');
    detail.show(decodeURIComponent(match[1]), match[2] ? decodeURIComponent(match[2]) : null);
    document.title = `${decodeURIComponent(match[1])} · Conduit`;
  } else if (messages) {
    detail.hide();
    showView('messages');
    document.title = 'Messages · Conduit';
    // The top bar's link comes back to this search from another view.
    $('views').querySelector('[data-view=messages]').href =
      `#/messages${messages[2] ? `?${messages[2]}` : ''}`;
    browser.show(messages[1] ? decodeURIComponent(messages[1]) : null, messages[2] ?? '');
    if (from !== 'messages') browser.title().focus();
  } else {
    detail.hide();
    showView('overview');
    document.title = 'Channels · Conduit';
    if (from !== 'overview') $('overview-title').focus();
  }
}

window.addEventListener('hashchange', route);

// -- start ------------------------------------------------------------------------------

fill($('overview-view'), overview.el, revisions.el);
fill($('detail-view'), detail.el);
fill($('messages-view'), browser.el);

enter().catch((error) => {
  showSignIn(error.status === 401 ? null : `${errorTitle(error)}: ${error.message}`);
});
