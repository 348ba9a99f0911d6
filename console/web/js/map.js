// The live map (#/map, the home page): every host a panel with its capacity
// bars and phase, the project's instances as tiles on the host they are
// placed on, grouped by instance group, coloured by phase and health. It is
// kept current only by the API's watch streams of hosts and of the
// project's instances (api.watch), never by polling.
//
// It is built for 1,000 hosts and 10,000 instances: watch events only
// update the model and mark keys dirty; one requestAnimationFrame applies
// them, touching only the panels and tiles (keyed DOM nodes) whose
// rendering changed. Its lists ask for the map view (?view=map,
// docs/api.md): only the fields drawn here, a tenth of the whole objects.
import { register, h } from './app.js';
import { watch, projectPath } from './api.js';
import { timeline } from './events.js';
import { mib } from './dom.js';

const LABEL_GROUP = 'ouro.dev/group';
const LABEL_REVISION = 'ouro.dev/revision';
const UNPLACED = ''; // the panel of instances not (yet) on a host
// Tile work per animation frame while a big batch is drawn: the first
// frame is short, so that the top of the screen paints early; the next
// ones are longer, as each frame also pays for style and layout.
const FIRST_FRAME_BUDGET_MS = 30;
const FRAME_BUDGET_MS = 100;
const PHASES = ['Running', 'Pending', 'Scheduled', 'Provisioning', 'Starting', 'Stopping', 'Stopped', 'Terminating', 'Terminated', 'Failed'];

// TILE is cloned for every new tile (cheaper than building each).
const TILE = h('a', { class: 'tile' });

function condition(obj, type) {
  const cs = (obj.status && obj.status.conditions) || [];
  return cs.find((c) => c.type === type);
}

function hostLost(host) {
  return !!host && host.status && host.status.phase === 'NotReady';
}

/** revisionOf returns an instance's group revision (a number) or null. */
function revisionOf(inst) {
  const v = inst.metadata.labels && inst.metadata.labels[LABEL_REVISION];
  const n = Number.parseInt(v, 10);
  return Number.isFinite(n) ? n : null;
}

function groupOf(inst) {
  return (inst.metadata.labels && inst.metadata.labels[LABEL_GROUP]) || '';
}

/** instanceHref links an instance's page, naming its project when the map shows them all. */
function instanceHref(inst, all) {
  const href = `#/instances/${encodeURIComponent(inst.metadata.name)}`;
  return all ? `${href}?project=${encodeURIComponent(inst.metadata.project || '')}` : href;
}

function timeText(t) {
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString();
}

/**
 * MapView holds the model (hosts and instances by name), the keyed DOM
 * nodes (host panels, group boxes, tiles) and the dirty sets that the next
 * animation frame applies.
 */
class MapView {
  constructor(root, project, { all = false, canAll = false, onAll = () => {}, onReady = () => {} } = {}) {
    this.root = root;
    this.onReady = onReady; // called once, when every listed tile is drawn
    this.project = project;
    this.all = all; // every project's instances (cluster admins)
    this.canAll = canAll;
    this.onAll = onAll;
    this.hosts = new Map(); // name → Host
    this.insts = new Map(); // name → Instance
    this.panels = new Map(); // host name → {el, nameEl, phaseEl, bars, groupsEl, groups: Map, count}
    this.tiles = new Map(); // instance name → {el, host, group, sig, sortKey}
    this.groupRevs = new Map(); // group → Map(revision → count)
    this.groupMembers = new Map(); // group → Set(instance names)
    this.dirtyHosts = new Set();
    this.backingOff = new Set(); // crash-looping instances counting down to a retry
    this.clock = setInterval(() => this.tick(), 1000);
    this.dirtyTiles = new Set();
    // New panels and group boxes are filled while detached and attached at
    // the end of the flush: one insertion each, not one per tile.
    this.born = [];
    this.reorder = new Set(); // containers whose children need sorting
    this.reorderHosts = false;
    this.frame = 0;
    this.synced = { hosts: false, instances: false };
    this.hostsReadable = true;
    this.build();
  }

