// One message: its metadata and every hop it took (from the audit trail), and, for
// roles allowed to, its content after the user states why. Content lives only in this
// panel's DOM: it is fetched with no-store, never kept in a variable or storage, and
// dropped when the panel closes or the user signs out.

import { h, fill, enc } from './dom.js';
import { num, absolute, clockTime } from './format.js';
import { statusBadge } from './badges.js';
import { ask } from './dialog.js';

// Hop details worth a glance; others (a viewer's stated reason, hashes) stay out.
const HOP_DETAIL = ['action', 'mapping', 'status', 'attempt', 'reason', 'error', 'why'];

function hopDetail(hop) {
  if (hop.kind === 'viewed' || !hop.detail) return '';
  return HOP_DETAIL.filter((k) => hop.detail[k] !== undefined && hop.detail[k] !== null)
    .map((k) => `${k}: ${hop.detail[k]}`).join(' · ');
}

function hl7Lines(raw) {
  // HL7v2 separates segments with carriage returns, which a <pre> would not show.
  return raw.replace(/\r\n?/g, '\n');
}

function pretty(content, type) {
  if (/json/.test(type ?? '')) {
    try {
      return JSON.stringify(JSON.parse(content), null, 2);
    } catch {
      return content;
    }
  }
  return hl7Lines(content);
}

// What the mapping could not read (located warnings) and the fields that held a value
// no rule read: places only, never values, so they need no content permission.
function conversionFacts(conversion) {
  if (!conversion) return [];
  const warnings = conversion.warnings ?? [];
  const left = conversion.left_behind ?? [];
  return [
    warnings.length ? ['Could not read', h('ul', { class: 'conversion-warnings' },
      warnings.map((w) => h('li', null, h('span', { class: 'mono' }, w.at || '–'), ` ${w.text}`)))]
      : null,
    ['Left behind', left.length
      ? h('span', { class: 'mono left-behind' }, `${left.length} ${left.length === 1
        ? 'field' : 'fields'}: ${left.join(', ')}`)
      : conversion.tracked === false
        ? `not tracked: ${conversion.mapping} does not report the fields it leaves behind`
        : 'nothing: every field with a value was read'],
  ];
}

