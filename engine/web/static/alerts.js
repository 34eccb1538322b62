// The active-alerts banner, from the same live stream as the channels. Quiet when all
// is well (one line saying so), loud when something holds.

import { h, fill } from './dom.js';
import { timeAgo } from './format.js';

// Alerts come from the engine's alerting rules; read the likely field names of each.
function describe(alert) {
  const text = alert.message ?? alert.summary ?? alert.description ?? alert.title
    ?? alert.name ?? alert.rule ?? alert.kind ?? 'alert';
  const since = alert.since ?? alert.fired_at ?? alert.started_at ?? alert.at ?? null;
  const severity = String(alert.severity ?? alert.level ?? 'warning').toLowerCase();
  return { text: String(text), channel: alert.channel ?? null, since, severity };
}

export function renderAlerts(el, alerts) {
  const list = Array.isArray(alerts) ? alerts : [];
  // The banner is a live region: redraw it only when the alerts change, or a screen
  // reader would announce the same alerts every two seconds.
  const signature = JSON.stringify(list);
  if (el.dataset.signature === signature) return;
  el.dataset.signature = signature;
  if (!list.length) {
    el.className = 'alerts clear';
    fill(el, h('p', null, h('span', { class: 'alerts-icon', 'aria-hidden': 'true' }, '✓'),
      'No active alerts'));
    return;
  }
  el.className = 'alerts firing';
  fill(el,
    h('h2', null, h('span', { class: 'alerts-icon', 'aria-hidden': 'true' }, '!'),
      list.length === 1 ? '1 active alert' : `${list.length} active alerts`),
    h('ul', null, list.map((alert) => {
      const a = describe(alert);
      return h('li', { class: `alert ${a.severity === 'critical' ? 'critical' : ''}` },
        a.channel ? h('a', { href: `#/channels/${encodeURIComponent(a.channel)}`,
          class: 'alert-channel' }, a.channel) : null,
        h('span', { class: 'alert-text' }, a.text),
        a.since ? h('span', { class: 'alert-since' }, 'since ', timeAgo(a.since)) : null);
    })));
}
