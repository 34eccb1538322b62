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
