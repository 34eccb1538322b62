// Numbers, durations and times as people read them. Relative times ("12 s ago") are
// computed against the server's clock (learnt from each status snapshot), so a wall
// screen whose own clock drifts still shows the right ages.

const numberFormat = new Intl.NumberFormat();
const rateFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
let skew = 0; // server clock minus ours, in seconds

export function setServerTime(at) {
  if (typeof at === 'number') skew = at - Date.now() / 1000;
}

export function serverNow() {
  return Date.now() / 1000 + skew;
}

export function num(n) {
  return n === null || n === undefined ? '–' : numberFormat.format(n);
}

export function rate(perSecond) {
  return perSecond === null || perSecond === undefined ? '–' : `${rateFormat.format(perSecond)}/s`;
}

export function ms(value) {
  return value === null || value === undefined ? '–' : `${rateFormat.format(value)} ms`;
}

/** 42 s, 3 min 5 s, 2 h 10 min, 3 d 4 h */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  const sec = Math.max(0, Math.round(seconds));
  if (sec < 60) return `${sec} s`;
  const min = Math.floor(sec / 60);
  if (min < 60) return sec % 60 ? `${min} min ${sec % 60} s` : `${min} min`;
  const hours = Math.floor(min / 60);
  if (hours < 24) return min % 60 ? `${hours} h ${min % 60} min` : `${hours} h`;
  const days = Math.floor(hours / 24);
  return hours % 24 ? `${days} d ${hours % 24} h` : `${days} d`;
}

export function ago(at) {
  const age = serverNow() - at;
  if (age < 5) return 'just now';
  return `${duration(age)} ago`;
}

export function absolute(at) {
  return new Date(at * 1000).toLocaleString();
}

const clockFormat = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
const dayFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });

/** A <time> showing the clock time (to the millisecond with `precise`), and the day
 * too when it was not today: what people compare with a sender's own logs. */
export function clockTime(at, { precise = false } = {}) {
  const date = new Date(at * 1000);
  let text = clockFormat.format(date);
  if (precise) text += `.${String(date.getMilliseconds()).padStart(3, '0')}`;
  if (date.toDateString() !== new Date(serverNow() * 1000).toDateString()) {
    text = `${dayFormat.format(date)} ${text}`;
  }
  const el = document.createElement('time');
  el.dateTime = date.toISOString();
  el.title = absolute(at);
  el.textContent = text;
  return el;
}

/** A <time> that the page's one-second ticker keeps current. */
export function timeAgo(at) {
  const el = document.createElement('time');
  setTime(el, at);
  return el;
}

function setTime(el, at) {
  if (at === null || at === undefined) {
    el.removeAttribute('datetime');
    el.removeAttribute('title');
    delete el.dataset.at;
    el.textContent = '–';
    return el;
  }
  el.dateTime = new Date(at * 1000).toISOString();
  el.title = absolute(at);
  el.dataset.at = String(at);
  el.textContent = ago(at);
  return el;
}

export function refreshTimes(root = document) {
  for (const el of root.querySelectorAll('time[data-at]')) {
    el.textContent = ago(Number(el.dataset.at));
  }
}