  build() {
    this.summary = h('span', { class: 'map-summary' });
    this.live = h('span', { class: 'map-live stale' }, 'connecting');
    const onlyUsed = h('input', { type: 'checkbox', id: 'map-only-used', checked: localStorage.getItem('ouro.map.onlyUsed') === '1' });
    onlyUsed.addEventListener('change', () => {
      localStorage.setItem('ouro.map.onlyUsed', onlyUsed.checked ? '1' : '0');
      this.hostsEl.classList.toggle('only-used', onlyUsed.checked);
    });
    const legend = h('ul', { class: 'legend', 'aria-label': 'Legend' },
      ['Running', 'Pending', 'Starting', 'Stopped', 'Terminating', 'Failed'].map((p) =>
        h('li', {}, h('span', { class: `swatch phase-${p}` }), p)),
      h('li', {}, h('span', { class: 'swatch health-down' }), 'unhealthy'),
      h('li', {}, h('span', { class: 'swatch host-lost' }), 'host lost'),
      h('li', {}, '↻n crash loop (restarts)'),
      h('li', {}, 'r3 revision, during a rollout'));
    let allBox = null;
    if (this.canAll) {
      const all = h('input', { type: 'checkbox', id: 'map-all', checked: this.all });
      all.addEventListener('change', () => this.onAll(all.checked));
      allBox = h('label', { class: 'map-filter', for: 'map-all' }, all, ' all projects');
    }
    this.hostsEl = h('div', { class: 'hosts', role: 'list', 'aria-label': 'Hosts' });
    this.hostsEl.classList.toggle('only-used', onlyUsed.checked);
    this.root.append(
      h('div', { class: 'map-head' },
        h('h1', {}, 'Map'),
        this.summary,
        this.live,
        h('label', { class: 'map-filter', for: 'map-only-used' }, onlyUsed, this.all ? ' only hosts with instances' : ' only hosts with instances of this project'),
        allBox),
      legend,
      this.hostsEl);
  }

  // ---- model updates (watch events) ----

  // key names an instance on the map: its name, or project/name when the
  // map shows every project.
  key(inst) {
    return this.all ? `${inst.metadata.project || ''}/${inst.metadata.name}` : inst.metadata.name;
  }

  // groupKey names an instance's group box ('' outside groups).
  groupKey(inst) {
    const g = groupOf(inst);
    return g && this.all ? `${inst.metadata.project || ''}/${g}` : g;
  }

  hostEvent(ev) {
    switch (ev.type) {
      case 'RESET':
        this.synced.hosts = false;
        for (const name of this.hosts.keys()) this.dirtyHosts.add(name);
        this.hosts.clear();
        return;
      case 'SYNCED':
        this.synced.hosts = true;
        if (!this.readyAt) performance.mark('ouro-map-hosts-listed');
        break;
      case 'ADDED':
      case 'MODIFIED':
        this.hosts.set(ev.object.metadata.name, ev.object);
        this.dirtyHosts.add(ev.object.metadata.name);
        break;
      case 'DELETED':
        this.hosts.delete(ev.object.metadata.name);
        this.dirtyHosts.add(ev.object.metadata.name);
        break;
      default:
        return;
    }
    if (this.synced.hosts || !this.hostsReadable) this.schedule();
  }

  instanceEvent(ev) {
    switch (ev.type) {
      case 'RESET':
        this.synced.instances = false;
        for (const name of this.insts.keys()) this.dirtyTiles.add(name);
        for (const name of [...this.insts.keys()]) this.forget(name);
        return;
      case 'SYNCED':
        this.synced.instances = true;
        if (!this.readyAt) performance.mark('ouro-map-instances-listed');
        break;
      case 'ADDED':
      case 'MODIFIED':
        this.remember(ev.object);
        break;
      case 'DELETED':
        this.forget(this.key(ev.object));
        break;
      default:
        return;
    }
    if (this.synced.instances) this.schedule();
  }

  remember(inst) {
    const name = this.key(inst);
    const old = this.insts.get(name);
    if (old) this.untrackRevision(old);
    this.insts.set(name, inst);
    this.trackRevision(inst);
    this.dirtyTiles.add(name);
  }

  forget(name) {
    const old = this.insts.get(name);
    if (!old) return;
    this.untrackRevision(old);
    this.insts.delete(name);
    this.dirtyTiles.add(name);
  }

