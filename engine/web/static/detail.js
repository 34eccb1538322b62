// One channel in detail (#/channels/NAME): its actions, the last hour as sparklines, its
// destinations with their queues, and its recent messages (metadata only). The summary
// parts follow the live stream; series and recent messages are fetched again when the
// stream shows the channel's counts moved.

import { h, fill, syncRows, enc } from './dom.js';
import { num, rate, ms, duration, clockTime, timeAgo } from './format.js';
import { stateBadge, statusBadge, insecureBadge } from './badges.js';
import { sparkline } from './sparkline.js';
import { ask } from './dialog.js';
import { createMessagePanel } from './message.js';

const REFRESH_EVERY_MS = 30000; // the sparklines move on even when nothing arrives

const CHANNEL_ACTIONS = {
  // state -> actions that make sense from it
  started: ['pause', 'stop'],
  paused: ['resume', 'stop'],
  stopped: ['start'],
  error: ['start'],
};

const ACTION_TEXT = {
  start: ['Start', 'It starts delivering queued messages and accepting new ones.'],
  resume: ['Resume', 'It accepts new messages again.'],
  pause: ['Pause', 'It stops accepting new messages (senders find the port closed and ' +
    'hold them). Messages already queued are still delivered.'],
  stop: ['Stop', 'It stops accepting and stops delivering. Queued messages wait, safely ' +
    'stored, until the channel is started again.'],
};

const SERIES = [
  ['received', 'Received'],
  ['sent', 'Sent'],
  ['rejected', 'Rejected'],
  ['errored', 'Errored'],
];

function signature(summary) {
  const dests = (summary.destinations ?? []).map((d) => `${d.queued}/${d.dead}`).join(',');
  return [summary.state, ...Object.values(summary.counts ?? {}), dests].join('|');
}

