// The console's only way to the server: the REST API under /v1 (docs/api.md),
// with the session cookie set by POST /v1/session. Every failure is thrown
// as an ApiError carrying the API's own message, field and hint.

/** ApiError is an API failure: {error: {code, message, field, hint}} and the HTTP status. */
export class ApiError extends Error {
  constructor(status, code, message, field = '', hint = '') {
    super(message || code || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code || '';
    this.field = field || '';
    this.hint = hint || '';
  }
}

/**
 * me is who is signed in, filled by session() and signIn():
 * user, projects ({name: role}; for cluster admins every project, role "admin"),
 * clusterAdmin, csrfToken, expires.
 */
export const me = { user: '', projects: {}, clusterAdmin: false, csrfToken: '', expires: '' };

const unauthorizedListeners = new Set();

/** onUnauthorized(fn) calls fn when a request answers 401 (the session ended). */
export function onUnauthorized(fn) {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}

/** csrfToken is the header value changes need (for callers that use XMLHttpRequest, e.g. uploads). */
export function csrfToken() {
  return me.csrfToken;
}

async function errorOf(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON: fall through
  }
  const e = (body && body.error) || {};
  const err = new ApiError(res.status, e.code || res.statusText, e.message || `${res.status} ${res.statusText}`, e.field, e.hint);
  const retry = res.headers.get('Retry-After');
  if (retry) err.retryAfter = Number(retry);
  if (res.status === 401 && !res.url.endsWith('/v1/session')) {
    for (const fn of unauthorizedListeners) fn(err);
  }
  return err;
}