  // The revisions of a group's members decide which tiles show a revision
  // (only while two or more coexist: a rollout) and which is the new one.
  trackRevision(inst) {
    const g = this.groupKey(inst);
    if (!g) return;
    let members = this.groupMembers.get(g);
    if (!members) this.groupMembers.set(g, (members = new Set()));
    members.add(this.key(inst));
    const rev = revisionOf(inst);
    if (rev === null) return;
    let revs = this.groupRevs.get(g);
    if (!revs) this.groupRevs.set(g, (revs = new Map()));
    const n = revs.get(rev) || 0;
    revs.set(rev, n + 1);
    if (n === 0) this.groupDirty(g);
  }

  untrackRevision(inst) {
    const g = this.groupKey(inst);
    if (!g) return;
    const members = this.groupMembers.get(g);
    if (members) {
      members.delete(this.key(inst));
      if (!members.size) this.groupMembers.delete(g);
    }
    const rev = revisionOf(inst);
    const revs = this.groupRevs.get(g);
    if (rev === null || !revs) return;
    const n = (revs.get(rev) || 1) - 1;
    if (n > 0) {
      revs.set(rev, n);
      return;
    }
    revs.delete(rev);
    if (!revs.size) this.groupRevs.delete(g);
    this.groupDirty(g);
  }

  groupDirty(g) {
    for (const name of this.groupMembers.get(g) || []) this.dirtyTiles.add(name);
  }

