// Instance groups: the list, and a group's page with its members (phase,
// health, revision), rollout progress, scale, update of the template
// (image, flavor, environment), undo, pause and resume — each done as
// `ouro group` does it: read the group, change its spec, write it back
// with the version read, again on a conflict — and, when the group
// autoscales, a chart of its members' mean CPU against the target.

import * as api from '../api.js';
import { register } from '../app.js';
import {
  h, replace, page, section, dl, table, live, link, projectPath, button, chart, remember, recall, field, input,
  select, textarea, form, lines, health, age, enc, update,
} from './ui.js';
import { phaseCell, primaryIP, noteUsage, healthCheckText } from './instances.js';

const GROUP = 'ouro.dev/group';
const REVISION = 'ouro.dev/revision';

// desired is the count the controller works toward, as the CLI shows it.
function desired(g) {
  return g.status && g.status.observedGeneration ? g.status.desired : g.spec.count;
}

function rolloutText(g) {
  const st = g.status || {};
  return (st.rollout || 'Pending') + (st.rolloutReason ? ' (' + st.rolloutReason + ')' : '');
}

function renderList(el, params, ctx) {
  const body = page(el, 'Instance groups');
  const t = table([
    { title: 'Name', cell: (g) => link('/groups/' + enc(g.metadata.name), g.metadata.name) },
    { title: 'Desired', cell: (g) => String(desired(g)) },
    { title: 'Running', cell: (g) => String(g.status.running || 0) },
    { title: 'Healthy', cell: (g) => String(g.status.healthy || 0) },
    { title: 'Updated', cell: (g) => String(g.status.updated || 0) },
    { title: 'Revision', cell: (g) => String(g.status.revision || '') },
    { title: 'Rollout', cell: (g) => h('span', { class: 'rollout-' + (g.status.rollout || 'Pending') }, rolloutText(g)) },
    { title: 'Autoscaling', cell: (g) => g.spec.autoscaling ? `${g.spec.autoscaling.min}–${g.spec.autoscaling.max} at ${g.spec.autoscaling.targetCPUPercent}% CPU` : '' },
    { title: 'Age', cell: (g) => age(g.metadata.creationTimestamp) },
  ], { empty: 'No instance groups. Create one with `ouro group create`.' });
  body.append(t.el);
  return live(body, projectPath(ctx, 'instancegroups'), (items) => {
    for (const g of items) g.status = g.status || {};
    t.update(items);
  });
}

// updateGroup changes the group as `ouro group` does: read, change, write
// with the version read, again on a conflict.
export function updateGroup(ctx, name, change) {
  return update(projectPath(ctx, 'instancegroups', name), change);
}

