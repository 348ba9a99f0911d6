// Instances: the list with filters, kept live through the watch stream,
// and an instance's page with its spec, status, conditions, events, logs,
// CPU chart and power actions.

import * as api from '../api.js';
import { register } from '../app.js';
import {
  h, replace, clear, page, section, dl, phase, health, age, when, table, live, link,
  projectPath, button, teaching, chart, remember, recall, select, input, enc,
} from './ui.js';

const phases = ['Pending', 'Scheduled', 'Provisioning', 'Starting', 'Running', 'Stopping', 'Stopped',
  'Terminating', 'Failed'];
const GROUP = 'ouro.dev/group';
// MAX_ROWS bounds the rows the list draws at once.
const MAX_ROWS = 500;
const REVISION = 'ouro.dev/revision';

// noteUsage remembers an instance's CPU sample for its chart.
export function noteUsage(inst) {
  const u = inst.status && inst.status.usage;
  if (u && u.sampledAt) {
    remember(inst.metadata.project + '/' + inst.metadata.name, Date.parse(u.sampledAt), u.cpuPercent || 0);
  }
}

// primaryIP is the address of an instance's first interface.
export function primaryIP(inst) {
  const ifs = (inst.status && inst.status.interfaces) || [];
  return ifs.length ? ifs[0].ip : '';
}

// phaseCell shows the phase with its reason and back-off.
export function phaseCell(inst) {
  const st = inst.status || {};
  const parts = [phase(st.phase)];
  if (inst.metadata.deletionTimestamp && st.phase !== 'Terminating') parts.push(' ', phase('Terminating'));
  if (st.reason) parts.push(h('span', { class: 'reason', title: st.message || '', text: ' ' + st.reason }));
  if (st.nextRestartAt) parts.push(h('span', { class: 'backoff', text: ' restarts in ' + untilText(st.nextRestartAt) }));
  return h('span', { class: 'phase-cell' }, parts);
}

function untilText(ts) {
  const s = Math.max(0, Math.round((Date.parse(ts) - Date.now()) / 1000));
  return s + 's';
}

function renderList(el, params, ctx) {
  const body = page(el, 'Instances', ctx.can('create', 'instances') ? [link('/instances/new', 'Create instance', 'button primary')] : []);
  const f = {
    name: input({ type: 'search', placeholder: 'Name contains', 'aria-label': 'Filter by name' }),
    phase: select([['', 'Any phase'], ...phases], { 'aria-label': 'Filter by phase' }),
    group: select([['', 'Any group']], { 'aria-label': 'Filter by group' }),
    host: select([['', 'Any host']], { 'aria-label': 'Filter by host' }),
  };
  const q = params.query || new URLSearchParams();
  for (const k of Object.keys(f)) if (q.get(k)) f[k].value = q.get(k);
  const count = h('p', { class: 'count' });
  const t = table([
    { title: 'Name', cell: (i) => link('/instances/' + enc(i.metadata.name), i.metadata.name) },
    { title: 'Phase', cell: phaseCell },
    { title: 'Health', cell: health },
    { title: 'Host', cell: (i) => i.status.host ? link('/hosts/' + enc(i.status.host), i.status.host) : '' },
    { title: 'Group', cell: (i) => groupOf(i) ? link('/groups/' + enc(groupOf(i)), groupOf(i)) : '' },
    { title: 'Image', cell: (i) => i.spec.image, class: 'wide' },
    { title: 'Flavor', cell: (i) => i.spec.flavor },
    { title: 'IP', cell: primaryIP },
    { title: 'CPU', cell: (i) => i.status.usage ? Math.round(i.status.usage.cpuPercent) + '%' : '' },
    { title: 'Age', cell: (i) => age(i.metadata.creationTimestamp) },
  ], { empty: 'No instances match.' });
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  body.append(h('div', { class: 'filters', role: 'search' }, f.name, f.phase, f.group, f.host), count, error, t.el);

  let all = [];
  const draw = () => {
    const name = f.name.value.trim().toLowerCase();
    const rows = all.filter((i) =>
      (!name || i.metadata.name.toLowerCase().includes(name)) &&
      (!f.phase.value || i.status.phase === f.phase.value) &&
      (!f.group.value || groupOf(i) === f.group.value) &&
      (!f.host.value || i.status.host === f.host.value));
    count.textContent = (rows.length === all.length ? `${all.length} instances` : `${rows.length} of ${all.length} instances`) +
      (rows.length > MAX_ROWS ? `; the first ${MAX_ROWS} are shown, filter to narrow them` : '');
    t.update(rows.slice(0, MAX_ROWS));
  };
  for (const c of Object.values(f)) c.addEventListener('input', draw);
  const stop = live(body, projectPath(ctx, 'instances'), (items) => {
    all = items;
    for (const i of items) { i.status = i.status || {}; noteUsage(i); }
    refill(f.group, [...new Set(items.map(groupOf).filter(Boolean))].sort(), 'Any group');
    refill(f.host, [...new Set(items.map((i) => i.status.host).filter(Boolean))].sort(), 'Any host');
    error.hidden = true;
    draw();
  }, (err) => { error.textContent = err.message; error.hidden = false; });
  return stop;
}