  // ---- rendering ----

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  stop() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    clearInterval(this.clock);
  }

  // tick redraws the back-off countdowns.
  tick() {
    if (!this.backingOff.size) return;
    for (const name of this.backingOff) this.dirtyTiles.add(name);
    this.backingOff.clear();
    this.schedule();
  }

  flush() {
    this.frame = 0;
    const t0 = performance.now();
    // Many tiles at once (the first list, a re-list): take them host by
    // host in the order of the panels, so the first frames fill the top of
    // the screen, and by name within a host, so that their boxes are born
    // sorted. Stop after FRAME_BUDGET_MS and go on in the next frame: the
    // page stays responsive and paints early.
    // The batch is sorted once, on its first frame: a Set keeps the order
    // for the next frames (keys dirtied meanwhile come last).
    const names = this.dirtyTiles;
    if (names.size > 64 && !this.batching) {
      const keyed = [];
      for (const name of names) {
        const inst = this.insts.get(name);
        keyed.push([`${(inst && inst.status && inst.status.host) || ''}\u0000${name}`, name]);
      }
      keyed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      this.dirtyTiles = new Set(keyed.map((k) => k[1]));
    }
    const budget = this.firstPaintAt ? FRAME_BUDGET_MS : FIRST_FRAME_BUDGET_MS;
    let n = 0;
    for (const name of this.dirtyTiles) {
      this.renderTile(name);
      this.dirtyTiles.delete(name);
      if (++n % 200 === 0 && performance.now() - t0 > budget) break;
    }
    // Host panels too, in list order (by name: the top of the screen
    // first), within the same budget.
    let m = 0;
    for (const name of this.dirtyHosts) {
      this.renderHost(name);
      this.dirtyHosts.delete(name);
      if (++m % 50 === 0 && performance.now() - t0 > budget) break;
    }
    for (const attach of this.born) attach();
    this.born = [];
    for (const box of this.reorder) sortChildren(box);
    this.reorder.clear();
    if (this.reorderHosts) sortChildren(this.hostsEl);
    this.reorderHosts = false;
    this.renderSummary();
    this.lastFlushMs = performance.now() - t0;
    const listed = this.synced.instances && (this.synced.hosts || !this.hostsReadable);
    if (listed && !this.firstPaintAt) {
      // The first frame with hosts and tiles; benchmarks read these marks.
      this.firstPaintAt = performance.now();
      performance.mark('ouro-map-first-paint');
    }
    this.batching = this.dirtyTiles.size > 0;
    if (this.batching || this.dirtyHosts.size) {
      this.schedule();
    } else if (listed && !this.readyAt) {
      // Every listed tile is on screen.
      this.readyAt = performance.now();
      performance.mark('ouro-map-ready');
      this.onReady();
    }
  }

  panel(hostName) {
    let p = this.panels.get(hostName);
    if (p) return p;
    const unplaced = hostName === UNPLACED;
    const nameEl = unplaced
      ? h('span', { class: 'host-name' }, 'Not placed')
      : h('a', { class: 'host-name', href: `#/hosts/${encodeURIComponent(hostName)}` }, hostName);
    const phaseEl = h('span', { class: 'host-phase' });
    const cpu = bar('CPU');
    const mem = bar('Mem');
    const groupsEl = h('div', { class: 'groups' });
    const el = h('section', { class: unplaced ? 'host pending-panel empty' : 'host empty', role: 'listitem', 'aria-label': unplaced ? 'Not placed' : `Host ${hostName}` },
      h('div', { class: 'host-head' }, nameEl, phaseEl),
      unplaced ? null : h('div', { class: 'bars' }, cpu.el, mem.el),
      groupsEl);
    // Sort: the unplaced panel first, then hosts by name.
    el.sortKey = unplaced ? '' : ` ${hostName}`;
    p = { el, phaseEl, cpu, mem, groupsEl, groups: new Map(), count: 0, sig: '' };
    this.panels.set(hostName, p);
    this.born.push(() => {
      if (this.panels.get(hostName) === p) this.hostsEl.append(el);
    });
    this.reorderHosts = true;
    this.dirtyHosts.add(hostName); // render its head on this flush
    return p;
  }

  renderHost(name) {
    const host = this.hosts.get(name);
    let p = this.panels.get(name);
    if (!host && (!p || p.count === 0)) {
      if (p) {
        p.el.remove();
        this.panels.delete(name);
      }
      return;
    }
    if (!p) p = this.panel(name);
    if (name === UNPLACED) {
      p.phaseEl.textContent = `${p.count} waiting`;
      return;
    }
    const st = (host && host.status) || {};
    const lost = hostLost(host);
    const cordoned = !!(host && host.spec && host.spec.unschedulable);
    const cap = st.capacity || {};
    const alloc = st.allocated || {};
    const use = st.usage || {};
    const phase = host ? (lost ? 'host lost' : st.phase || 'Unknown') : this.hostsReadable ? 'unknown host' : '';
    const sig = [phase, cordoned, cap.vcpus, alloc.vcpus, cap.memoryMiB, alloc.memoryMiB, use.cpuMillicores, use.memoryMiB].join('|');
    if (sig === p.sig) return;
    p.sig = sig;
    p.el.classList.toggle('host-lost', lost);
    p.el.classList.toggle('host-cordoned', cordoned);
    p.phaseEl.textContent = phase;
    setBar(p.cpu, alloc.vcpus || 0, cap.vcpus || 0, use.cpuMillicores != null ? use.cpuMillicores / 1000 : null, (a, c) => `${a}/${c} vCPU`);
    setBar(p.mem, alloc.memoryMiB || 0, cap.memoryMiB || 0, use.memoryMiB != null ? use.memoryMiB : null, (a, c) => `${mib(a)}/${mib(c)}`);
    p.el.setAttribute('aria-label', `Host ${name}, ${phase}${cordoned ? ', cordoned' : ''}`);
  }

  groupBox(p, hostName, group, label) {
    let g = p.groups.get(group);
    if (g) return g;
    const tilesEl = h('div', { class: 'tiles' });
    const el = h('div', { class: 'group' }, group ? h('div', { class: 'group-name' }, label) : null, tilesEl);
    // Sort: groups by name, instances outside groups last.
    el.sortKey = group ? ` ${group}` : '~';
    g = { el, tilesEl, count: 0 };
    p.groups.set(group, g);
    this.born.push(() => {
      if (p.groups.get(group) === g) p.groupsEl.append(el);
    });
    this.reorder.add(p.groupsEl);
    return g;
  }

  dropTile(t) {
    t.el.remove();
    const p = this.panels.get(t.host);
    if (!p) return;
    const g = p.groups.get(t.group);
    if (g && --g.count === 0) {
      g.el.remove();
      p.groups.delete(t.group);
    }
    if (--p.count === 0) p.el.classList.add('empty');
    this.dirtyHosts.add(t.host);
  }

  renderTile(name) {
    const inst = this.insts.get(name);
    let t = this.tiles.get(name);
    if (!inst) {
      if (t) {
        this.dropTile(t);
        this.tiles.delete(name);
      }
      return;
    }
    const host = (inst.status && inst.status.host) || UNPLACED;
    const group = this.groupKey(inst);
    if (t && (t.host !== host || t.group !== group)) {
      this.dropTile(t);
      this.tiles.delete(name);
      t = null;
    }
    const view = this.tileView(inst, group, name);
    if (!t) {
      const el = TILE.cloneNode(false);
      el.setAttribute('href', instanceHref(inst, this.all));
      t = { el, host, group, sig: '', sortKey: '' };
      this.tiles.set(name, t);
      const p = this.panel(host);
      if (p.count++ === 0) p.el.classList.remove('empty');
      this.dirtyHosts.add(host);
      const label = this.all && group ? `${groupOf(inst)} · ${inst.metadata.project}` : group;
      const g = this.groupBox(p, host, group, label);
      g.count++;
      g.tilesEl.append(el);
    }
    if (view.sig === t.sig) return;
    t.sig = view.sig;
    t.el.className = view.className;
    t.el.textContent = view.text;
    t.el.title = view.title; // also the link's accessible name
    if (view.sortKey !== t.sortKey) {
      const appended = t.sortKey === '';
      t.sortKey = view.sortKey;
      t.el.sortKey = view.sortKey;
      // A tile appended after one that sorts later puts its box out of order.
      const prev = appended ? t.el.previousElementSibling : null;
      if (!appended || (prev && prev.sortKey > view.sortKey)) this.reorder.add(t.el.parentNode);
    }
  }

  /** tileView computes what a tile shows; sig changes whenever any of it does. */
  tileView(inst, group, key) {
    const st = inst.status || {};
    const phase = st.phase || 'Pending';
    const classes = ['tile', `phase-${phase}`];
    const facts = [this.all ? `${inst.metadata.project}/${inst.metadata.name}` : inst.metadata.name, phase];
    let text = '';
    const healthy = condition(inst, 'Healthy');
    if (healthy && !healthy.status) {
      classes.push('health-down');
      facts.push(`unhealthy${healthy.reason ? ` (${healthy.reason})` : ''}`);
    }
    if (st.reason) facts.push(st.reason);
    if (st.reason === 'HostLost') classes.push('host-lost');
    if (st.reason === 'CrashLoop' || st.reason === 'ImageFetchFailed') {
      classes.push('crashloop');
      text = `↻${st.restartCount || 0}`;
      const wait = st.nextRestartAt ? Math.ceil((Date.parse(st.nextRestartAt) - Date.now()) / 1000) : 0;
      if (wait > 0) {
        // The back-off counts down on the tile (a local clock, no request).
        text += ` ${wait}s`;
        this.backingOff.add(key);
      }
      if (st.nextRestartAt) facts.push(`back-off: next retry at ${timeText(st.nextRestartAt)}`);
    }
    if (st.restartCount) facts.push(`${st.restartCount} restarts`);
    if (inst.metadata.deletionTimestamp) {
      classes.push('deleting');
      facts.push('being deleted');
    }
    const rev = revisionOf(inst);
    const revs = group ? this.groupRevs.get(group) : null;
    let sortKey = key;
    if (rev !== null && revs && revs.size > 1) {
      const newest = Math.max(...revs.keys());
      classes.push(rev === newest ? 'rev-new' : 'rev-old');
      if (!text) text = `r${rev}`;
      facts.push(`revision ${rev}${rev === newest ? ' (new)' : ' (old)'}`);
      sortKey = `${String(rev).padStart(8, '0')} ${key}`;
    }
    if (st.message) facts.push(st.message);
    const className = classes.join(' ');
    const title = facts.join(' · ');
    return { className, text, title, sortKey, sig: `${className}\n${text}\n${title}\n${sortKey}` };
  }

  renderSummary() {
    let lost = 0;
    for (const host of this.hosts.values()) if (hostLost(host)) lost++;
    const byPhase = new Map();
    for (const inst of this.insts.values()) {
      const ph = (inst.status && inst.status.phase) || 'Pending';
      byPhase.set(ph, (byPhase.get(ph) || 0) + 1);
    }
    const parts = PHASES.filter((p) => byPhase.get(p)).map((p) => `${byPhase.get(p)} ${p}`);
    const hostText = this.hostsReadable ? `${this.hosts.size} hosts${lost ? ` (${lost} lost)` : ''}` : `${this.panels.size} hosts`;
    this.summary.textContent = `${hostText} · ${this.insts.size} instances${parts.length ? `: ${parts.join(', ')}` : ''}`;
  }

  setLive(ok, text) {
    this.live.className = `map-live ${ok ? 'live' : 'stale'}`;
    this.live.textContent = text;
  }
}