export function createMessagePanel(ctx, { close, changed, mappingOf }) {
  const el = h('aside', { class: 'message-panel card', 'aria-labelledby': 'message-title',
    hidden: true });
  let current = null;

  async function open(id) {
    if (id === current && !el.hidden) return;
    current = id;
    el.hidden = false;
    fill(el, h('p', { class: 'muted' }, 'Loading message…'));
    let message;
    try {
      message = await ctx.api(`/api/messages/${enc(id)}`);
    } catch (error) {
      if (current !== id) return;
      fill(el, h('h2', { id: 'message-title', tabindex: '-1' }, 'Message'),
        h('p', null, error.status === 404 ? 'No such message.' : 'Could not load it.'),
        h('button', { type: 'button', class: 'button', onclick: close }, 'Close'));
      ctx.fail(error);
      return;
    }
    if (current !== id) return;
    render(message);
  }

  function render(m) {
    const title = h('h2', { id: 'message-title', tabindex: '-1' }, 'Message ',
      h('span', { class: 'mono' }, m.id));
    const facts = [
      ['Received', h('time', { datetime: new Date(m.received_at * 1000).toISOString() },
        absolute(m.received_at))],
      ['Channel', h('a', { href: `#/channels/${enc(m.channel)}` }, m.channel)],
      ['Status', statusBadge(m.status)],
      ['Type', `${m.message_type || '–'} (${m.standard})`],
      ['Control id', h('span', { class: 'mono' }, m.control_id || '–')],
      ['Sender', m.sender || '–'],
      ['From', h('span', { class: 'mono' }, m.peer || '–')],
      ['Size', `${num(m.size)} bytes`],
      // Retention removed the content (and outputs); the metadata and hops remain.
      m.pruned ? ['Content', "pruned under the channel's retention"] : null,
      m.error ? ['Note', m.error] : null,
      ['Outputs', m.outputs?.length
        ? m.outputs.map((o) => `${o.mapping} (${o.content_type})`).join(', ') : 'none'],
      // What a receiver answered when it refused the message: the PHI-free summary here,
      // its own words (which may quote the patient) only with the content.
      m.answers?.length ? ['Receiver said', h('ul', { class: 'answers' },
        m.answers.map((a) => h('li', null, `${a.destination}: ${a.reason}`)))] : null,
      // Linked by the standard's own correlation (a NewRx and its Status or Error).
      m.related?.length ? ['Related', h('ul', { class: 'related' },
        m.related.map((r) => h('li', null,
          h('a', { href: `#/messages/${enc(r.message_id)}` }, r.type || r.message_id),
          r.relation === 'answers' ? ', which this answers' : ', answering this',
          ` (${r.status})`)))] : null,
      ...conversionFacts(m.conversion),
    ].filter(Boolean);
    const tools = h('div', { class: 'actions' });
    const contentArea = h('div', { class: 'content-area' });
    if (ctx.can('view-content') && !m.pruned) {
      tools.append(h('button', { type: 'button', class: 'button primary',
        onclick: () => viewContent(m.id, contentArea) }, 'View content…'));
    }
    if (ctx.can('reprocess') && !m.pruned) {
      tools.append(h('button', { type: 'button', class: 'button',
        onclick: () => reprocess(m.id) }, 'Reprocess…'));
    }
    tools.append(h('button', { type: 'button', class: 'button quiet', onclick: close },
      'Close'));
    fill(el, h('div', { class: 'panel-head' }, title),
      h('dl', { class: 'facts compact' }, facts.map(([t, v]) => [h('dt', null, t),
        h('dd', null, v)])),
      tools,
      contentArea,
      h('h3', null, 'Hops'),
      h('ol', { class: 'hops' }, (m.hops ?? []).map((hop) => h('li', { class: `hop ${hop.kind}` },
        clockTime(hop.at, { precise: true }),
        h('span', { class: 'hop-kind' }, hop.kind),
        hop.destination ? h('span', { class: 'hop-dest' }, `→ ${hop.destination}`) : null,
        hop.actor && hop.actor !== 'engine' ? h('span', { class: 'hop-actor' }, `by ${hop.actor}`)
          : null,
        hopDetail(hop) ? h('span', { class: 'hop-detail' }, hopDetail(hop)) : null))));
    title.focus();
  }

  async function viewContent(id, area) {
    const answer = await ask({
      title: 'Why do you need to read this message?',
      message: 'Its content is patient data. Your name, the time and your reason are ' +
        'written to the audit trail before it is shown. Do not name the patient in ' +
        'the reason: the trail and its exports keep it as written.',
      fields: [{ name: 'reason', label: 'Reason', required: true, multiline: true,
        maxlength: 200, placeholder: 'e.g. INC-2231: PID-3 missing in the FHIR Patient' }],
      confirm: 'Show content',
    });
    if (!answer) return;
    let reply;
    try {
      // the reason in a header, not the address, which proxies and browsers keep
      reply = await ctx.api(`/api/messages/${enc(id)}?content=1`,
        { extra: { 'X-Conduit-Reason': enc(answer.reason) } });
    } catch (error) {
      ctx.fail(error);
      return;
    }
    if (current !== id || !area.isConnected) return;
    const content = reply.content;
    fill(area, h('section', { class: 'content', 'aria-labelledby': 'content-title' },
      h('div', { class: 'content-head' },
        h('h3', { id: 'content-title', tabindex: '-1' }, 'Content',
          h('span', { class: 'phi' }, 'patient data — access recorded')),
        h('button', { type: 'button', class: 'button small quiet',
          onclick: () => area.replaceChildren() }, 'Hide content')),
      h('h4', null, 'Raw message'),
      h('pre', { class: 'raw', tabindex: '0' }, hl7Lines(content.raw)),
      (content.outputs ?? []).map((o) => [
        h('h4', null, `Output of ${o.mapping}`, h('span', { class: 'muted' },
          ` ${o.content_type}`)),
        h('pre', { class: 'output', tabindex: '0' }, pretty(o.content, o.content_type))]),
      (content.answers ?? []).map((a) => [
        h('h4', null, `Answer of ${a.destination} (HTTP ${a.code})`, h('span', { class: 'muted' },
          ` ${absolute(a.at)}`)),
        h('pre', { class: 'answer', tabindex: '0' }, pretty(a.content, a.content_type))])));
    area.querySelector('h3').focus();
  }

  async function reprocess(id) {
    const mapping = mappingOf();
    const answer = await ask({
      title: `Reprocess ${id}?`,
      message: 'The stored raw message goes through the channel again: filter, mapping and ' +
        'delivery to every destination. This is written to the audit trail.',
      fields: [{ name: 'mapping', label: 'Mapping version (optional)',
        placeholder: mapping ?? 'name@version', pattern: '[A-Za-z0-9._\\-]+@[0-9]+',
        hint: `Leave empty to use the channel's current mapping${mapping ? ` (${mapping})`
          : ''}, or type another version, such as hl7v2-adt-to-fhir@2.` }],
      confirm: 'Reprocess',
    });
    if (!answer) return;
    try {
      const result = await ctx.api(`/api/messages/${enc(id)}/reprocess`, { method: 'POST',
        body: answer.mapping ? { mapping: answer.mapping } : {} });
      ctx.notify(`Reprocessed ${id}: ${result.status}` +
        (result.mapping ? ` with ${result.mapping}.` : '.'));
      changed();
      current = null; // reload: the reprocessing added hops
      await open(id);
    } catch (error) {
      ctx.fail(error);
    }
  }

  return {
    el,
    open,
    close() {
      current = null;
      el.hidden = true;
      el.replaceChildren(); // drops any content shown
    },
    current: () => current,
  };
}
