// The console's shell: sign-in, the top bar (project picker, user menu,
// sign-out), the side nav, the hash router, toasts and the display of API
// errors. Pages register themselves:
//
//   import { register } from '../app.js';
//   register('instances/:name', { title: 'Instance', render(el, params, ctx) { ... } });
//
// render(el, params, ctx) fills el (the page's <section>); it may return a
// function (or a promise of one) that is called when the page is left.
// params holds the route's :names, decoded, and params.query the
// URLSearchParams after "?" in the hash. ctx is:
//   project          the project picked in the top bar ('' if none)
//   me               api.me (user, projects {name: role}, clusterAdmin)
//   can(verb, kind)  whether the user's role allows it: verbs get list watch
//                    create update delete start stop reboot logs exec grant,
//                    and the admin teaching actions crash drain cordon;
//                    kind a plural ('instances') or a kind name ('Instance')
//   toast(msg, kind) a passing message; kind 'info' (default), 'ok' or 'error'
//   error(err)       an element showing an ApiError as the API gave it
//   toastError(err)  the same as a toast
//   navigate(hash)   go to '#/instances/web-1'
//   signal           an AbortSignal aborted when the page is left
//   onLeave(fn)      call fn when the page is left (stop watches there)
//   api              the module api.js
import * as api from './api.js';
import { h, clear } from './dom.js';

export { h, clear };

const routes = [];

/** register adds a page at a hash route such as 'instances' or 'instances/:name'. */
export function register(route, page) {
  const pattern = normalize(route);
  const parts = pattern ? pattern.split('/') : [];
  const i = routes.findIndex((r) => r.pattern === pattern);
  const entry = { pattern, parts, page };
  if (i >= 0) routes[i] = entry;
  else routes.push(entry);
  if (started && current && current.pattern === pattern) route_();
}

function normalize(route) {
  return route.replace(/^#?\/*/, '').replace(/\/+$/, '');
}

/**
 * The side nav: every family of resources. admin: only cluster admins see it.
 * Pages register the route of the same name.
 */
export const nav = [
  { route: 'map', label: 'Map' },
  { route: 'instances', label: 'Instances' },
  { route: 'groups', label: 'Groups' },
  { route: 'loadbalancers', label: 'Load balancers' },
  { route: 'stacks', label: 'Stacks' },
  { route: 'vpcs', label: 'VPCs' },
  { route: 'networks', label: 'Networks' },
  { route: 'securitygroups', label: 'Security groups' },
  { route: 'floatingips', label: 'Floating IPs' },
  { route: 'keypairs', label: 'Key pairs' },
  { route: 'images', label: 'Images' },
  { route: 'flavors', label: 'Flavors' },
  { route: 'hosts', label: 'Hosts' },
  { route: 'projects', label: 'Projects' },
  { route: 'users', label: 'Users', admin: true },
];

const READ = new Set(['get', 'list', 'watch']);
const TEACHING = new Set(['crash', 'drain', 'cordon', 'uncordon']);
const CLUSTER_READABLE = new Set(['hosts', 'flavors', 'floatingippools', 'projects']);
const CLUSTER = new Set([...CLUSTER_READABLE, 'users', 'tokens', 'jointokens', 'hostnetworks', 'servers']);
const PLURALS = {
  instancegroup: 'instancegroups', group: 'instancegroups', groups: 'instancegroups',
  vpc: 'vpcs', securitygroup: 'securitygroups', floatingip: 'floatingips', keypair: 'keypairs',
  loadbalancer: 'loadbalancers', floatingippool: 'floatingippools',
};

function plural(kind) {
  const k = String(kind || '').toLowerCase();
  if (PLURALS[k]) return PLURALS[k];
  return k.endsWith('s') ? k : `${k}s`;
}

/** can reports whether the signed-in user may do verb on kind in project (see docs/api.md). */
export function can(verb, kind, project = state.project) {
  const me = api.me;
  if (me.clusterAdmin) return true;
  if (TEACHING.has(verb)) return false;
  const k = plural(kind);
  if (CLUSTER.has(k)) {
    if (CLUSTER_READABLE.has(k)) return READ.has(verb);
    if (k === 'tokens' && (verb === 'grant' || verb === 'create')) return me.projects[project] === 'admin';
    return false;
  }
  const role = me.projects[project];
  if (!role) return false;
  if (READ.has(verb)) return true;
  if (k === 'events') return false;
  if (verb === 'grant') return role === 'admin';
  return role === 'member' || role === 'admin';
}

const state = { project: '', shell: null, main: null };
let started = false;
let current = null; // {pattern, leave: [fns], controller}

/** toast shows a passing message at the bottom of the screen. */
export function toast(msg, kind = 'info') {
  const box = document.getElementById('toasts');
  const t = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' });
  if (msg instanceof Node) t.append(msg);
  else t.textContent = String(msg);
  const close = h('button', { class: 'toast-close', type: 'button', 'aria-label': 'Dismiss', onclick: () => t.remove() }, '×');
  t.append(close);
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 10000 : 4000);
}