async function request(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  let payload;
  if (body !== undefined && body !== null) {
    if (body instanceof Blob || body instanceof ArrayBuffer) {
      payload = body;
      headers['Content-Type'] = 'application/octet-stream';
    } else {
      payload = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
  }
  if (method !== 'GET' && method !== 'HEAD' && me.csrfToken) headers['X-CSRF-Token'] = me.csrfToken;
  Object.assign(headers, opts.headers || {});
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload, credentials: 'same-origin', signal: opts.signal });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'Unavailable', 'The server cannot be reached.', '', 'Check the network, then try again.');
  }
  if (!res.ok) throw await errorOf(res);
  if (res.status === 204 || method === 'HEAD') return null;
  const type = res.headers.get('Content-Type') || '';
  if (type.includes('json')) return res.json();
  const textBody = await res.text();
  if (!type.startsWith('text/plain') || !/^\s*[{[]/.test(textBody)) return textBody;
  try {
    return JSON.parse(textBody); // JSON that was sent without its type
  } catch {
    return textBody;
  }
}

/** get reads a JSON resource: get('/v1/projects/p/instances'). */
export function get(path, opts) {
  return request('GET', path, undefined, opts);
}

/** send changes something: send('POST', path, body); adds the CSRF token. */
export function send(method, path, body, opts) {
  return request(method, path, body, opts);
}

/** text reads a plain-text resource (logs). */
export async function text(path, opts) {
  return request('GET', path, undefined, { ...opts, headers: { Accept: 'text/plain' } });
}

async function fillMe(s, whoami, projects) {
  me.user = s.user || '';
  me.csrfToken = s.csrfToken || '';
  me.expires = s.expires || '';
  const who = await (whoami || get('/v1/whoami'));
  me.user = who.user || me.user;
  me.clusterAdmin = !!who.clusterAdmin;
  me.projects = { ...(who.roles || {}) };
  if (me.clusterAdmin) {
    try {
      const list = await (projects || get('/v1/projects'));
      for (const p of list.items || []) me.projects[p.metadata.name] = me.projects[p.metadata.name] || 'admin';
    } catch {
      // keep the projects of the roles
    }
  }
  return me;
}

/** session returns me for a valid session cookie, or null (not signed in). */
export async function session() {
  // Ask who we are at the same time: one round trip less on every load.
  const whoami = get('/v1/whoami');
  whoami.catch(() => {});
  // Every user may list the projects (each sees those it may); cluster
  // admins need the list, so ask now rather than after whoami.
  const projects = get('/v1/projects');
  projects.catch(() => {});
  try {
    const s = await get('/v1/session');
    return await fillMe(s, whoami, projects);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

/** signIn takes {user, password} or {token}; it returns me or throws ApiError. */
export async function signIn(body) {
  const s = await request('POST', '/v1/session', body);
  return fillMe(s);
}

/** signOut ends the session. */
export async function signOut() {
  try {
    await request('DELETE', '/v1/session');
  } finally {
    me.user = '';
    me.csrfToken = '';
    me.projects = {};
    me.clusterAdmin = false;
  }
}

/** projectPath is the API path of a project-scoped kind: projectPath('p', 'instances', 'web-1'). */
export function projectPath(project, plural, name = '') {
  const base = `/v1/projects/${encodeURIComponent(project)}/${plural}`;
  return name ? `${base}/${encodeURIComponent(name)}` : base;
}

/** clusterPath is the API path of a cluster-scoped kind: clusterPath('hosts', 'h1'). */
export function clusterPath(plural, name = '') {
  return name ? `/v1/${plural}/${encodeURIComponent(name)}` : `/v1/${plural}`;
}

// early holds lists asked for before the session was confirmed (see
// prefetch), by path; the first watch of that path takes its answer.
const early = new Map();

/**
 * prefetch starts listing path now, before anyone watches it, so that a
 * page known at load (the map of the project last used) does not wait for
 * the session check before its lists start. The first watch(path) uses
 * the answer (or its error); dropPrefetched forgets answers nobody took.
 */
export function prefetch(path) {
  if (early.has(path)) return;
  const answer = get(path);
  answer.catch(() => {}); // reported to the watch that takes it, if any
  early.set(path, answer);
}

/** dropPrefetched forgets the prefetched lists no watch has taken. */
export function dropPrefetched() {
  early.clear();
}

/** viewPath returns the path of a list of path in view (none when view is empty). */
export function viewPath(path, view) {
  return view ? withQuery(path, { view }) : path;
}

function withQuery(path, params) {
  const sep = path.includes('?') ? '&' : '?';
  const q = new URLSearchParams(params).toString();
  return q ? path + sep + q : path;
}

/**
 * watch keeps a live view of a list: it lists path, then watches it from the
 * list's resourceVersion (NDJSON, docs/api.md), and lists again when the
 * server says Gone. onEvent receives, in order:
 *   {type: 'RESET'}                          before every full list (drop what you hold),
 *   {type: 'ADDED', object} ...              one per listed object,
 *   {type: 'SYNCED', resourceVersion}        the list is complete,
 *   {type: 'ADDED'|'MODIFIED'|'DELETED', object} as things change.
 * Bookmarks are absorbed. A lost connection is retried (1 s doubling to 30 s)
 * from the last version seen; onError(err) is told of each failure. A 403 or
 * 404 ends the watch (after onError). With opts.view the lists ask for that
 * view (docs/api.md, "Views"): listed objects hold only the view's fields,
 * changes come whole. Returns stop().
 */
export function watch(path, onEvent, onError = () => {}, opts = {}) {
  const listPath = viewPath(path, opts.view);
  let stopped = false;
  let controller = null;
  let rv = '';
  let delay = 1000;
  let timer = 0;

  const emit = (ev) => {
    if (!stopped) onEvent(ev);
  };

  async function list() {
    controller = new AbortController();
    const pre = early.get(listPath);
    early.delete(listPath);
    const res = await (pre || get(listPath, { signal: controller.signal }));
    if (stopped) return;
    rv = (res.metadata && res.metadata.resourceVersion) || '';
    emit({ type: 'RESET' });
    for (const o of res.items || []) emit({ type: 'ADDED', object: o });
    emit({ type: 'SYNCED', resourceVersion: rv });
  }

  // stream reads one watch response; it returns 'gone' when a new list is needed.
  async function stream() {
    controller = new AbortController();
    const params = { watch: 'true' };
    if (rv) params.resourceVersion = rv;
    let res;
    try {
      res = await fetch(withQuery(path, params), {
        headers: { Accept: 'application/json' },
        credentials: 'same-origin',
        signal: controller.signal,
      });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(0, 'Unavailable', 'The watch stream could not connect.', '', 'Retrying.');
    }
    if (!res.ok) {
      const err = await errorOf(res);
      if (err.status === 410) return 'gone';
      throw err;
    }
    delay = 1000;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        let ev;
        try {
          ev = JSON.parse(line);
        } catch {
          continue;
        }
        const obj = ev.object || {};
        if (ev.type === 'ERROR') {
          const e = obj.error || obj;
          if (e.code === 'Gone' || e.status === 410) return 'gone';
          throw new ApiError(500, e.code, e.message, e.field, e.hint);
        }
        if (obj.metadata && obj.metadata.resourceVersion) rv = obj.metadata.resourceVersion;
        if (ev.type === 'BOOKMARK') continue;
        emit({ type: ev.type, object: obj });
      }
    }
    return 'ended';
  }

  async function run() {
    let needList = true;
    while (!stopped) {
      try {
        if (needList) {
          await list();
          needList = false;
        }
        const began = Date.now();
        const how = await stream();
        if (how === 'gone') needList = true;
        // An ended stream (server restart, timeout) resumes at once, unless
        // it ended as soon as it began: then wait as after a failure.
        if (Date.now() - began > 5000) continue;
      } catch (e) {
        if (stopped || e.name === 'AbortError') return;
        onError(e);
        if (e instanceof ApiError && (e.status === 401 || e.status === 403 || e.status === 404)) return;
        if (e instanceof ApiError && e.status === 400) needList = true;
      }
      await new Promise((resolve) => {
        timer = setTimeout(resolve, delay);
      });
      delay = Math.min(delay * 2, 30000);
    }
  }

  run();
  return function stop() {
    stopped = true;
    clearTimeout(timer);
    if (controller) controller.abort();
  };
}