function bar(label) {
  const fill = h('span', { class: 'bar-fill' });
  const useEl = h('span', { class: 'bar-use', hidden: true });
  const value = h('span', { class: 'bar-value' });
  const track = h('span', { class: 'bar-track', role: 'meter', 'aria-label': label, 'aria-valuemin': 0 }, fill, useEl);
  return { el: h('div', { class: 'bar' }, h('span', {}, label), track, value), fill, useEl, value, track };
}

function setBar(b, allocated, capacity, used, fmt) {
  const frac = capacity > 0 ? Math.min(1, allocated / capacity) : 0;
  b.fill.style.width = `${(frac * 100).toFixed(1)}%`;
  b.fill.classList.toggle('high', frac >= 0.8 && frac < 1);
  b.fill.classList.toggle('full', frac >= 1);
  b.value.textContent = capacity > 0 ? fmt(allocated, capacity) : '–';
  b.track.setAttribute('aria-valuemax', String(capacity));
  b.track.setAttribute('aria-valuenow', String(allocated));
  b.track.setAttribute('aria-valuetext', capacity > 0 ? `${fmt(allocated, capacity)} allocated` : 'no capacity reported');
  if (used !== null && capacity > 0) {
    b.useEl.hidden = false;
    b.useEl.style.width = `${(Math.min(1, used / capacity) * 100).toFixed(1)}%`;
  } else {
    b.useEl.hidden = true;
  }
}

