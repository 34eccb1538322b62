// Building DOM nodes without innerHTML: text from the API can never become markup, and
// the page's Content-Security-Policy forbids inline styles and scripts anyway.

const SVG_NS = 'http://www.w3.org/2000/svg';

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.setAttribute('class', value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else el.setAttribute(key, value === true ? '' : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** h('a', {href: '#/'}, 'text', otherNode): an HTML element. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** The same for SVG elements (sparklines, icons). */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/**
 * Keep a <tbody>'s rows in step with `items`, keyed by `keyOf(item)`: existing rows are
 * updated in place rather than rebuilt, so a live update every two seconds does not
 * steal keyboard focus from a link or button in the table.
 */
export function syncRows(tbody, items, keyOf, make, update) {
  const old = new Map([...tbody.children].map((tr) => [tr.dataset.key, tr]));
  let prev = null;
  for (const item of items) {
    const key = String(keyOf(item));
    let tr = old.get(key);
    if (tr) old.delete(key);
    else {
      tr = make(item);
      tr.dataset.key = key;
    }
    update(tr, item);
    const want = prev ? prev.nextSibling : tbody.firstChild;
    if (tr !== want) tbody.insertBefore(tr, want);
    prev = tr;
  }
  for (const tr of old.values()) tr.remove();
}

export const enc = encodeURIComponent;
