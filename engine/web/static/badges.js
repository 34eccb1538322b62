// State and status badges: a word and a shape as well as a colour, so they read the
// same to people who do not see the colour.

import { h } from './dom.js';

const CHANNEL_STATES = {
  started: ['●', 'Started', 'ok'],
  paused: ['❚❚', 'Paused', 'warn'],
  stopped: ['■', 'Stopped', 'off'],
  error: ['▲', 'Error', 'bad'],
};

const MESSAGE_STATUSES = {
  accepted: 'ok',
  filtered: 'off',
  error: 'bad',
  rejected: 'bad',
};

export function stateBadge(state) {
  const [icon, word, tone] = CHANNEL_STATES[state] ?? ['?', state, 'off'];
  return h('span', { class: `badge ${tone}`, dataset: { state } },
    h('span', { class: 'badge-icon', 'aria-hidden': 'true' }, icon), word);
}

export function statusBadge(status) {
  return h('span', { class: `badge small ${MESSAGE_STATUSES[status] ?? 'off'}` }, status);
}

// A source listening on a network address without TLS, because its channel says
// `insecure: true`: messages and credentials cross the network in clear.
export function insecureBadge() {
  return h('span', {
    class: 'badge small bad insecure',
    title: 'Listening without TLS on a network address (insecure: true): messages and ' +
      'credentials cross the network in clear',
  }, h('span', { class: 'badge-icon', 'aria-hidden': 'true' }, '⚠'), 'Insecure: no TLS');
}
