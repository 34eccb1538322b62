// One modal <dialog> for every confirmation and for the few questions the page asks
// (why you want to read a message, which mapping version to reprocess with). A native
// dialog traps focus, closes on Escape and is announced as a dialog.

import { h } from './dom.js';

let counter = 0;

/**
 * Ask for confirmation, optionally with fields. Resolves to the fields' values
 * ({} when there are none) if confirmed, or null if cancelled.
 */
export function ask({ title, message, fields = [], confirm = 'Confirm', danger = false }) {
  const id = `dialog-${++counter}`;
  const inputs = fields.map((field) => {
    const input = field.multiline
      ? h('textarea', { id: `${id}-${field.name}`, name: field.name, rows: 3 })
      : h('input', { id: `${id}-${field.name}`, name: field.name, type: 'text' });
    for (const attr of ['placeholder', 'pattern', 'maxlength']) {
      if (field[attr]) input.setAttribute(attr, field[attr]);
    }
    input.required = Boolean(field.required);
    input.autocomplete = 'off';
    input.spellcheck = false;
    const hint = field.hint ? h('p', { class: 'hint', id: `${id}-${field.name}-hint` }, field.hint)
      : null;
    if (hint) input.setAttribute('aria-describedby', hint.id);
    return h('div', { class: 'field' },
      h('label', { for: input.id }, field.label), input, hint);
  });
  const cancel = h('button', { type: 'button', class: 'button' }, 'Cancel');
  const ok = h('button', { type: 'submit', class: danger ? 'button danger' : 'button primary' },
    confirm);
  const form = h('form', { method: 'dialog' },
    h('h2', { id: `${id}-title` }, title),
    message ? h('p', { id: `${id}-desc`, class: 'dialog-message' }, message) : null,
    inputs,
    h('div', { class: 'dialog-actions' }, cancel, ok));
  const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': `${id}-title`,
    'aria-describedby': message ? `${id}-desc` : null }, form);
  const opener = document.activeElement;
  document.body.append(dialog);

  return new Promise((resolve) => {
    let answer = null;
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      answer = Object.fromEntries(new FormData(form).entries());
      for (const key of Object.keys(answer)) answer[key] = String(answer[key]).trim();
      dialog.close();
    });
    cancel.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
      resolve(answer);
    });
    dialog.showModal();
    // A destructive action starts on Cancel; a question starts in its first field.
    (inputs.length ? form.querySelector('input, textarea') : danger ? cancel : ok).focus();
  });
}