// refill replaces a filter's options, keeping its choice.
function refill(sel, values, anyText) {
  const cur = sel.value;
  replace(sel, h('option', { value: '', text: anyText }), values.map((v) => h('option', { value: v, text: v })));
  if (cur && !values.includes(cur)) sel.append(h('option', { value: cur, text: cur }));
  sel.value = cur;
}

function groupOf(i) {
  return (i.metadata.labels || {})[GROUP] || '';
}

function renderDetail(el, params, ctx) {
  const name = params.name;
  const path = projectPath(ctx, 'instances', name);
  const actions = h('div', { class: 'button-row' });
  const body = page(el, 'Instance ' + name, [actions]);
  const summary = h('div');
  const conds = h('div');
  const usage = h('div');
  const events = h('div');
  const logs = logsPanel(ctx, path);
  body.append(
    summary,
    section('CPU', usage),
    section('Conditions', conds),
    section('Events', events),
    section('Logs', logs.el),
  );
  let last = null;
  const stopInst = live(body, projectPath(ctx, 'instances'), (items, map) => {
    const inst = map.get(ctx.project + '/' + name);
    if (!inst) {
      if (last) { replace(summary, h('p', { class: 'notice', text: `Instance ${name} is gone.` })); clear(actions); }
      else replace(summary, h('p', { class: 'notice', text: `No instance ${name} in project ${ctx.project}.` }));
      return;
    }
    inst.status = inst.status || {};
    last = inst;
    noteUsage(inst);
    drawSummary(summary, inst);
    drawConditions(conds, inst);
    drawUsage(usage, inst);
    drawActions(actions, ctx, inst, path);
    logs.ready(inst);
  });
  const stopEvents = live(body, projectPath(ctx, 'events'), (items) => {
    const mine = items.filter((e) => e.object && e.object.kind === 'Instance' && e.object.name === name &&
      (!last || !e.object.uid || e.object.uid === last.metadata.uid));
    mine.sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
    drawEvents(events, mine);
  });
  return () => { stopInst(); stopEvents(); logs.stop(); };
}