function renderDetail(el, params, ctx) {
  const name = params.name;
  const actions = h('div', { class: 'button-row' });
  const body = page(el, 'Group ' + name, [actions]);
  const summary = h('div');
  const progress = h('div');
  const scaling = h('div');
  const members = h('div');
  const history = h('div');
  const editors = h('div');
  body.append(section('Rollout', progress), summary, scaling, section('Members', members), section('Revisions', history), editors);

  let group = null;
  let memberList = [];
  let editorsDrawn = false;
  const drawScaling = () => {
    if (!group || !group.spec.autoscaling) { replace(scaling); return; }
    const a = group.spec.autoscaling;
    const running = memberList.filter((i) => i.status.phase === 'Running' && i.status.usage);
    const mean = running.length ? running.reduce((s, i) => s + (i.status.usage.cpuPercent || 0), 0) / running.length : null;
    const key = 'group:' + ctx.project + '/' + name;
    if (mean !== null) remember(key, Date.now(), mean);
    remember(key + ':count', Date.now(), desired(group));
    replace(scaling, section('Autoscaling',
      dl([
        ['Bounds', `${a.min} to ${a.max} members`],
        ['Target', `${a.targetCPUPercent}% mean CPU`],
        ['Now', mean === null ? 'no CPU samples yet' : `${mean.toFixed(1)}% mean CPU over ${running.length} running members; desired ${desired(group)}`],
        ['Last scaled', group.status.lastScaleTime ? age(group.status.lastScaleTime) + ' ago' : 'never'],
      ]),
      chart([{ label: 'mean CPU %', class: 'cpu', points: recall(key) }], { yMax: 100, unit: '%', target: a.targetCPUPercent, label: 'Mean CPU of ' + name + ' against its target' }),
      chart([{ label: 'desired members', class: 'count', points: recall(key + ':count') }], { yMax: a.max, label: 'Desired members of ' + name })));
  };

  const stopGroup = live(body, projectPath(ctx, 'instancegroups'), (items, map) => {
    const g = map.get(ctx.project + '/' + name);
    if (!g) {
      replace(summary, h('p', { class: 'notice', text: group ? `Group ${name} is gone.` : `No group ${name} in project ${ctx.project}.` }));
      replace(actions);
      group = null;
      return;
    }
    g.status = g.status || {};
    group = g;
    drawProgress(progress, g);
    drawSummary(summary, g);
    drawHistory(history, ctx, g);
    drawActions(actions, ctx, g);
    if (!editorsDrawn && ctx.can('update', 'instancegroups')) {
      editorsDrawn = true;
      drawEditors(editors, ctx, g);
    }
    drawScaling();
  });
  const t = table([
    { title: 'Name', cell: (i) => link('/instances/' + enc(i.metadata.name), i.metadata.name) },
    { title: 'Phase', cell: phaseCell },
    { title: 'Health', cell: health },
    { title: 'Revision', cell: (i) => {
      const r = (i.metadata.labels || {})[REVISION] || '';
      const cur = group && String(group.status.revision) === r;
      return h('span', { class: cur ? 'rev-current' : 'rev-old', text: r + (cur ? '' : ' (old)') });
    } },
    { title: 'Host', cell: (i) => i.status.host ? link('/hosts/' + enc(i.status.host), i.status.host) : '' },
    { title: 'IP', cell: primaryIP },
    { title: 'CPU', cell: (i) => i.status.usage ? Math.round(i.status.usage.cpuPercent) + '%' : '' },
    { title: 'Restarts', cell: (i) => String(i.status.restartCount || 0) },
    { title: 'Age', cell: (i) => age(i.metadata.creationTimestamp) },
  ], { empty: 'No members.' });
  members.append(t.el);
  const stopMembers = live(body, projectPath(ctx, 'instances') + '?labelSelector=' + enc(GROUP + '=' + name), (items) => {
    for (const i of items) { i.status = i.status || {}; noteUsage(i); }
    memberList = items.sort((a, b) => memberIndex(a) - memberIndex(b));
    t.update(memberList);
    drawScaling();
  });
  return () => { stopGroup(); stopMembers(); };
}

function memberIndex(i) {
  const m = /-(\d+)$/.exec(i.metadata.name);
  return m ? Number(m[1]) : 0;
}

function drawProgress(el, g) {
  const st = g.status;
  const want = desired(g) || 0;
  const bar = (label, n, cls) => h('div', { class: 'progress-line' },
    h('span', { class: 'progress-label', text: `${label}: ${n} of ${want}` }),
    h('progress', { class: cls, max: Math.max(want, 1), value: Math.min(n, Math.max(want, 1)), 'aria-label': label }));
  const waiting = (st.observedGeneration || 0) < (g.metadata.generation || 0);
  replace(el,
    h('p', { class: 'rollout-' + (st.rollout || 'Pending'), text: waiting ? `Waiting for the controller to see generation ${g.metadata.generation}.` : `Revision ${st.revision || '-'}: ${rolloutText(g)}` }),
    bar('Updated', st.updated || 0, 'updated'),
    bar('Healthy', st.healthy || 0, 'healthy'),
    bar('Running', st.running || 0, 'running'),
    h('p', { class: 'field-help', text: `${st.members || 0} members exist (the rollout may surge above the count).` }));
}

