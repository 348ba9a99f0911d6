// The events timeline beside the map: a watch of the project's events
// (or, with all, of every project's, for cluster admins)
// (scheduling, starts, crashes, host loss, rollouts, scaling), newest
// first, at most `limit` of them. Events are named by the time they were
// made, so name order is time order. Like the map it redraws at most once
// per animation frame, touching only the rows that changed.
import { h, ago } from './dom.js';
import { watch, projectPath } from './api.js';

const PAGES = {
  Instance: 'instances',
  InstanceGroup: 'groups',
  Host: 'hosts',
  Network: 'networks',
  LoadBalancer: 'loadbalancers',
  Stack: 'stacks',
  Image: 'images',
};

function objectHref(ref, all) {
  if (!ref || !ref.name || !PAGES[ref.kind]) return null;
  const href = `#/${PAGES[ref.kind]}/${encodeURIComponent(ref.name)}`;
  return all && ref.project ? `${href}?project=${encodeURIComponent(ref.project)}` : href;
}

function sortKey(ev) {
  // Time first (repeats counted into an old event move it up), then name.
  return `${ev.time || ''} ${ev.metadata.name}`;
}

/**
 * timeline returns {el, begin, stop}: an element listing the events of
 * project as they happen, the function that starts its watch (at once
 * unless deferred: the map starts it once its own lists are drawn, so
 * that the events list does not compete with them) and the one that
 * stops it.
 */
export function timeline(project, { limit = 200, all = false, deferred = false } = {}) {
  const events = new Map(); // name → Event
  const rows = new Map(); // name → {li, sig}
  const dirty = new Set();
  let frame = 0;
  let synced = false;

  const list = h('ol', { class: 'events', 'aria-label': 'Events, newest first' });
  const note = h('p', { class: 'muted' }, 'Waiting for events…');
  const el = h('aside', { class: 'timeline', 'aria-label': 'Events' }, h('h2', {}, 'Events'), note, list);

  function render(e) {
    const href = objectHref(e.object, all);
    const where = all && e.object && e.object.project ? `${e.object.project}/` : '';
    const obj = e.object ? `${(e.object.kind || '').toLowerCase()} ${where}${e.object.name}` : '';
    return h('li', { class: `ev ev-${e.type || 'Normal'}` },
      h('div', { class: 'ev-head' },
        h('span', { class: 'ev-reason' }, e.reason || e.type || 'Event'),
        href ? h('a', { class: 'ev-object', href }, obj) : h('span', { class: 'ev-object' }, obj),
        e.count > 1 ? h('span', { class: 'ev-count' }, `×${e.count}`) : null,
        h('time', { class: 'ev-time', datetime: e.time || '', title: e.time ? new Date(e.time).toLocaleString() : '' }, e.time ? ago(e.time) : '')),
      h('div', { class: 'ev-message' }, e.message || ''),
      e.source ? h('div', { class: 'ev-source muted' }, e.source) : null);
  }

  function flush() {
    frame = 0;
    // Keep the newest `limit` events; forget the rest.
    const all = [...events.values()].sort((a, b) => (sortKey(a) < sortKey(b) ? 1 : -1));
    for (const e of all.slice(limit)) {
      events.delete(e.metadata.name);
      dirty.add(e.metadata.name);
    }
    const keep = all.slice(0, limit);
    for (const name of dirty) {
      const row = rows.get(name);
      const e = events.get(name);
      if (!e) {
        if (row) row.li.remove();
        rows.delete(name);
        continue;
      }
      const sig = `${e.count}|${e.time}|${e.message}|${e.reason}`;
      if (row && row.sig === sig) continue;
      const li = render(e);
      if (row) row.li.replaceWith(li);
      rows.set(name, { li, sig });
    }
    dirty.clear();
    // Put rows in order, moving only those out of place.
    let prev = null;
    for (const e of keep) {
      const li = rows.get(e.metadata.name).li;
      const want = prev ? prev.nextSibling : list.firstChild;
      if (li !== want) list.insertBefore(li, want);
      prev = li;
    }
    // Refresh the "ago" of the visible rows.
    const now = Date.now();
    for (const t of list.querySelectorAll('time')) {
      const v = t.getAttribute('datetime');
      if (v) t.textContent = ago(v, now);
    }
    note.hidden = events.size > 0;
    if (synced && !events.size) note.textContent = 'No events in the last hour.';
  }

  function schedule() {
    if (!frame && synced) frame = requestAnimationFrame(flush);
  }

  let stopWatch = null;
  const begin = () => {
    if (stopWatch || stopped) return;
    stopWatch = watch(all ? '/v1/events' : projectPath(project, 'events'), onEvent, onError);
  };
  let stopped = false;

  function onEvent(ev) {
    switch (ev.type) {
      case 'RESET':
        synced = false;
        for (const name of events.keys()) dirty.add(name);
        events.clear();
        return;
      case 'SYNCED':
        synced = true;
        break;
      case 'ADDED':
      case 'MODIFIED':
        events.set(ev.object.metadata.name, ev.object);
        dirty.add(ev.object.metadata.name);
        break;
      case 'DELETED':
        events.delete(ev.object.metadata.name);
        dirty.add(ev.object.metadata.name);
        break;
      default:
        return;
    }
    schedule();
  }

  function onError(err) {
    note.hidden = false;
    note.textContent = err.status === 0 ? 'Reconnecting…' : `Events: ${err.message}`;
  }
  if (!deferred) begin();

  // The relative times age: refresh them every 15 s (only the text of
  // the visible rows; no request is made).
  const tick = setInterval(() => {
    if (!frame && synced) frame = requestAnimationFrame(flush);
  }, 15000);

  return {
    el,
    begin,
    stop() {
      stopped = true;
      if (stopWatch) stopWatch();
      clearInterval(tick);
      if (frame) cancelAnimationFrame(frame);
    },
  };
}
