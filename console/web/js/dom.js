// Small DOM helpers shared by the console's modules. No framework: pages
// build elements with h() and update them in place.

/**
 * h builds an element: h('a', {href: '#/map', class: 'x', onclick: fn}, 'text', child).
 * Attributes starting with "on" become listeners; null/false attributes are skipped;
 * children may be strings, nodes, arrays or null.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
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
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** clear removes every child of el and returns el. */
export function clear(el) {
  el.replaceChildren();
  return el;
}

/** ago renders a time as "5 s ago", "3 min ago", ... */
export function ago(t, now = Date.now()) {
  const ms = typeof t === 'number' ? t : Date.parse(t);
  if (!ms) return '';
  let s = Math.round((now - ms) / 1000);
  const future = s < 0;
  s = Math.abs(s);
  let out;
  if (s < 60) out = `${s} s`;
  else if (s < 3600) out = `${Math.floor(s / 60)} min`;
  else if (s < 86400) out = `${Math.floor(s / 3600)} h`;
  else out = `${Math.floor(s / 86400)} d`;
  return future ? `in ${out}` : `${out} ago`;
}

/** mib renders a size in MiB as "512 MiB" or "4.0 GiB". */
export function mib(n) {
  if (n >= 1024) return `${(n / 1024).toFixed(1)} GiB`;
  return `${n} MiB`;
}
