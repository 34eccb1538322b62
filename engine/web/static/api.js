// The JSON API, as the page uses it: the session cookie travels by itself, the CSRF token
// goes on every state-changing request, errors become ApiError with the server's
// {error, message}, and a 401 anywhere means the session is gone.

let csrf = null;
let onUnauthorized = () => {};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function setCsrf(token) {
  csrf = token || null;
}

export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

/**
 * fetch() a JSON endpoint. Nothing is cached (`no-store`): status must be fresh, and
 * message content must never land in the browser's cache.
 * `quiet401` lets the sign-in checks handle a 401 themselves; `extra` adds headers.
 */
export async function api(path, { method = 'GET', body, quiet401 = false, extra = {} } = {}) {
  const headers = { Accept: 'application/json', ...extra };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'unreachable', 'The engine did not answer. Is it running?');
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data?.error ?? `http-${response.status}`,
      data?.message ?? (response.statusText || 'the request failed'));
    if (response.status === 401 && !quiet401) onUnauthorized(error);
    throw error;
  }
  return data;
}

const TITLES = {
  0: 'No answer from the engine',
  400: 'The engine did not accept that',
  401: 'Not signed in',
  403: 'Not allowed',
  404: 'Not found',
  409: 'Not possible right now',
  410: 'No longer kept',
};

/** A heading for an error, by HTTP status. */
export function errorTitle(error) {
  if (!(error instanceof ApiError)) return 'Something went wrong in the page';
  return TITLES[error.status] ?? (error.status >= 500 ? 'The engine failed' : 'Request failed');
}
