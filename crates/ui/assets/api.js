// The page's API client: same-origin requests, so the browser's credentials apply (kubectl proxy
// signing for it, or a client certificate the browser holds), plus an optional bearer token that
// the user pasted, kept in this tab's sessionStorage only.

const TOKEN_KEY = 'ironnet.ui.token';

/** A failed request: the HTTP status and the Kubernetes Status reason and message. */
export class ApiError extends Error {
  constructor(status, reason, message) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

/** The bearer token of this tab, or '' when the page relies on the browser's credentials. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

/** Keeps `value` as this tab's bearer token ('' forgets it). */
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function request(path, accept, signal) {
  const headers = { Accept: accept };
  const bearer = token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  return fetch(path, { headers, signal, cache: 'no-store', credentials: 'same-origin' });
}

async function failure(resp) {
  let reason = resp.statusText;
  let message = `${resp.status} ${resp.statusText}`;
  try {
    const status = JSON.parse(await resp.text());
    if (status && status.kind === 'Status') {
      reason = status.reason || reason;
      message = status.message || message;
    }
  } catch {
    // Not a Status (a proxy's own error page): the HTTP status says enough.
  }
  return new ApiError(resp.status, reason, message);
}

/** GET `path` as JSON; throws ApiError when the server refuses. */
export async function getJSON(path, signal) {
  const resp = await request(path, 'application/json', signal);
  if (!resp.ok) throw await failure(resp);
  return resp.json();
}

/** GET `path` as text (Prometheus exposition for /metrics); throws ApiError when refused. */
export async function getText(path, signal) {
  // kube-apiserver's /metrics is Prometheus text whatever is asked; '*/*' passes content negotiation.
  const resp = await request(path, '*/*', signal);
  if (!resp.ok) throw await failure(resp);
  return resp.text();
}

/**
 * Watches the collection `path` from `resourceVersion`: calls `onEvent` with each watch event
 * (one JSON object per line of the streamed body) until the server ends the stream. An ERROR
 * event (e.g. 410 Gone when `resourceVersion` is too old) is thrown as an ApiError.
 */
export async function watch(path, resourceVersion, onEvent, signal) {
  const sep = path.includes('?') ? '&' : '?';
  const url = `${path}${sep}watch=1&allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(resourceVersion)}`;
  const resp = await request(url, 'application/json', signal);
  if (!resp.ok) throw await failure(resp);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    pending += value;
    let newline;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      if (!line) continue;
      const event = JSON.parse(line);
      if (event.type === 'ERROR') {
        const status = event.object || {};
        throw new ApiError(status.code || 500, status.reason || 'Error', status.message || 'watch error');
      }
      onEvent(event);
    }
  }
}