function drawSummary(el, inst) {
  const sp = inst.spec || {};
  const st = inst.status;
  const nets = (sp.networks || []).map((n) => {
    const ifc = (st.interfaces || []).find((i) => i.network === n.network) || {};
    return h('li', {}, link('/networks/' + enc(n.network), n.network), ' ', ifc.ip || '', ifc.mac ? ' (' + ifc.mac + ')' : '',
      (n.securityGroups || []).length ? [' groups: ', (n.securityGroups || []).flatMap((g, i) => [i ? ', ' : '', link('/securitygroups/' + enc(g), g)])] : '');
  });
  const g = groupOf(inst);
  replace(el,
    section('Status', dl([
      ['Phase', phaseCell(inst)],
      ['Health', health(inst)],
      ['Message', st.message || ''],
      ['Host', st.host ? link('/hosts/' + enc(st.host), st.host) : ''],
      ['Driver', st.driver || ''],
      ['Started', st.startedAt ? when(st.startedAt) : ''],
      ['Finished', st.finishedAt ? when(st.finishedAt) : ''],
      ['Exit code', st.exitCode === undefined || st.exitCode === null ? '' : String(st.exitCode)],
      ['Restarts', String(st.restartCount || 0)],
      ['Next restart', st.nextRestartAt ? when(st.nextRestartAt) : ''],
    ])),
    section('Spec', dl([
      ['Image', sp.image],
      ['Flavor', sp.flavor + (sp.resources ? ` (${sp.resources.vcpus} vCPU, ${sp.resources.memoryMiB} MiB, ${sp.resources.diskGiB} GiB)` : '')],
      ['Power', sp.powerState || 'Running'],
      ['Group', g ? [link('/groups/' + enc(g), g), ' revision ', (inst.metadata.labels || {})[REVISION] || '?'] : ''],
      ['Networks', nets.length ? h('ul', { class: 'plain' }, nets) : ''],
      ['Key pair', sp.keyName ? link('/keypairs', sp.keyName) : ''],
      ['Command', (sp.command || []).join(' ')],
      ['Environment', (sp.env || []).join(' ')],
      ['Restart policy', sp.restartPolicy || 'Always'],
      ['Health check', sp.healthCheck ? healthCheckText(sp.healthCheck) : ''],
      ['Labels', Object.entries(inst.metadata.labels || {}).map(([k, v]) => k + '=' + v).join(', ')],
      // Free-text notes (EC2 tags a label cannot hold, among others).
      ['Annotations', Object.keys(inst.metadata.annotations || {}).length
        ? h('ul', { class: 'plain' }, Object.entries(inst.metadata.annotations).map(([k, v]) => h('li', {}, k + ': ' + v)))
        : ''],
      ['User-data', sp.userData ? h('pre', { class: 'userdata', text: sp.userData }) : ''],
      ['Created', when(inst.metadata.creationTimestamp)],
    ])));
}

// healthCheckText shows a health check as the CLI's --health flag says it.
export function healthCheckText(hc) {
  if (!hc || !hc.kind) return 'running';
  if (hc.kind === 'tcp') return 'tcp:' + hc.port;
  if (hc.kind === 'http') return 'http:' + hc.port + (hc.path || '/');
  if (hc.kind === 'loadBalancer') return 'lb:' + hc.loadBalancer;
  return hc.kind;
}

function drawConditions(el, inst) {
  const t = table([
    { title: 'Type', cell: (c) => c.type },
    { title: 'Status', cell: (c) => h('span', { class: ['badge', c.status ? 'cond-true' : 'cond-false'], text: String(c.status) }) },
    { title: 'Reason', cell: (c) => c.reason || '' },
    { title: 'Message', cell: (c) => c.message || '', class: 'wide' },
    { title: 'Since', cell: (c) => age(c.lastTransitionTime) },
  ], { empty: 'No conditions reported yet.' });
  t.update(inst.status.conditions || []);
  replace(el, t.el);
}

// eventsTable shows events, newest first.
export function eventsTable(items) {
  const t = table([
    { title: 'When', cell: (e) => age(e.time) },
    { title: 'Type', cell: (e) => h('span', { class: ['badge', 'event-' + e.type], text: e.type }) },
    { title: 'Reason', cell: (e) => e.reason },
    { title: 'Message', cell: (e) => e.message + (e.count > 1 ? ` (×${e.count})` : ''), class: 'wide' },
    { title: 'Source', cell: (e) => e.source },
  ], { empty: 'No events in the last hour.' });
  t.update(items);
  return t.el;
}

function drawEvents(el, items) {
  replace(el, eventsTable(items.slice(0, 50)));
}

function drawUsage(el, inst) {
  const pts = recall(inst.metadata.project + '/' + inst.metadata.name);
  const u = inst.status.usage;
  replace(el,
    h('p', { class: 'usage-now', text: u ? `${Math.round(u.cpuPercent)}% of ${inst.spec.resources ? inst.spec.resources.vcpus : '?'} vCPU (${u.cpuMillicores} millicores), sampled ${age(u.sampledAt)} ago` : 'No usage sampled yet.' }),
    chart([{ label: 'CPU %', class: 'cpu', points: pts }], { yMax: 100, unit: '%', label: 'CPU use of ' + inst.metadata.name }),
    h('p', { class: 'field-help', text: 'The agent samples CPU use every 10 s and reports changes; the chart shows what this page has seen.' }));
}