function drawSummary(el, g) {
  const t = g.spec.template || {};
  const u = g.spec.update || {};
  replace(el, section('Template and policy', dl([
    ['Image', t.image],
    ['Flavor', t.flavor],
    ['Command', (t.command || []).join(' ')],
    ['Environment', (t.env || []).join(' ')],
    ['Networks', (t.networks || []).map((n) => n.network + ((n.securityGroups || []).length ? ' (' + n.securityGroups.join(', ') + ')' : '')).join('; ')],
    ['Key pair', t.keyName || ''],
    ['Count', String(g.spec.count)],
    ['Stateful', g.spec.stateful ? 'yes' : 'no'],
    ['Placement', [g.spec.placement && g.spec.placement.antiAffinity ? 'anti-affinity ' + g.spec.placement.antiAffinity : 'anti-affinity soft',
      g.spec.placement && g.spec.placement.hostSelector ? ', hosts ' + g.spec.placement.hostSelector : ''].join('')],
    ['Health check', healthCheckText(g.spec.healthCheck)],
    ['Rollout policy', `max surge ${u.maxSurge ?? 1}, max unavailable ${u.maxUnavailable ?? 0}, deadline ${u.progressDeadlineSeconds || 300}s`],
    ['Paused', g.spec.paused ? 'yes' : 'no'],
  ])));
}

function drawHistory(el, ctx, g) {
  const t = table([
    { title: 'Revision', cell: (r) => String(r.revision) + (r.revision === g.status.revision ? ' (current)' : '') },
    { title: 'Image', cell: (r) => r.template.image },
    { title: 'Flavor', cell: (r) => r.template.flavor },
    { title: 'Command', cell: (r) => (r.template.command || []).join(' ') },
    { title: 'Age', cell: (r) => age(r.created) },
    { title: '', show: ctx.can('update', 'instancegroups'), cell: (r) => r.revision !== g.status.revision && ctx.can('update', 'instancegroups')
      ? button(ctx, 'Roll back to this', () => undo(ctx, g.metadata.name, r.revision),
        { confirm: `Roll group ${g.metadata.name} back to the template of revision ${r.revision}?`, danger: false, done: 'Rolling back' })
      : '' },
  ], { empty: 'No revisions yet.' });
  t.update([...(g.status.revisions || [])].reverse());
  replace(el, t.el);
}

// undo sets the template to an earlier revision's (by default the newest
// before the current) and resumes rollouts, as `ouro group rollout undo`.
function undo(ctx, name, to = 0) {
  return updateGroup(ctx, name, (g) => {
    const revs = g.status.revisions || [];
    let target = null;
    for (let i = revs.length - 1; i >= 0; i--) {
      const r = revs[i];
      if ((to && r.revision === to) || (!to && r.revision < g.status.revision)) { target = r; break; }
    }
    if (!target) {
      throw new api.ApiError(400, 'InvalidArgument', to ? `group ${name} has no revision ${to}` : `group ${name} has no revision before ${g.status.revision} to go back to`);
    }
    g.spec.template = target.template;
    g.spec.paused = false;
  });
}

function drawActions(el, ctx, g) {
  const name = g.metadata.name;
  const items = [];
  if (ctx.can('update', 'instancegroups')) {
    if (g.spec.paused) {
      items.push(button(ctx, 'Resume rollout', () => updateGroup(ctx, name, (x) => { x.spec.paused = false; }), { done: 'Rollout resumed' }));
    } else {
      items.push(button(ctx, 'Pause rollout', () => updateGroup(ctx, name, (x) => { x.spec.paused = true; }), { done: 'Rollout paused' }));
    }
    items.push(button(ctx, 'Undo', () => undo(ctx, name), { confirm: `Roll group ${name} back to its previous template?`, danger: false, done: 'Rolling back' }));
  }
  if (ctx.can('delete', 'instancegroups')) {
    items.push(button(ctx, 'Delete', async () => {
      await api.send('DELETE', projectPath(ctx, 'instancegroups', name));
      ctx.navigate('#/groups');
    }, { confirm: `Delete group ${name} and all its members?`, done: `Group ${name} deleted; its members are being deleted` }));
  }
  replace(el, items);
}

