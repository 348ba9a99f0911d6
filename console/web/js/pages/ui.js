// Shared building blocks of the resource pages: elements, tables, forms
// that show the API's validation errors next to the field they name,
// confirmations, live lists fed by watch streams, and small SVG charts.
//
// Everything that comes from the API reaches the DOM as text nodes or
// attribute values set through the DOM, never as markup.

import * as api from '../api.js';

// h makes an element. attrs: class (string or array), text, on
// ({event: fn}), data ({key: value}), and any other attribute or boolean
// property (disabled, checked, hidden, ...). Children are nodes, strings
// (text), arrays of them, or null/false (skipped).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'data') for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = dv;
    else if (k === 'value' || k === 'checked' || k === 'selected') el[k] = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// clear removes every child of el.
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// replace sets el's children.
export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

// enc encodes one path segment.
export const enc = encodeURIComponent;

// projectPath returns the API path of a project-scoped collection or
// object: projectPath(ctx, 'instances', 'web-1', 'logs').
export function projectPath(ctx, plural, ...rest) {
  return ['/v1/projects', enc(ctx.project), plural, ...rest.map(enc)].join('/');
}

// clusterPath returns the API path of a cluster-scoped collection or object.
export function clusterPath(plural, ...rest) {
  return ['/v1', plural, ...rest.map(enc)].join('/');
}

// link is an anchor to a console route (without the leading #).
export function link(route, text, cls) {
  return h('a', { href: '#' + route, text, class: cls });
}

// page builds a page's frame: a heading with optional actions, and a body.
export function page(el, title, actions) {
  const body = h('div', { class: 'page-body' });
  replace(el, h('header', { class: 'page-head' }, h('h1', { text: title }),
    h('div', { class: 'page-actions' }, actions || [])), body);
  return body;
}

// section is a titled block of a detail page.
export function section(title, ...children) {
  return h('section', { class: 'panel' }, h('h2', { text: title }), children);
}

// dl lists [term, value] pairs; values may be nodes. Empty values show "-".
export function dl(pairs) {
  const list = h('dl', { class: 'props' });
  for (const [k, v] of pairs) {
    list.append(h('dt', { text: k }), h('dd', {}, v === '' || v === undefined || v === null ? '-' : v));
  }
  return list;
}

// badge shows a phase or state with its colour class (phase-Running, ...).
export function phase(p, extra) {
  const text = p || 'Unknown';
  return h('span', { class: ['badge', 'phase-' + text, extra], text });
}

// health shows the Healthy condition of an instance.
export function health(inst) {
  const c = condition(inst.status, 'Healthy');
  if (!c) return h('span', { class: 'badge health-unknown', text: '-' });
  const cls = c.status ? 'health-up' : 'health-down';
  return h('span', { class: ['badge', cls], title: c.message || '', text: c.status ? 'healthy' : 'unhealthy' + (c.reason ? ' (' + c.reason + ')' : '') });
}

// condition returns the condition of type t of a status, or null.
export function condition(status, t) {
  return ((status && status.conditions) || []).find((c) => c.type === t) || null;
}

// age says how long ago an RFC 3339 time was, as the CLI does (5s, 3m, 2h, 4d).
export function age(ts, now = Date.now()) {
  if (!ts) return '-';
  const s = Math.max(0, Math.floor((now - Date.parse(ts)) / 1000));
  if (s < 120) return s + 's';
  if (s < 7200) return Math.floor(s / 60) + 'm';
  if (s < 172800) return Math.floor(s / 3600) + 'h';
  return Math.floor(s / 86400) + 'd';
}

// time shows a timestamp as local time with the age.
export function when(ts) {
  if (!ts) return '-';
  return h('time', { datetime: ts, title: ts, text: new Date(ts).toLocaleString() + ' (' + age(ts) + ' ago)' });
}

// bytes shows a size in B, KiB, MiB, GiB.
export function bytes(n) {
  if (!n) return '0 B';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
}