function drawActions(el, ctx, inst, path) {
  const name = inst.metadata.name;
  const items = [];
  if (inst.status.phase === 'Running' || inst.status.phase === 'Starting' || inst.status.driver === 'vm') {
    items.push(h('a', { class: 'button', href: '#/instances/' + enc(name) + '/console', text: 'Console' }));
  }
  if (!inst.metadata.deletionTimestamp) {
    const on = (inst.spec.powerState || 'Running') === 'Running';
    if (!on && ctx.can('start', 'instances')) items.push(button(ctx, 'Start', () => api.send('POST', path + '/start'), { done: `Start of ${name} requested` }));
    if (on && ctx.can('stop', 'instances')) items.push(button(ctx, 'Stop', () => api.send('POST', path + '/stop'), { done: `Stop of ${name} requested`, confirm: `Stop instance ${name}?`, danger: false }));
    if (on && ctx.can('reboot', 'instances')) items.push(button(ctx, 'Reboot', () => api.send('POST', path + '/reboot'), { done: `Reboot of ${name} requested`, confirm: `Reboot instance ${name}?`, danger: false }));
  }
  if (ctx.can('delete', 'instances') && !inst.metadata.deletionTimestamp) {
    items.push(button(ctx, 'Delete', async () => {
      await api.send('DELETE', path);
      ctx.navigate('#/instances');
    }, { danger: true, confirm: `Delete instance ${name}? Its disk is removed with it.`, done: `Deletion of ${name} requested` }));
  }
  if (ctx.can('crash', 'instances') && inst.status.phase === 'Running') {
    items.push(teaching(button(ctx, 'Crash', () => api.send('POST', path + '/crash'), {
      danger: true, confirm: `Kill the main process of ${name} (SIGKILL) and watch the agent restart it?`,
      done: `${name} was killed`, title: 'SIGKILL the instance\'s main process or QEMU',
    })));
  }
  replace(el, items);
}

// logsPanel shows an instance's recent output and follows it on demand.
function logsPanel(ctx, path) {
  const out = h('pre', { class: 'logs', tabindex: '0', 'aria-label': 'Instance output' });
  const follow = h('input', { type: 'checkbox' });
  const status = h('span', { class: 'field-help' });
  const reload = h('button', { type: 'button', text: 'Reload' });
  const el = h('div', {}, h('div', { class: 'button-row' }, reload, h('label', {}, follow, ' Follow')), status, out);
  let controller = null;
  let loaded = false;
  const MAX = 256 << 10;

  const stop = () => { if (controller) controller.abort(); controller = null; };
  const add = (text) => {
    const atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 8;
    out.textContent = (out.textContent + text).slice(-MAX);
    if (atEnd) out.scrollTop = out.scrollHeight;
  };
  async function load(followIt) {
    stop();
    out.textContent = '';
    status.textContent = followIt ? 'Following…' : 'Loading…';
    controller = new AbortController();
    const c = controller;
    try {
      const res = await fetch(path + '/logs?tail=500' + (followIt ? '&follow=true' : ''), {
        credentials: 'same-origin', headers: { Accept: 'text/plain' }, signal: c.signal,
      });
      if (!res.ok) {
        let msg = res.status + ' ' + res.statusText;
        try { const b = await res.json(); if (b.error) msg = b.error.message + (b.error.hint ? ' (' + b.error.hint + ')' : ''); } catch { /* not JSON */ }
        status.textContent = msg;
        return;
      }
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      status.textContent = followIt ? 'Following (new output appears as it comes).' : '';
      for (;;) {
        if (!out.isConnected) { c.abort(); return; }
        const { value, done } = await reader.read();
        if (done) break;
        add(dec.decode(value, { stream: true }));
      }
      if (followIt && !c.signal.aborted) status.textContent = 'The log stream ended.';
    } catch (err) {
      if (err.name !== 'AbortError') status.textContent = 'Could not read the logs: ' + err.message;
    }
  }
  reload.addEventListener('click', () => load(follow.checked));
  follow.addEventListener('change', () => load(follow.checked));
  return {
    el,
    stop,
    ready(inst) {
      if (loaded || !inst.status.host) return;
      loaded = true;
      load(false);
    },
  };
}

register('/instances', { title: 'Instances', render: renderList });
register('/instances/:name', { title: 'Instance', render: renderDetail });
