// Change control on the overview: which revision each channel runs (number, since when,
// by whom), the revision history, and Approve / Reject on pending revisions for admins
// (never on one's own: the engine refuses that too). Diffs load when opened.

import { h, fill, syncRows } from './dom.js';
import { timeAgo } from './format.js';
import { ask } from './dialog.js';

const STATES = { live: 'ok', pending: 'warn', rejected: 'bad', superseded: 'off' };
const REFRESH_MS = 5000;

function stateChip(state) {
  return h('span', { class: `chip ${STATES[state] ?? 'off'}` }, state);
}

export function createRevisions(ctx, whoami) {
  const channelsBody = h('tbody');
  const historyBody = h('tbody');
  const summary = h('p', { class: 'legend' });
  const el = h('section', { class: 'revisions', 'aria-labelledby': 'revisions-title' },
    h('h2', { id: 'revisions-title' }, 'Revisions'), summary,
    h('div', { class: 'table-wrap' }, h('table', { class: 'revision-channels' },
      h('caption', { class: 'sr-only' }, 'The live revision of each channel'),
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, 'Channel'),
        h('th', { scope: 'col', class: 'num' }, 'Revision'),
        h('th', { scope: 'col' }, 'Live since'),
        h('th', { scope: 'col' }, 'Made by'))),
      channelsBody)),
    h('div', { class: 'table-wrap' }, h('table', { class: 'revision-history' },
      h('caption', { class: 'sr-only' }, 'Revision history, newest first'),
      h('thead', null, h('tr', null,
        h('th', { scope: 'col', class: 'num' }, '#'),
        h('th', { scope: 'col' }, 'State'),
        h('th', { scope: 'col' }, 'Made'),
        h('th', { scope: 'col' }, 'By'),
        h('th', { scope: 'col' }, 'Reason'),
        h('th', { scope: 'col' }, 'Approved by'),
        h('th', { scope: 'col' }, 'Changes'))),
      historyBody)));
  let timer = null;

  function channelRow() {
    return h('tr', null, h('th', { scope: 'row' }), h('td', { class: 'num' }), h('td'),
      h('td'));
  }

  function updateChannel(tr, [name, rev]) {
    const [n, number, since, by] = tr.children;
    n.textContent = name;
    number.textContent = String(rev.revision);
    fill(since, timeAgo(rev.live_at));
    by.textContent = rev.author;
  }

  function historyRow(rev) {
    const diff = h('pre', { class: 'diff' });
    const details = h('details', null, h('summary', null, 'Diff'), diff);
    details.addEventListener('toggle', async () => {
      if (!details.open || diff.dataset.loaded) return;
      try {
        const full = await ctx.api(`/api/revisions/${rev.number}`);
        diff.textContent = full.diff || 'no changes to the files';
        diff.dataset.loaded = '1';
      } catch (error) {
        ctx.fail(error);
      }
    });
    const tr = h('tr', null, h('td', { class: 'num' }, String(rev.number)), h('td'), h('td'),
      h('td'), h('td'), h('td'), h('td', null, details));
    tr.actions_ = h('span', { class: 'row-actions' });
    return tr;
  }

  function updateHistory(tr, rev) {
    const [, state, made, by, reason, approved] = tr.children;
    fill(state, stateChip(rev.state), ' ', tr.actions_);
    fill(made, timeAgo(rev.made_at));
    by.textContent = rev.author;
    reason.textContent = rev.rollback_of !== null
      ? `${rev.reason} (rollback to ${rev.rollback_of})` : rev.reason;
    approved.textContent = rev.approvals.join(', ') || '–';
    const mine = rev.author === whoami();
    const canDecide = rev.state === 'pending' && ctx.can('approve-revisions');
    fill(tr.actions_, canDecide && !mine ? [
      h('button', { type: 'button', class: 'button small primary',
        onclick: () => decide(rev, 'approve') }, 'Approve'),
      h('button', { type: 'button', class: 'button small',
        onclick: () => decide(rev, 'reject') }, 'Reject')]
      : canDecide ? h('span', { class: 'muted small' }, 'yours: another admin approves')
        : null);
  }

  async function decide(rev, action) {
    const answer = await ask({
      title: `${action === 'approve' ? 'Approve' : 'Reject'} revision ${rev.number}?`,
      message: action === 'approve'
        ? 'Once approved it goes live: every engine swaps its channels to it within seconds.'
        : 'A rejected revision never goes live.',
      fields: action === 'reject' ? [{ name: 'reason', label: 'Why (optional)' }] : [],
      confirm: action === 'approve' ? 'Approve' : 'Reject',
      danger: action === 'reject',
    });
    if (answer === null) return;
    try {
      const done = await ctx.api(`/api/revisions/${rev.number}/${action}`, {
        method: 'POST', body: action === 'reject' ? { reason: answer.reason ?? '' } : {} });
      ctx.notify(`Revision ${done.number} is ${done.state}.`);
      await refresh();
    } catch (error) {
      ctx.fail(error);
    }
  }

  async function refresh() {
    if (!ctx.can('view-status')) return;
    let data;
    try {
      data = await ctx.api('/api/revisions');
    } catch (error) {
      if (error.status !== 401) ctx.fail(error);
      return;
    }
    const live = data.revisions.find((r) => r.state === 'live');
    const waiting = data.revisions.filter((r) => r.state === 'pending').length;
    summary.textContent = (live ? `Revision ${live.number} is live` : 'No revision yet')
      + (data.running !== null && data.running !== data.live
        ? ` (this engine runs revision ${data.running})` : '')
      + (data.approvals_required ? ` · change control: ${data.approvals_required} ` +
        `approval${data.approvals_required > 1 ? 's' : ''} by another admin` : '')
      + (waiting ? ` · ${waiting} waiting for approval` : '');
    syncRows(channelsBody, Object.entries(data.channels).sort(), ([name]) => name,
      channelRow, updateChannel);
    syncRows(historyBody, data.revisions, (r) => r.number, historyRow, updateHistory);
  }

  function start() {
    stop();
    refresh();
    timer = setInterval(refresh, REFRESH_MS);
  }

  function stop() {
    if (timer !== null) clearInterval(timer);
    timer = null;
    channelsBody.replaceChildren();
    historyBody.replaceChildren();
    summary.textContent = '';
  }

  return { el, start, stop, refresh };
}