// table makes a table of rows. columns: [{title, cell(row) → node|string,
// class, show}]; a column with show false (actions the user's role does not
// allow) is left out. It returns {el, update(rows)}; rows are drawn in the
// given order.
export function table(columns, opts = {}) {
  columns = columns.filter((c) => c.show !== false);
  const tbody = h('tbody');
  const el = h('div', { class: 'table-wrap' },
    h('table', { class: 'list' },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class, text: c.title })))),
      tbody));
  const empty = opts.empty || 'Nothing here yet.';
  function update(rows) {
    clear(tbody);
    if (!rows.length) {
      tbody.append(h('tr', {}, h('td', { colspan: columns.length, class: 'empty', text: empty })));
      return;
    }
    for (const r of rows) {
      tbody.append(h('tr', {}, columns.map((c) => {
        const v = c.cell(r);
        return h('td', { class: c.class }, v === '' || v === undefined || v === null ? '-' : v);
      })));
    }
  }
  update([]);
  return { el, update };
}

// byName sorts API objects by name.
export function byName(a, b) {
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}

// live keeps the objects of a collection current through api.watch and
// calls onChange(items sorted by name, map) after every change. It stops
// itself once el has left the document (the user went to another page)
// and returns the stop function.
export function live(el, path, onChange, onError) {
  const items = new Map();
  let synced = false;
  let pending = false;
  let stop = () => {};
  const handler = (ev) => {
    if (!el.isConnected && el.dataset.mounted) { stop(); return; }
    switch (ev.type) {
      case 'RESET': items.clear(); synced = false; return;
      case 'SYNCED': synced = true; break;
      case 'ADDED': case 'MODIFIED': items.set(key(ev.object), ev.object); break;
      case 'DELETED': items.delete(key(ev.object)); break;
      default: return;
    }
    if (!synced) return;
    el.dataset.mounted = '1';
    // A burst of events (a rollout, a re-list) draws once, on the next frame.
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      if (!el.isConnected) { stop(); return; }
      onChange([...items.values()].sort(byName), items);
    });
  };
  stop = api.watch(path, handler, (err) => { if (onError) onError(err); });
  return () => stop();
}

function key(o) {
  return (o.metadata.project || '') + '/' + o.metadata.name;
}

// --- forms --------------------------------------------------------------

// field wraps a control with its label and a slot for the API's message
// about it. name is the API field path it answers for (spec.flavor); an
// error on a deeper path (spec.networks[0].network) lands on the nearest
// field whose name is a prefix of it.
export function field(label, control, name, help) {
  const id = 'f-' + Math.random().toString(36).slice(2, 9);
  control.id = control.id || id;
  const err = h('p', { class: 'field-error', role: 'alert', hidden: true });
  return h('div', { class: 'field', data: { field: name || '' } },
    h('label', { for: control.id, text: label }), control,
    help ? h('p', { class: 'field-help', text: help }) : null, err);
}

// input, select and textarea makers.
export function input(attrs) { return h('input', { type: 'text', ...attrs }); }
export function textarea(attrs) { return h('textarea', { rows: 4, ...attrs }); }
export function select(options, attrs) {
  return h('select', attrs || {}, options.map((o) => {
    const [value, text] = Array.isArray(o) ? o : [o, o];
    return h('option', { value, text });
  }));
}

// form makes a form with fields and a submit button; onSubmit(form) may
// throw an ApiError, which is shown next to its field.
export function form(fields, submitText, onSubmit) {
  const status = h('div', { class: 'form-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary', text: submitText });
  const f = h('form', { class: 'form', novalidate: true }, fields, status, h('div', { class: 'form-actions' }, submit));
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(f);
    submit.disabled = true;
    try {
      await onSubmit(f);
    } catch (err) {
      showError(f, err);
    } finally {
      submit.disabled = false;
    }
  });
  return f;
}

// clearErrors hides every message of a form.
export function clearErrors(f) {
  for (const p of f.querySelectorAll('.field-error, .form-error')) { p.hidden = true; clear(p); }
  for (const d of f.querySelectorAll('.field.invalid')) d.classList.remove('invalid');
}

