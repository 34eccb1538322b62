// The overview: a few totals to read from across the room, then one row per channel
// with everything an operator checks first. Rows are updated in place on each live
// snapshot, never rebuilt, so focus and hover survive the updates.

import { h, fill, syncRows, enc } from './dom.js';
import { num, rate, ms, duration, timeAgo } from './format.js';
import { stateBadge, insecureBadge } from './badges.js';

// [key, heading, full name when the heading is short, alarming when any are recent]
const COUNTS = [
  ['received', 'Received'],
  ['filtered', 'Filtered'],
  ['queued', 'Queued'],
  ['sent', 'Sent'],
  ['rejected', 'Rejected', 'Refused as unreadable or invalid (AR): the sender must fix ' +
    'and resend', true],
  ['errored', 'Errored', 'Taken on but not mapped or filtered: waits for an analyst', true],
  ['dead_lettered', 'Dead', 'Dead-lettered: delivery gave up', true],
];

const OLD_QUEUE_S = 60; // a queued message older than this is worth a second look

function tile(label, key) {
  const value = h('span', { class: 'tile-value', dataset: { tile: key } }, '–');
  const note = h('span', { class: 'tile-note' });
  return { el: h('div', { class: 'tile' }, h('span', { class: 'tile-label' }, label), value,
    note), value, note };
}

function setTile(t, value, note, tone = '') {
  t.value.textContent = value;
  t.note.textContent = note;
  t.el.className = `tile ${tone}`;
}

function destinationLine(dest) {
  const old = dest.oldest_age_s !== null && dest.oldest_age_s >= OLD_QUEUE_S;
  return h('li', { class: 'dest' },
    h('span', { class: 'dest-name' }, dest.name),
    h('span', { class: dest.queued ? 'dest-queued' : 'dest-queued muted' },
      `${num(dest.queued)} queued`),
    dest.oldest_age_s !== null
      ? h('span', { class: old ? 'dest-age warn-text' : 'dest-age' },
        `oldest ${duration(dest.oldest_age_s)}`)
      : null,
    dest.dead ? h('span', { class: 'chip bad' }, `${num(dest.dead)} dead`) : null);
}

// Under Received: resends (acknowledged again, not processed again) and new messages under
// a control id the sender already used (processed; the sender should be asked why).
function senderNote(el, channel) {
  const resent = channel.counts?.duplicate ?? 0;
  const reused = channel.counts?.control_id_reused ?? 0;
  fill(el,
    resent ? h('abbr', { title: 'Resends of a message already taken on: acknowledged ' +
      'again, not processed again' }, `${num(resent)} resent`) : null,
    reused ? h('abbr', { class: channel.counts_5m?.control_id_reused ? 'warn-text' : '',
      title: 'New messages under a control id the sender already used: processed, but ' +
        'the sender should be asked why' },
      `${num(reused)} ${reused === 1 ? 'id' : 'ids'} reused`) : null);
}

function makeRow(channel) {
  const href = `#/channels/${enc(channel.name)}`;
  const cell = (col, label, cls = '') => h('td', { class: cls, dataset: { col, label } });
  const cells = {
    description: h('span', { class: 'channel-desc' }),
    mapping: h('span', { class: 'mapping' }),
    state: cell('state', 'State and source', 'state'),
    rate: cell('throughput', 'Throughput and latency', 'num rate'),
    destinations: cell('destinations', 'Destinations'),
    error: cell('last-error', 'Last error', 'last-error'),
  };
  const counts = Object.fromEntries(COUNTS.map(([key, label]) => {
    const td = cell(key, label, 'num count');
    td.append(h('span', { class: 'total' }), h('span', { class: 'recent' }));
    return [key, td];
  }));
  cells.senders = h('span', { class: 'senders' });
  counts.received.append(cells.senders);
  const row = h('tr', { class: 'channel-row' },
    h('th', { scope: 'row' }, h('a', { href, class: 'channel-link' }, channel.name),
      cells.description, cells.mapping),
    cells.state, COUNTS.map(([key]) => counts[key]), cells.rate, cells.destinations,
    cells.error);
  // The whole row opens the channel; the name stays the link keyboards and readers use.
  row.addEventListener('click', (event) => {
    if (!event.target.closest('a, button')) location.hash = href;
  });
  row.cells_ = { ...cells, counts };
  return row;
}