// drawEditors adds the scale and update forms (drawn once, so typing is
// not lost when the group changes; they read the group again on submit).
function drawEditors(el, ctx, g) {
  const name = g.metadata.name;
  const count = input({ type: 'number', min: 0, max: 1000, value: String(g.spec.count) });
  const scale = form([
    field('Members', count, 'spec.count', g.spec.autoscaling ? 'This group autoscales: change its bounds below instead.' : ''),
  ], 'Scale', async () => {
    const n = Number(count.value);
    if (!Number.isInteger(n) || n < 0 || n > 1000) throw new api.ApiError(400, 'InvalidArgument', `${count.value} is not a number from 0 to 1000`, 'spec.count');
    await updateGroup(ctx, name, (x) => {
      if (x.spec.autoscaling) {
        const a = x.spec.autoscaling;
        throw new api.ApiError(400, 'InvalidArgument', `group ${name} is autoscaled between ${a.min} and ${a.max} members`, 'spec.count', 'change the bounds instead');
      }
      x.spec.count = n;
    });
    ctx.toast(`Group ${name} scaled to ${n}`, 'ok');
  });

  const t = g.spec.template || {};
  const image = input({ value: t.image || '' });
  const flavor = input({ value: t.flavor || '' });
  const env = textarea({ rows: 3, class: 'mono', value: (t.env || []).join('\n'), placeholder: 'KEY=VALUE, one a line' });
  const update = form([
    field('Image', image, 'spec.template.image'),
    field('Flavor', flavor, 'spec.template.flavor'),
    field('Environment', env, 'spec.template.env', 'Replaces the template\'s variables. A change rolls out as a new revision.'),
  ], 'Update template', async () => {
    const envs = lines(env.value);
    for (const kv of envs) if (!/^[^=]+=/.test(kv)) throw new api.ApiError(400, 'InvalidArgument', `"${kv}" is not KEY=VALUE`, 'spec.template.env');
    const out = await updateGroup(ctx, name, (x) => {
      x.spec.template.image = image.value.trim();
      x.spec.template.flavor = flavor.value.trim();
      x.spec.template.env = envs.length ? envs : undefined;
    });
    ctx.toast(`Group ${name} updated (generation ${out.metadata.generation})` + (out.spec.paused ? '; its rollouts are paused' : ''), 'ok');
  });

  const a = g.spec.autoscaling || {};
  const on = select([['off', 'Off'], ['on', 'On']]);
  on.value = g.spec.autoscaling ? 'on' : 'off';
  const min = input({ type: 'number', min: 0, max: 1000, value: String(a.min ?? 1) });
  const max = input({ type: 'number', min: 1, max: 1000, value: String(a.max ?? '') });
  const target = input({ type: 'number', min: 1, max: 100, value: String(a.targetCPUPercent ?? '') });
  const auto = form([
    field('Autoscaling', on, 'spec.autoscaling'),
    field('Fewest members', min, 'spec.autoscaling.min'),
    field('Most members', max, 'spec.autoscaling.max'),
    field('Target mean CPU %', target, 'spec.autoscaling.targetCPUPercent'),
  ], 'Save autoscaling', async () => {
    await updateGroup(ctx, name, (x) => {
      if (on.value === 'off') { x.spec.autoscaling = undefined; return; }
      x.spec.autoscaling = { ...(x.spec.autoscaling || {}), min: Number(min.value), max: Number(max.value), targetCPUPercent: Number(target.value) };
    });
    ctx.toast('Autoscaling saved', 'ok');
  });
  replace(el, section('Scale', scale), section('Update', update), section('Autoscaling settings', auto));
}

register('/groups', { title: 'Instance groups', render: renderList });
register('/groups/:name', { title: 'Instance group', render: renderDetail });