// showError puts an error's message and hint next to the field it names,
// or at the form's end when no field of the form answers for it.
export function showError(f, err) {
  const fieldPath = (err && err.field) || '';
  let target = null;
  let best = -1;
  for (const d of f.querySelectorAll('.field[data-field]')) {
    const names = d.dataset.field.split(' ').filter(Boolean);
    for (const n of names) {
      if ((fieldPath === n || fieldPath.startsWith(n + '.') || fieldPath.startsWith(n + '[')) && n.length > best) {
        target = d; best = n.length;
      }
    }
  }
  const box = target ? target.querySelector('.field-error') : f.querySelector('.form-error');
  const parts = [];
  if (!target && fieldPath) parts.push(h('code', { text: fieldPath }), ': ');
  parts.push(errorText(err));
  if (err && err.hint) parts.push(h('span', { class: 'hint', text: ' — ' + err.hint }));
  replace(box, ...parts);
  box.hidden = false;
  if (target) {
    target.classList.add('invalid');
    const c = target.querySelector('input, select, textarea');
    if (c) c.focus();
  }
}

// errorText is what an error says.
export function errorText(err) {
  if (!err) return 'failed';
  return err.message || String(err);
}

// lines splits a textarea's value into trimmed non-empty lines.
export function lines(v) {
  return v.split('\n').map((s) => s.trim()).filter(Boolean);
}

// --- actions -------------------------------------------------------------

// confirm asks a yes/no question in a modal dialog.
export function confirm(question, yes = 'Confirm', danger = true) {
  return new Promise((resolve) => {
    const d = h('dialog', { class: 'confirm' },
      h('form', { method: 'dialog' },
        h('p', { text: question }),
        h('div', { class: 'form-actions' },
          h('button', { value: 'cancel', text: 'Cancel' }),
          h('button', { value: 'ok', class: danger ? 'danger' : 'primary', text: yes }))));
    document.body.append(d);
    d.addEventListener('close', () => { resolve(d.returnValue === 'ok'); d.remove(); });
    d.showModal();
  });
}