/** errorBox is an element showing an error: the API's message, field and hint, word for word. */
export function errorBox(err) {
  const box = h('div', { class: 'error', role: 'alert' });
  box.append(h('strong', { class: 'error-message' }, (err && err.message) || String(err)));
  if (err && err.field) box.append(h('div', { class: 'error-field' }, 'Field: ', h('code', {}, err.field)));
  if (err && err.hint) box.append(h('div', { class: 'error-hint' }, err.hint));
  if (err && err.retryAfter) box.append(h('div', { class: 'error-hint' }, `Try again in ${err.retryAfter} s.`));
  return box;
}

/** toastError shows an error as a toast. */
export function toastError(err) {
  const box = errorBox(err);
  box.removeAttribute('role');
  toast(box, 'error');
}

/** navigate goes to a hash route: navigate('#/instances/web-1'). */
export function navigate(hash) {
  const to = hash.startsWith('#') ? hash : `#/${normalize(hash)}`;
  if (location.hash === to) route_();
  else location.hash = to;
}

function match(hash) {
  const raw = hash.replace(/^#\/?/, '');
  const [pathPart, queryPart = ''] = raw.split('?');
  const segs = pathPart.split('/').filter(Boolean);
  for (const r of routes) {
    if (r.parts.length !== segs.length) continue;
    const params = {};
    let ok = true;
    for (let i = 0; i < segs.length; i++) {
      const p = r.parts[i];
      let s;
      try {
        s = decodeURIComponent(segs[i]);
      } catch {
        s = segs[i];
      }
      if (p.startsWith(':')) params[p.slice(1)] = s;
      else if (p !== s) {
        ok = false;
        break;
      }
    }
    if (ok) {
      params.query = new URLSearchParams(queryPart);
      return { r, params };
    }
  }
  return { r: null, params: { query: new URLSearchParams(queryPart) }, segs };
}

function leave() {
  if (!current) return;
  current.controller.abort();
  for (const fn of current.leave) {
    try {
      fn();
    } catch (e) {
      console.error(e);
    }
  }
  current = null;
}

async function route_() {
  if (!state.main) return;
  if (!location.hash || location.hash === '#' || location.hash === '#/') {
    history.replaceState(null, '', '#/map');
  }
  leave();
  const { r, params, segs } = match(location.hash);
  // A link may name its project (#/instances/web-1?project=p): follow it
  // if the user has a role there.
  const linked = params.query.get('project');
  if (linked && linked !== state.project && linked in api.me.projects) setProject(linked);
  const el = h('section', { class: 'page' });
  clear(state.main).append(el);
  markNav(segs ? segs[0] : r.parts[0]);
  closeMenu();
  const controller = new AbortController();
  const me = { pattern: r ? r.pattern : null, leave: [], controller };
  current = me;
  if (!r) {
    document.title = 'Not found · Ouroboros';
    el.append(h('h1', {}, 'Not found'), h('p', {}, `There is no page at ${location.hash}.`), h('p', {}, h('a', { href: '#/map' }, 'Back to the map')));
    return;
  }
  document.title = `${r.page.title || r.pattern} · Ouroboros`;
  const ctx = {
    project: state.project,
    me: api.me,
    api,
    can: (verb, kind) => can(verb, kind, ctx.project),
    toast,
    error: errorBox,
    toastError,
    navigate,
    signal: controller.signal,
    onLeave: (fn) => me.leave.push(fn),
  };
  try {
    const cleanup = await r.page.render(el, params, ctx);
    if (typeof cleanup === 'function') {
      if (current === me) me.leave.push(cleanup);
      else cleanup();
    }
  } catch (e) {
    if (e && e.name === 'AbortError') return;
    console.error(e);
    if (current === me) el.append(errorBox(e));
  }
  if (current === me && document.activeElement === document.body) state.main.focus({ preventScroll: true });
}

function markNav(first) {
  for (const a of document.querySelectorAll('.sidenav a')) {
    if (a.dataset.route === first) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function closeMenu() {
  const btn = document.querySelector('.menu-button');
  if (btn) btn.setAttribute('aria-expanded', 'false');
  document.body.classList.remove('nav-open');
}

function pickProject(projects) {
  const names = Object.keys(projects).sort();
  const saved = localStorage.getItem('ouro.project');
  if (saved && names.includes(saved)) return saved;
  if (names.includes('default')) return 'default';
  return names[0] || '';
}

function renderShell() {
  const app = document.getElementById('app');
  const me = api.me;
  state.project = pickProject(me.projects);

  const picker = h('select', { id: 'project-picker', 'aria-label': 'Project' });
  const names = Object.keys(me.projects).sort();
  if (!names.length) picker.append(h('option', { value: '' }, '(no project)'));
  for (const n of names) picker.append(h('option', { value: n, selected: n === state.project }, n));
  picker.addEventListener('change', () => {
    setProject(picker.value);
    route_();
  });

  const menuButton = h('button', { class: 'menu-button', type: 'button', 'aria-controls': 'sidenav', 'aria-expanded': 'false', 'aria-label': 'Menu' }, h('span', { class: 'menu-icon', 'aria-hidden': 'true' }), 'Menu');
  menuButton.addEventListener('click', () => {
    const open = menuButton.getAttribute('aria-expanded') !== 'true';
    menuButton.setAttribute('aria-expanded', String(open));
    document.body.classList.toggle('nav-open', open);
    if (open) document.querySelector('.sidenav a')?.focus();
  });

  const role = me.clusterAdmin ? 'cluster admin' : me.projects[state.project] || 'no role';
  const userMenu = h('details', { class: 'user-menu' },
    h('summary', {}, h('span', { class: 'user-name' }, me.user || 'signed in')),
    h('div', { class: 'user-menu-body' },
      h('p', {}, 'Signed in as ', h('strong', {}, me.user)),
      h('p', { class: 'muted', id: 'user-role' }, role),
      h('button', { type: 'button', class: 'button', onclick: doSignOut }, 'Sign out')));

  const links = nav.filter((n) => !n.admin || me.clusterAdmin)
    .map((n) => h('li', {}, h('a', { href: `#/${n.route}`, 'data-route': n.route }, n.label)));

  state.main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  state.shell = h('div', { class: 'shell' },
    h('a', { class: 'skip-link', href: '#main', onclick: (e) => { e.preventDefault(); state.main.focus(); } }, 'Skip to content'),
    h('header', { class: 'topbar' },
      menuButton,
      h('a', { class: 'brand', href: '#/map' }, h('img', { src: 'img/logo.svg', alt: '', width: 24, height: 24 }), 'Ouroboros'),
      h('label', { class: 'project-label' }, h('span', { class: 'project-caption' }, 'Project'), picker),
      h('span', { class: 'spacer' }),
      userMenu),
    h('nav', { id: 'sidenav', class: 'sidenav', 'aria-label': 'Resources' }, h('ul', {}, links)),
    state.main);
  clear(app).append(state.shell);
}

// setProject makes p the project of the pages, the picker and the next visit.
function setProject(p) {
  state.project = p;
  localStorage.setItem('ouro.project', p);
  const picker = document.getElementById('project-picker');
  if (picker) picker.value = p;
  const r = document.getElementById('user-role');
  if (r) r.textContent = api.me.clusterAdmin ? 'cluster admin' : api.me.projects[p] || 'no role';
}

async function doSignOut() {
  leave();
  try {
    await api.signOut();
  } catch (e) {
    toastError(e);
  }
  showSignIn('You are signed out.');
}

function showSignIn(note = '') {
  leave();
  state.main = null;
  const app = document.getElementById('app');
  document.title = 'Sign in · Ouroboros';
  const status = h('div', { class: 'signin-status', 'aria-live': 'polite' });
  if (note) status.append(h('p', { class: 'muted' }, note));

  const user = h('input', { id: 'signin-user', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const password = h('input', { id: 'signin-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const token = h('input', { id: 'signin-token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false' });
  const passwordFields = h('div', { class: 'signin-fields' },
    h('label', { for: 'signin-user' }, 'User'), user,
    h('label', { for: 'signin-password' }, 'Password'), password);
  const tokenFields = h('div', { class: 'signin-fields', hidden: true },
    h('label', { for: 'signin-token' }, 'API token'), token,
    h('p', { class: 'muted' }, 'A token from ', h('code', {}, 'ouro token create'), ' or your CLI configuration.'));

  const modePassword = h('input', { type: 'radio', name: 'mode', value: 'password', id: 'mode-password', checked: true });
  const modeToken = h('input', { type: 'radio', name: 'mode', value: 'token', id: 'mode-token' });
  const setMode = () => {
    const useToken = modeToken.checked;
    passwordFields.hidden = useToken;
    tokenFields.hidden = !useToken;
    user.required = !useToken;
    password.required = !useToken;
    token.required = useToken;
  };
  modePassword.addEventListener('change', setMode);
  modeToken.addEventListener('change', setMode);

  const submit = h('button', { type: 'submit', class: 'button primary' }, 'Sign in');
  const form = h('form', { class: 'signin-form', novalidate: false },
    h('h1', {}, h('img', { src: 'img/logo.svg', alt: '', width: 32, height: 32 }), 'Ouroboros'),
    h('fieldset', { class: 'signin-mode' },
      h('legend', {}, 'Sign in with'),
      modePassword, h('label', { for: 'mode-password' }, 'Password'),
      modeToken, h('label', { for: 'mode-token' }, 'API token')),
    passwordFields, tokenFields, status, submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    clear(status);
    const body = modeToken.checked ? { token: token.value.trim() } : { user: user.value.trim(), password: password.value };
    try {
      await api.signIn(body);
      password.value = '';
      token.value = '';
      start();
    } catch (err) {
      status.append(errorBox(err));
      submit.disabled = false;
      (modeToken.checked ? token : password).focus();
    }
  });
  clear(app).append(h('div', { class: 'signin' }, form));
  user.focus();
}

function start() {
  renderShell();
  if (!started) {
    started = true;
    window.addEventListener('hashchange', route_);
  }
  route_();
}

async function loadPages() {
  const mods = ['./map.js', './events.js', './pages/index.js', './term.js'];
  const results = await Promise.allSettled(mods.map((m) => import(m)));
  results.forEach((r, i) => {
    if (r.status === 'rejected') console.error(`console: loading ${mods[i]}:`, r.reason);
  });
}

async function boot() {
  document.documentElement.classList.add('js');
  api.onUnauthorized(() => {
    if (state.main) showSignIn('Your session ended; sign in again.');
  });
  prefetchMap();
  const pages = loadPages();
  let me = null;
  try {
    me = await api.session();
    performance.mark('ouro-session');
  } catch (e) {
    api.dropPrefetched();
    await pages;
    showSignIn();
    const s = document.querySelector('.signin-status');
    if (s) s.append(errorBox(e));
    return;
  }
  await pages;
  if (me) start();
  else showSignIn();
  // The map's watches took their lists when it rendered (synchronously);
  // drop what another page or another project left.
  api.dropPrefetched();
}

// prefetchMap starts the lists of the map when the page opened is the map
// of a known project (named by the link, else the one used last): they are
// the slow part of its first paint, and need not wait for the session
// check and whoami. Without a valid session they answer 401 and are
// dropped.
function prefetchMap() {
  const [path, query = ''] = location.hash.replace(/^#\/?/, '').split('?');
  if (path !== '' && path !== 'map') return;
  const q = new URLSearchParams(query);
  const project = q.get('project') || localStorage.getItem('ouro.project');
  if (!project) return;
  // The same lists as the map's watches make (map.js): in the map view.
  api.prefetch(api.viewPath('/v1/hosts', 'map'));
  api.prefetch(api.viewPath(q.get('all') === '1' ? '/v1/instances' : api.projectPath(project, 'instances'), 'map'));
}

document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && document.body.classList.contains('nav-open')) {
    closeMenu();
    document.querySelector('.menu-button')?.focus();
  }
});

boot();