function updateRow(row, channel) {
  const c = row.cells_;
  c.description.textContent = channel.description ?? '';
  c.mapping.textContent = channel.mapping ?? 'no mapping';
  const peers = channel.source?.peers ?? [];
  fill(c.state, stateBadge(channel.state),
    h('span', { class: 'source mono' }, channel.source?.address ?? '–'),
    channel.source?.insecure ? insecureBadge() : null,
    h('span', { class: 'peers', title: peers.join('\n') || null },
      peers.length === 1 ? '1 peer connected' : `${peers.length} peers connected`));
  for (const [key, , , concern] of COUNTS) {
    const td = c.counts[key];
    const recent = channel.counts_5m?.[key] ?? 0;
    const [total, inRecent] = td.children;
    total.textContent = num(channel.counts?.[key]);
    inRecent.textContent = `${num(recent)} in 5 min`;
    td.classList.toggle('alarm', Boolean(concern) && recent > 0);
  }
  senderNote(c.senders, channel);
  fill(c.rate, h('span', { class: 'rate-now' }, rate(channel.throughput_per_s)),
    h('span', { class: 'latency' }, h('abbr', { title: 'median latency' }, 'p50'), ' ',
      ms(channel.latency_ms?.p50)),
    h('span', { class: 'latency' }, h('abbr', { title: '99th percentile latency' }, 'p99'),
      ' ', ms(channel.latency_ms?.p99)));
  const dests = channel.destinations ?? [];
  fill(c.destinations, dests.length
    ? h('ul', { class: 'dest-list' }, dests.map(destinationLine))
    : h('span', { class: 'muted' }, 'none'));
  if (channel.last_error) {
    fill(c.error, h('span', { class: 'error-text', title: channel.last_error },
      channel.last_error), h('span', { class: 'error-time' }, timeAgo(channel.last_error_at)));
  } else {
    fill(c.error, h('span', { class: 'muted' }, 'none'));
  }
}

export function createOverview() {
  const tiles = {
    channels: tile('Channels running', 'channels'),
    received: tile('Received, last 5 min', 'received'),
    rate: tile('Throughput now', 'rate'),
    errors: tile('Errors, last 5 min', 'errors'),
    queued: tile('Queued now', 'queued'),
    dead: tile('Dead letters waiting', 'dead'),
  };
  const tbody = h('tbody');
  const empty = h('p', { class: 'empty', hidden: true },
    'No channels are configured. Add a channel file under channels/ and restart the engine.');
  const table = h('table', { class: 'channels' },
    h('caption', { class: 'sr-only' }, 'Channels: counts kept across restarts, with the ' +
      'last 5 minutes underneath'),
    h('thead', null, h('tr', null,
      h('th', { scope: 'col' }, 'Channel'),
      h('th', { scope: 'col' }, 'State · source'),
      COUNTS.map(([, label, title]) => h('th', { scope: 'col', class: 'num' },
        title ? h('abbr', { title }, label) : label)),
      h('th', { scope: 'col', class: 'num' }, 'Rate · latency'),
      h('th', { scope: 'col' }, 'Destinations'),
      h('th', { scope: 'col' }, 'Last error'))),
    tbody);
  const el = h('section', { class: 'overview', 'aria-labelledby': 'overview-title' },
    h('h1', { id: 'overview-title', tabindex: '-1' }, 'Channels'),
    h('div', { class: 'tiles' }, Object.values(tiles).map((t) => t.el)),
    h('p', { class: 'legend' }, 'Counts kept across restarts, with the last 5 minutes ' +
      'underneath. Select a channel for its queues, last hour and messages.'),
    h('div', { class: 'table-wrap' }, table), empty);

  function update(channels) {
    syncRows(tbody, channels, (c) => c.name, makeRow, updateRow);
    empty.hidden = channels.length > 0;
    table.hidden = channels.length === 0;
    const started = channels.filter((c) => c.state === 'started').length;
    const down = channels.filter((c) => c.state === 'error' || c.state === 'stopped').length;
    const sum = (f) => channels.reduce((acc, c) => acc + (f(c) ?? 0), 0);
    const dests = channels.flatMap((c) => c.destinations ?? []);
    const errors = sum((c) => c.counts_5m?.errored) + sum((c) => c.counts_5m?.rejected)
      + sum((c) => c.counts_5m?.dead_lettered);
    const dead = dests.reduce((acc, d) => acc + d.dead, 0);
    const queued = dests.reduce((acc, d) => acc + d.queued, 0);
    const oldest = Math.max(0, ...dests.map((d) => d.oldest_age_s ?? 0));
    setTile(tiles.channels, `${started} of ${channels.length}`,
      down ? `${down} stopped or failing` : started === channels.length ? 'all running'
        : 'some paused', down ? 'bad' : started < channels.length ? 'warn' : '');
    setTile(tiles.received, num(sum((c) => c.counts_5m?.received)),
      `${num(sum((c) => c.counts?.received))} in all`);
    setTile(tiles.rate, rate(sum((c) => c.throughput_per_s)), 'messages received');
    setTile(tiles.errors, num(errors), 'rejected, errored or dead-lettered',
      errors ? 'warn' : '');
    setTile(tiles.queued, num(queued), queued ? `oldest ${duration(oldest)}` : 'nothing waiting',
      oldest >= OLD_QUEUE_S ? 'warn' : '');
    setTile(tiles.dead, num(dead), dead ? 'need retry or discard' : 'none', dead ? 'bad' : '');
  }

  function clear() {
    tbody.replaceChildren();
  }

  return { el, update, clear };
}