// button runs fn on click: disabled meanwhile, with an optional
// confirmation first; errors and the success message go to ctx.toast.
export function button(ctx, label, fn, opts = {}) {
  const danger = opts.danger || (opts.confirm && opts.danger !== false);
  const b = h('button', { type: 'button', class: [opts.class, danger ? 'danger' : ''], text: label, title: opts.title });
  b.addEventListener('click', async () => {
    if (opts.confirm && !(await confirm(opts.confirm, label, opts.danger !== false))) return;
    b.disabled = true;
    try {
      await fn();
      if (opts.done) ctx.toast(opts.done, 'ok');
    } catch (err) {
      if (ctx.toastError) ctx.toastError(err);
      else ctx.toast(errorText(err) + (err && err.hint ? ' (' + err.hint + ')' : ''), 'error');
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

// teaching marks an admin-only teaching action: the stylesheet labels it
// "Teaching:" and sets it apart.
export function teaching(btn) {
  btn.classList.add('teaching');
  btn.setAttribute('aria-label', 'Teaching: ' + btn.textContent);
  return btn;
}

// secret shows a value that the API gives only once, with copy and
// download buttons.
export function secret(ctx, title, value, filename, note) {
  const pre = h('pre', { class: 'secret', text: value });
  const copy = h('button', { type: 'button', text: 'Copy' });
  copy.addEventListener('click', async () => {
    try { await navigator.clipboard.writeText(value); ctx.toast('Copied'); } catch { selectText(pre); }
  });
  const blob = new Blob([value], { type: 'application/octet-stream' });
  const url = URL.createObjectURL(blob);
  const dl = h('a', { class: 'button', href: url, download: filename, text: 'Download' });
  return h('div', { class: 'secret-box', role: 'alert' },
    h('h3', { text: title }),
    h('p', { class: 'warning', text: note || 'It is shown only once: keep it now.' }),
    pre, h('div', { class: 'form-actions' }, copy, dl));
}

function selectText(el) {
  const r = document.createRange();
  r.selectNodeContents(el);
  const s = window.getSelection();
  s.removeAllRanges();
  s.addRange(r);
}

// update reads the object at path, lets change edit it, and writes it
// back with the version read (PUT); a conflict, someone else having
// written it meanwhile, starts over, up to 10 times, as the CLI does.
export async function update(path, change) {
  for (let i = 0; i < 10; i++) {
    const o = await api.get(path);
    change(o);
    try {
      return await api.send('PUT', path, o);
    } catch (err) {
      if (err.code !== 'Conflict') throw err;
    }
  }
  throw new api.ApiError(409, 'Conflict', 'the object changes too fast', '', 'try again');
}

// idempotencyKey returns a key that makes retries of one create safe: a
// hash of the project and the request body, as the CLI does.
export async function idempotencyKey(project, body) {
  const data = new TextEncoder().encode(project + '\u0000' + JSON.stringify(body));
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', data));
  return 'ouro-console-' + [...d].map((b) => b.toString(16).padStart(2, '0')).join('');
}

// --- charts ----------------------------------------------------------------

const SVG = 'http://www.w3.org/2000/svg';

function s(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

// chart draws time series as an SVG line chart. series: [{label, class,
// points: [[timeMillis, value], ...]}]; opts: yMax (default the largest
// value), unit, target (a dashed horizontal line), span (millis shown,
// ending now).
export function chart(series, opts = {}) {
  const W = 600, H = 180, L = 40, B = 20, T = 10, R = 10;
  const now = Date.now();
  const span = opts.span || 10 * 60 * 1000;
  let yMax = opts.yMax || 0;
  for (const se of series) for (const [, v] of se.points) yMax = Math.max(yMax, v);
  if (opts.target) yMax = Math.max(yMax, opts.target);
  yMax = yMax || 1;
  const x = (t) => L + ((t - (now - span)) / span) * (W - L - R);
  const y = (v) => T + (1 - v / yMax) * (H - T - B);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': opts.label || 'chart' });
  for (const f of [0, 0.5, 1]) {
    const v = yMax * f;
    svg.append(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
    const t = s('text', { x: L - 4, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' });
    t.textContent = (Number.isInteger(v) ? v : v.toFixed(1)) + (opts.unit || '');
    svg.append(t);
  }
  const tl = s('text', { x: L, y: H - 4, class: 'axis' });
  tl.textContent = '-' + Math.round(span / 60000) + ' min';
  const tr = s('text', { x: W - R, y: H - 4, class: 'axis', 'text-anchor': 'end' });
  tr.textContent = 'now';
  svg.append(tl, tr);
  if (opts.target) {
    svg.append(s('line', { x1: L, x2: W - R, y1: y(opts.target), y2: y(opts.target), class: 'target' }));
  }
  for (const se of series) {
    const pts = se.points.filter(([t]) => t >= now - span);
    if (!pts.length) continue;
    const d = pts.map(([t, v], i) => (i ? 'L' : 'M') + x(t).toFixed(1) + ' ' + y(v).toFixed(1)).join(' ');
    svg.append(s('path', { d, class: ['series', se.class].filter(Boolean).join(' ') }));
    const [lt, lv] = pts[pts.length - 1];
    svg.append(s('circle', { cx: x(lt), cy: y(lv), r: 3, class: ['series-dot', se.class].filter(Boolean).join(' ') }));
  }
  const legend = h('ul', { class: 'legend' }, series.map((se) => h('li', { class: se.class, text: se.label })),
    opts.target ? h('li', { class: 'target', text: 'target ' + opts.target + (opts.unit || '') }) : null);
  return h('figure', { class: 'chart-box' }, svg, legend);
}

// samples keeps recent points of a series per key across page visits
// (the API holds only the latest sample; the console remembers what it saw).
const sampleStore = new Map();
export function remember(key, t, v, keep = 60 * 60 * 1000) {
  let pts = sampleStore.get(key);
  if (!pts) { pts = []; sampleStore.set(key, pts); }
  if (!pts.length || pts[pts.length - 1][0] !== t) pts.push([t, v]);
  while (pts.length && pts[0][0] < Date.now() - keep) pts.shift();
  return pts;
}
export function recall(key) { return sampleStore.get(key) || []; }