export function createDetail(ctx) {
  const el = h('section', { class: 'detail', 'aria-labelledby': 'detail-title' });
  let name = null;
  let data = null; // the last full detail from the API
  let seen = ''; // signature of the summary the detail was fetched for
  let fetching = null;
  let lastFetch = 0;
  let parts = null;

  const panel = createMessagePanel(ctx, {
    close: () => { location.hash = `#/channels/${enc(name)}`; },
    changed: () => refresh(),
    mappingOf: () => data?.mapping ?? null,
  });

  function build() {
    const title = h('h1', { id: 'detail-title', tabindex: '-1' }, name);
    parts = {
      title,
      badge: h('span', { class: 'detail-state' }),
      description: h('p', { class: 'channel-desc' }),
      actions: h('div', { class: 'actions', role: 'group', 'aria-label': 'Channel actions' }),
      facts: h('dl', { class: 'facts' }),
      sparks: h('div', { class: 'sparks' }),
      dests: h('tbody'),
      messages: h('tbody'),
      noMessages: h('p', { class: 'empty', hidden: true }, 'No messages yet.'),
      slo: h('tbody'),
      dead: h('tbody'),
    };
    // The newest dead letters: ids and PHI-free reasons only.
    parts.deadCard = h('section', { class: 'card', 'aria-labelledby': 'dead-title',
      hidden: true },
      h('h2', { id: 'dead-title' }, 'Dead letters', h('span', { class: 'h-note' },
        'newest first, up to 20 a destination; open one for what the receiver said')),
      h('div', { class: 'table-wrap' }, h('table', { class: 'dead-letters' },
        h('thead', null, h('tr', null, ['Destination', 'Message id', 'Attempts', 'Reason']
          .map((t) => h('th', { scope: 'col', class: t === 'Attempts' ? 'num' : null }, t)))),
        parts.dead)));
    parts.sloCard = h('section', { class: 'card', 'aria-labelledby': 'slo-title', hidden: true },
      h('h2', { id: 'slo-title' }, 'Service levels'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'slo' },
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Objective'),
          ['Now', 'Target', 'Error budget left'].map((t) => h('th', { scope: 'col',
            class: 'num' }, t)))),
        parts.slo)));
    const manage = ctx.can('manage-queues');
    fill(el,
      h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
        h('a', { href: '#/' }, '← All channels')),
      h('header', { class: 'detail-head' },
        h('div', { class: 'detail-title' }, title, parts.badge), parts.actions),
      parts.description,
      parts.facts,
      h('div', { class: 'detail-grid' },
        h('div', { class: 'detail-main' },
          parts.sloCard,
          h('section', { class: 'card', 'aria-labelledby': 'spark-title' },
            h('h2', { id: 'spark-title' }, 'Last hour', h('span', { class: 'h-note' },
              'messages per minute')),
            parts.sparks),
          h('section', { class: 'card', 'aria-labelledby': 'dest-title' },
            h('h2', { id: 'dest-title' }, 'Destinations and queues'),
            h('div', { class: 'table-wrap' }, h('table', { class: 'dests' },
              h('thead', null, h('tr', null,
                h('th', { scope: 'col' }, 'Destination'),
                ['Queued', 'In flight', 'Retrying', 'Dead', 'Oldest queued', 'Sent']
                  .map((t) => h('th', { scope: 'col', class: 'num' }, t)),
                manage ? h('th', { scope: 'col' }, 'Dead letters') : null,
                h('th', { scope: 'col' }, 'Last error'))),
              parts.dests))),
          parts.deadCard,
          h('section', { class: 'card', 'aria-labelledby': 'msgs-title' },
            h('h2', { id: 'msgs-title' }, 'Recent messages', h('span', { class: 'h-note' },
              'newest first; content is never shown here')),
            h('div', { class: 'table-wrap' }, h('table', { class: 'messages' },
              h('thead', null, h('tr', null,
                ['Received', 'Message id', 'Type', 'Control id', 'Status', 'Note']
                  .map((t) => h('th', { scope: 'col' }, t)))),
              parts.messages)),
            parts.noMessages)),
        panel.el));
  }

  function renderSummary(summary) {
    if (parts.badge.dataset.state !== summary.state) {
      parts.badge.dataset.state = summary.state;
      fill(parts.badge, stateBadge(summary.state));
      renderActions(summary.state);
    }
    parts.description.textContent = summary.description ?? '';
    const peers = summary.source?.peers ?? [];
    const fact = (term, ...value) => h('div', { class: term === 'Last error' ? 'wide' : null },
      h('dt', null, term), h('dd', null, ...value));
    fill(parts.facts,
      fact('Source', h('span', { class: 'mono' }, summary.source?.address ?? '–'),
        summary.source?.insecure ? [' ', insecureBadge()] : null),
      fact('Connected peers', peers.length ? peers.join(', ') : 'none'),
      fact('Mapping', h('span', { class: 'mapping' }, summary.mapping ?? 'none')),
      summary.mapping ? fact('Fields dropped', h('abbr', { title: 'Fields that held a value ' +
        'no rule of the mapping read; each message lists its own under Left behind' },
      num(summary.counts?.fields_dropped ?? 0))) : null,
      fact('Content kept', summary.retention ?? 'for ever'),
      fact('Throughput now', rate(summary.throughput_per_s)),
      fact('Latency', `p50 ${ms(summary.latency_ms?.p50)} · p99 ${ms(summary.latency_ms?.p99)}`),
      fact('Last message', summary.last_message_at ? timeAgo(summary.last_message_at) : 'none'),
      fact('Last error', summary.last_error
        ? h('span', { class: 'error-text' }, summary.last_error, ' (',
          timeAgo(summary.last_error_at), ')')
        : 'none'));
    syncRows(parts.dests, summary.destinations ?? [], (d) => d.name, makeDestRow,
      updateDestRow);
    renderSlo(summary.slo);
  }

  // Service-level objectives, when the engine reports them with the channel (rows as
  // engine/ops/slo.py's status(): objective, sli, target in %, error_budget_remaining).
  function renderSlo(rows) {
    const list = Array.isArray(rows) ? rows : [];
    parts.sloCard.hidden = list.length === 0;
    const pct = (share) => `${(share * 100).toFixed(2)} %`;
    syncRows(parts.slo, list, (r) => r.objective, () => h('tr'), (row, r) => {
      const left = r.error_budget_remaining;
      const tone = left < 0 ? 'alarm' : left < 0.25 ? 'warn-text' : '';
      fill(row, h('th', { scope: 'row' }, r.objective),
        h('td', { class: 'num' }, pct(r.sli)),
        h('td', { class: 'num' }, `${r.target} %`),
        h('td', { class: `num ${tone}` }, left < 0 ? `overspent (${pct(left)})` : pct(left)));
    });
  }

  function renderActions(state) {
    if (!ctx.can('control-channels')) {
      parts.actions.hidden = true;
      return;
    }
    fill(parts.actions, (CHANNEL_ACTIONS[state] ?? []).map((action) => h('button', {
      type: 'button', class: action === 'stop' ? 'button danger' : 'button',
      onclick: () => control(action),
    }, ACTION_TEXT[action][0])));
  }

  async function control(action) {
    const [verb, consequence] = ACTION_TEXT[action];
    const ok = await ask({ title: `${verb} ${name}?`, message: consequence, confirm: verb,
      danger: action === 'stop' || action === 'pause' });
    if (!ok) return;
    try {
      const result = await ctx.api(`/api/channels/${enc(name)}/${action}`, { method: 'POST' });
      ctx.notify(`${name} is now ${result.state}.`);
      renderSummary({ ...data, state: result.state });
      ctx.refreshStatus();
    } catch (error) {
      ctx.fail(error);
    }
  }

  function makeDestRow(dest) {
    const cells = Object.fromEntries(['queued', 'in_flight', 'retrying', 'dead', 'oldest',
      'sent'].map((k) => [k, h('td', { class: 'num', dataset: { col: k } })]));
    const errorCell = h('td', { class: 'last-error' });
    const row = h('tr', null,
      h('th', { scope: 'row' }, h('span', { class: 'dest-name' }, dest.name),
        h('span', { class: 'mono small' }, dest.address)),
      Object.values(cells));
    row.cells_ = { ...cells, error: errorCell };
    if (ctx.can('manage-queues')) {
      const retry = h('button', { type: 'button', class: 'button small',
        'aria-label': `Retry dead letters of ${dest.name}`,
        onclick: () => deadLetters('retry', dest.name) }, 'Retry');
      const discard = h('button', { type: 'button', class: 'button small danger',
        'aria-label': `Discard dead letters of ${dest.name}`,
        onclick: () => deadLetters('discard', dest.name) }, 'Discard');
      row.append(h('td', null, h('div', { class: 'row-actions' }, retry, discard)));
      Object.assign(row.cells_, { retry, discard });
    }
    row.append(errorCell);
    return row;
  }

  function updateDestRow(row, dest) {
    const c = row.cells_;
    c.queued.textContent = num(dest.queued);
    c.in_flight.textContent = num(dest.in_flight);
    c.retrying.textContent = num(dest.retrying);
    c.dead.textContent = num(dest.dead);
    c.dead.classList.toggle('alarm', dest.dead > 0);
    c.oldest.textContent = dest.oldest_age_s === null ? '–' : duration(dest.oldest_age_s);
    c.sent.textContent = `${num(dest.sent)} (${num(dest.sent_5m)} in 5 min)`;
    if (dest.last_error) {
      fill(c.error, h('span', { class: 'error-text', title: dest.last_error }, dest.last_error),
        h('span', { class: 'error-time' }, timeAgo(dest.last_error_at)));
    } else fill(c.error, h('span', { class: 'muted' }, 'none'));
    if (c.retry) {
      c.retry.disabled = dest.dead === 0;
      c.discard.disabled = dest.dead === 0;
      row.dataset.dead = String(dest.dead);
    }
  }

  async function deadLetters(action, destination) {
    const dest = data?.destinations?.find((d) => d.name === destination);
    const count = dest?.dead ?? 0;
    const letters = count === 1 ? '1 dead letter' : `${num(count)} dead letters`;
    const ok = await ask(action === 'retry'
      ? { title: `Retry ${letters} of ${destination}?`, confirm: 'Retry',
        message: `They go back on ${name}/${destination}'s queue and are delivered again.` }
      : { title: `Discard ${letters} of ${destination}?`, confirm: 'Discard', danger: true,
        message: 'They will not be delivered. The messages themselves stay in the store, ' +
          'and the discard is written to the audit trail.' });
    if (!ok) return;
    try {
      const path = `/api/queues/${enc(name)}/${enc(destination)}/${action}`;
      const result = await ctx.api(path, { method: 'POST' });
      const n = action === 'retry' ? result.requeued : result.discarded;
      ctx.notify(action === 'retry' ? `Requeued ${num(n)} on ${destination}.`
        : `Discarded ${num(n)} on ${destination}.`);
      await refresh();
    } catch (error) {
      ctx.fail(error);
    }
  }

  function renderSeries(series) {
    fill(parts.sparks, SERIES.map(([key, label]) => {
      const values = series?.[key] ?? [];
      const total = values.reduce((a, b) => a + b, 0);
      const peak = Math.max(0, ...values);
      return h('figure', { class: `spark-card ${key}` },
        h('figcaption', null, h('span', { class: 'spark-label' }, label),
          h('span', { class: 'spark-total' }, num(total)),
          h('span', { class: 'spark-peak' }, `peak ${num(peak)}/min`)),
        sparkline(values, { kind: key,
          label: `${label}: ${num(total)} in the last hour, at most ${num(peak)} a minute` }),
        h('div', { class: 'spark-axis', 'aria-hidden': 'true' },
          h('span', null, '60 min ago'), h('span', null, 'now')));
    }));
  }

  function makeMessageRow(m) {
    const when = h('td', null, clockTime(m.received_at));
    return h('tr', { class: 'message-row' }, when,
      h('td', null, h('a', { class: 'mono', href:
        `#/channels/${enc(name)}/messages/${enc(m.id)}` }, m.id)),
      h('td', null, m.message_type || '–'),
      h('td', { class: 'mono' }, m.control_id || '–'),
      h('td', null, statusBadge(m.status)),
      h('td', { class: 'note' }, m.error ?? ''));
  }

  function renderDeadLetters(letters) {
    fill(parts.dead, letters.map((d) => h('tr', { class: 'dead-row' },
      h('td', null, d.destination),
      h('td', null, h('a', { class: 'mono', href:
        `#/channels/${enc(name)}/messages/${enc(d.message_id)}` }, d.message_id)),
      h('td', { class: 'num' }, num(d.attempts)),
      h('td', { class: 'note' }, d.last_error ?? '',
        d.answer_kept ? h('span', { class: 'muted' }, ' · answer kept') : null))));
    parts.deadCard.hidden = letters.length === 0;
  }

  function renderMessages(messages) {
    syncRows(parts.messages, messages, (m) => m.id, makeMessageRow, (row, m) => {
      row.classList.toggle('selected', m.id === panel.current());
    });
    parts.noMessages.hidden = messages.length > 0;
  }

  async function refresh() {
    if (!name) return;
    const asked = name;
    fetching ??= ctx.api(`/api/channels/${enc(name)}`).finally(() => { fetching = null; });
    try {
      const detail = await fetching;
      if (asked !== name) return;
      data = detail;
      seen = signature(detail);
      lastFetch = Date.now();
      renderSummary(detail);
      renderSeries(detail.series);
      renderMessages(detail.recent_messages ?? []);
      renderDeadLetters(detail.dead_letters ?? []);
    } catch (error) {
      if (asked !== name) return;
      if (error.status === 404) {
        fill(el, h('nav', { class: 'crumbs' }, h('a', { href: '#/' }, '← All channels')),
          h('h1', { id: 'detail-title', tabindex: '-1' }, 'No such channel'),
          h('p', null, `There is no channel named “${name}”.`));
        name = null;
      }
      ctx.fail(error);
    }
  }

  async function show(channel, messageId) {
    if (channel !== name) {
      name = channel;
      data = null;
      seen = '';
      build();
      const summary = ctx.summary(name);
      if (summary) {
        data = { ...summary }; // what the rows show, until the full detail arrives
        renderSummary(summary);
      }
      parts.title.focus();
      await refresh();
    }
    if (messageId) await panel.open(messageId);
    else panel.close();
    if (data) renderMessages(data.recent_messages ?? []);
  }

  /** A live snapshot of this channel arrived. */
  function update(summary) {
    if (!name || !parts || summary.name !== name) return;
    data = { ...data, ...summary };
    renderSummary(summary);
    if (signature(summary) !== seen || Date.now() - lastFetch > REFRESH_EVERY_MS) refresh();
  }

  function hide() {
    panel.close();
    name = null;
    data = null;
    parts = null;
    el.replaceChildren();
  }

  return { el, show, update, hide, current: () => name };
}