/** sortChildren orders el's children by their sortKey, moving only if out of order. */
function sortChildren(el) {
  if (!el) return;
  const kids = [...el.children];
  let sorted = true;
  for (let i = 1; i < kids.length; i++) {
    if (kids[i - 1].sortKey > kids[i].sortKey) {
      sorted = false;
      break;
    }
  }
  if (sorted) return;
  kids.sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
  el.append(...kids);
}

register('map', {
  title: 'Map',
  render(el, params, ctx) {
    const layout = h('div', { class: 'map-layout' });
    const mapEl = h('div', { class: 'map' });
    el.append(layout);
    layout.append(mapEl);
    if (!ctx.project) {
      mapEl.append(h('h1', {}, 'Map'), h('p', { class: 'muted' }, 'You have no role in any project yet. A project admin can grant you one.'));
      return undefined;
    }
    const all = !!ctx.me.clusterAdmin && params.query.get('all') === '1';
    // The events timeline lists after the map has drawn its lists (or
    // after 3 s, whatever happens first), so that its list does not
    // compete with the map's for the server and the browser.
    const tl = timeline(ctx.project, { limit: 200, all, deferred: true });
    const later = setTimeout(tl.begin, 3000);
    const view = new MapView(mapEl, ctx.project, {
      all,
      canAll: !!ctx.me.clusterAdmin,
      onAll: (on) => ctx.navigate(on ? '#/map?all=1' : '#/map'),
      onReady: () => {
        clearTimeout(later);
        tl.begin();
      },
    });
    const status = { hosts: 'connecting', instances: 'connecting' };
    const showLive = () => {
      const ok = status.instances === 'live' && (status.hosts === 'live' || status.hosts === 'none');
      view.setLive(ok, ok ? 'live' : 'reconnecting…');
    };
    const stops = [];
    stops.push(watch('/v1/hosts', (ev) => {
      if (ev.type === 'SYNCED') {
        status.hosts = 'live';
        showLive();
      }
      view.hostEvent(ev);
    }, (err) => {
      if (err.status === 403 || err.status === 404) {
        // Not allowed to read hosts: show the hosts named by the
        // instances' status.host only.
        view.hostsReadable = false;
        status.hosts = 'none';
      } else {
        status.hosts = 'error';
        if (err.status !== 0) ctx.toastError(err);
      }
      showLive();
    }, { view: 'map' }));
    stops.push(watch(all ? '/v1/instances' : projectPath(ctx.project, 'instances'), (ev) => {
      if (ev.type === 'SYNCED') {
        status.instances = 'live';
        showLive();
      }
      view.instanceEvent(ev);
    }, (err) => {
      status.instances = 'error';
      showLive();
      if (err.status !== 0) ctx.toastError(err);
    }, { view: 'map' }));
    layout.append(tl.el);
    stops.push(tl.stop, () => clearTimeout(later));
    // Expose the view for benchmarks and tests (e.g. the time of the last redraw).
    window.ouroMap = view;
    return () => {
      for (const stop of stops) stop();
      view.stop();
      if (window.ouroMap === view) delete window.ouroMap;
    };
  },
});
