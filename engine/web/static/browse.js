// The message browser (#/messages?…): find stored messages by channel, control id, type,
// status and time, a page at a time, and open one in the message panel. Rows carry
// metadata only (no patient, no content); content stays behind the panel's reason
// prompt, for the roles the engine lets read it. The search lives in the URL hash, so
// the form, the page of results and the open message survive a refresh or a shared link.

import { h, fill } from './dom.js';
import { num, clockTime } from './format.js';
import { statusBadge } from './badges.js';
import { errorTitle } from './api.js';
import { createMessagePanel } from './message.js';
import {
  FILTERS, PAGE_SIZES, DEFAULT_LIMIT, parseSearch, searchQuery, messagesHash, localInput,
  epochOf,
} from './filters.js';

const STATUSES = [
  ['accepted', 'accepted: queued for its destinations'],
  ['filtered', 'filtered: dropped by a channel filter'],
  ['duplicate', 'duplicate: a resend, not redone'],
  ['rejected', 'rejected: could not be read (AR)'],
  ['error', 'error: mapping failed, waits for an analyst'],
];

function field(id, label, control, hint) {
  control.id = id;
  const note = hint ? h('span', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (note) control.setAttribute('aria-describedby', note.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, note);
}

function option(value, text, selected) {
  return h('option', { value, selected: selected || null }, text);
}

export function createMessageBrowser(ctx) {
  const el = h('section', { class: 'browser', 'aria-labelledby': 'browser-title' });
  let search = {}; // what the results show (parsed from the hash)
  let shown = null; // searchQuery(search) of the results on screen
  let asked = 0; // a counter, so a slow answer to an older search is dropped
  const channelOf = new Map(); // message id -> channel, for the reprocess hint
  let known = ''; // the channel names the choice list was last filled with

  const panel = createMessagePanel(ctx, {
    close: () => { location.hash = messagesHash(search); },
    changed: () => run(true),
    mappingOf: () => ctx.summary(channelOf.get(panel.current()))?.mapping ?? null,
  });

  const inputs = {
    channel: h('select', { name: 'channel' }),
    control_id: h('input', { name: 'control_id', type: 'text', autocomplete: 'off',
      spellcheck: 'false', placeholder: 'MSH-10, e.g. 20240101123456' }),
    type: h('input', { name: 'type', type: 'text', autocomplete: 'off', spellcheck: 'false',
      placeholder: 'e.g. ADT^A01' }),
    status: h('select', { name: 'status' }, option('', 'Any status'),
      STATUSES.map(([value, text]) => option(value, text))),
    since: h('input', { name: 'since', type: 'datetime-local', step: '1' }),
    until: h('input', { name: 'until', type: 'datetime-local', step: '1' }),
    limit: h('select', { name: 'limit' }),
  };
  const problem = h('p', { class: 'problem', role: 'alert', hidden: true });
  const form = h('form', { class: 'card search-form', role: 'search',
    'aria-label': 'Find messages' },
  h('div', { class: 'search-fields' },
    field('find-channel', 'Channel', inputs.channel),
    field('find-control-id', 'Control id', inputs.control_id, 'exact'),
    field('find-type', 'Message type', inputs.type, 'exact'),
    field('find-status', 'Status', inputs.status),
    field('find-since', 'From', inputs.since, 'your local time'),
    field('find-until', 'Until (not including)', inputs.until, 'your local time'),
    field('find-limit', 'Per page', inputs.limit)),
  problem,
  h('div', { class: 'actions' },
    h('button', { type: 'submit', class: 'button primary' }, 'Search'),
    h('button', { type: 'button', class: 'button quiet', onclick: clear }, 'Clear')));
  form.addEventListener('submit', submit);

  const rows = h('tbody');
  const summary = h('p', { class: 'results-summary', role: 'status' });
  const newer = h('button', { type: 'button', class: 'button', disabled: true,
    onclick: () => page('after') }, '← Newer');
  const older = h('button', { type: 'button', class: 'button', disabled: true,
    onclick: () => page('before') }, 'Older →');
  const table = h('table', { class: 'messages found' },
    h('thead', null, h('tr', null,
      ['Received', 'Channel', 'Type', 'Control id', 'Status', 'Size', 'Note']
        .map((t) => h('th', { scope: 'col', class: t === 'Size' ? 'num' : null }, t)))),
    rows);
  const cursors = { before: null, after: null };

  fill(el,
    h('h1', { id: 'browser-title', tabindex: '-1' }, 'Messages'),
    h('div', { class: 'detail-grid' },
      h('div', { class: 'detail-main' },
        form,
        h('section', { class: 'card', 'aria-labelledby': 'results-title' },
          h('h2', { id: 'results-title' }, 'Found', h('span', { class: 'h-note' },
            'newest first; metadata only, open a message for its hops')),
          summary,
          h('div', { class: 'table-wrap' }, table),
          h('nav', { class: 'pager', 'aria-label': 'Result pages' }, newer, older))),
      panel.el));

  // -- the form -------------------------------------------------------------------------

  function fillChannels(selected) {
    const names = new Set(ctx.channels());
    if (selected) names.add(selected); // a linked search may name a channel not loaded yet
    fill(inputs.channel, option('', 'All channels'),
      [...names].sort().map((n) => option(n, n, n === selected)));
  }

  function fillForm(s) {
    fillChannels(s.channel ?? '');
    inputs.control_id.value = s.control_id ?? '';
    inputs.type.value = s.type ?? '';
    inputs.status.value = s.status ?? '';
    inputs.since.value = localInput(s.since);
    inputs.until.value = localInput(s.until);
    const limit = Number(s.limit) || DEFAULT_LIMIT;
    const sizes = [...new Set([...PAGE_SIZES, limit])].sort((a, b) => a - b);
    fill(inputs.limit, sizes.map((n) => option(String(n), String(n), n === limit)));
  }

  function submit(event) {
    event.preventDefault();
    const next = {};
    for (const key of ['channel', 'control_id', 'type', 'status']) {
      const value = inputs[key].value.trim();
      if (value) next[key] = value;
    }
    for (const key of ['since', 'until']) {
      const at = epochOf(inputs[key].value);
      if (at !== null) next[key] = String(at);
    }
    if (next.since && next.until && Number(next.since) >= Number(next.until)) {
      say('“From” must be before “Until”.');
      inputs.until.focus();
      return;
    }
    if (Number(inputs.limit.value) !== DEFAULT_LIMIT) next.limit = inputs.limit.value;
    go(next);
  }

  function clear() {
    fillForm({});
    go({});
  }

  /** Show a search (a new hash runs it; the same hash runs it again). */
  function go(next) {
    const hash = messagesHash(next);
    if (location.hash === hash) run(true);
    else location.hash = hash;
  }

  function page(direction) {
    const next = Object.fromEntries(FILTERS.filter((k) => search[k]).map((k) => [k, search[k]]));
    if (search.limit) next.limit = search.limit;
    next[direction] = cursors[direction];
    location.hash = messagesHash(next);
  }

  function say(text) {
    problem.textContent = text ?? '';
    problem.hidden = !text;
  }

  // -- the results ----------------------------------------------------------------------

  async function run(again = false) {
    const query = searchQuery(search);
    if (query === shown && !again) return;
    const mine = ++asked;
    shown = query;
    say(null);
    table.setAttribute('aria-busy', 'true');
    let answer;
    try {
      answer = await ctx.api(`/api/messages${query ? `?${query}` : ''}`);
    } catch (error) {
      if (mine !== asked) return;
      table.removeAttribute('aria-busy');
      shown = null; // a retry with the same search should ask again
      rows.replaceChildren();
      summary.textContent = '';
      setCursors(null, null);
      // The engine decides who may search and which parameters it accepts: its words.
      say(`${errorTitle(error)}: ${error.message}`);
      return;
    }
    if (mine !== asked) return;
    table.removeAttribute('aria-busy');
    render(answer);
  }

  function render(answer) {
    const found = answer.messages ?? [];
    channelOf.clear();
    for (const m of found) channelOf.set(m.id, m.channel);
    fill(rows, found.map(makeRow));
    markSelected();
    const paged = search.before || search.after;
    summary.textContent = found.length
      ? `${num(found.length)} ${found.length === 1 ? 'message' : 'messages'}` +
        `${paged ? ' on this page' : ''} · ${num(answer.took_ms)} ms`
      : paged ? 'No messages on this page.' : 'No messages match.';
    setCursors(answer.next ?? null, answer.previous ?? null);
  }

  function setCursors(next, previous) {
    cursors.before = next;
    cursors.after = previous;
    older.disabled = !next;
    newer.disabled = !previous;
  }

  function makeRow(m) {
    const href = messagesHash(search, m.id);
    const row = h('tr', { class: 'message-row', dataset: { id: m.id } },
      h('td', null, h('a', { href, 'aria-label': `Message ${m.control_id || m.id}, ` +
        `received ${new Date(m.received_at * 1000).toLocaleString()}` },
      clockTime(m.received_at, { precise: true }))),
      h('td', null, m.channel),
      h('td', null, m.message_type || '–'),
      h('td', { class: 'mono' }, m.control_id || '–'),
      h('td', null, statusBadge(m.status)),
      h('td', { class: 'num' }, num(m.size)),
      h('td', { class: 'note' }, m.error ?? ''));
    // The whole row opens the message; the link in it is what a keyboard reaches.
    row.addEventListener('click', (event) => {
      if (!event.target.closest('a')) location.hash = href;
    });
    return row;
  }

  function markSelected() {
    for (const row of rows.children) {
      row.classList.toggle('selected', row.dataset.id === panel.current());
    }
  }

  // -- the view -------------------------------------------------------------------------

  /** Show the search in the hash's query, and the message `messageId` if one is named. */
  async function show(messageId, query) {
    const next = parseSearch(query);
    const changed = searchQuery(next) !== shown;
    search = next;
    if (changed) {
      fillForm(search);
      run();
    }
    if (messageId) await panel.open(messageId);
    else panel.close();
    markSelected();
  }

  function hide() {
    panel.close(); // drops any content shown
    asked += 1;
    shown = null;
    rows.replaceChildren();
    summary.textContent = '';
    say(null);
  }

  /** Channels came and went: keep the choice list current without losing the choice. */
  function channelsChanged() {
    const names = ctx.channels().join('\n');
    if (names === known || document.activeElement === inputs.channel) return;
    known = names;
    fillChannels(inputs.channel.value);
  }

  return { el, show, hide, channelsChanged, title: () => el.querySelector('h1') };
}
