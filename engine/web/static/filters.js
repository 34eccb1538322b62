// A message search as the page keeps it: the same parameters the API's /api/messages
// takes, carried in the URL hash (#/messages?status=error&since=…), so a search can be
// linked, bookmarked and refreshed. Times travel as Unix seconds (what the API reads);
// only the form shows them as local date and time.

// The API's search parameters the page sets; a patient is deliberately not one of them,
// since an identifier typed here would end up in the address bar and browser history.
export const FILTERS = ['channel', 'control_id', 'type', 'status', 'since', 'until'];
export const CURSORS = ['before', 'after'];
export const PAGE_SIZES = [25, 50, 100];
export const DEFAULT_LIMIT = 50;

/** The search in a hash's query string, with only known, non-empty parameters. */
export function parseSearch(query) {
  const params = new URLSearchParams(query ?? '');
  const search = {};
  for (const key of [...FILTERS, ...CURSORS, 'limit']) {
    const value = params.get(key)?.trim();
    if (value) search[key] = value;
  }
  if (search.before && search.after) delete search.after; // one direction at a time
  return search;
}

/** The query string for a search, in a stable order (so equal searches compare equal). */
export function searchQuery(search) {
  const params = new URLSearchParams();
  for (const key of [...FILTERS, 'limit', ...CURSORS]) {
    if (search[key] !== undefined && search[key] !== null && search[key] !== '') {
      params.set(key, String(search[key]));
    }
  }
  return params.toString();
}

/** #/messages[/ID]?query */
export function messagesHash(search, messageId = null) {
  const query = searchQuery(search);
  const path = messageId ? `#/messages/${encodeURIComponent(messageId)}` : '#/messages';
  return query ? `${path}?${query}` : path;
}

const pad = (n) => String(n).padStart(2, '0');

/** Unix seconds as a datetime-local input's value, in this browser's time zone. */
export function localInput(seconds) {
  if (seconds === undefined || seconds === null || seconds === '') return '';
  const d = new Date(Number(seconds) * 1000);
  if (Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}` +
    `T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A datetime-local input's value (local time) as Unix seconds, or null when empty. */
export function epochOf(value) {
  if (!value) return null;
  const ms = new Date(value).getTime(); // a date-time without an offset is local time
  return Number.isNaN(ms) ? null : ms / 1000;
}
