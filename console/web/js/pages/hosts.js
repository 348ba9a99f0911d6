// Hosts: capacity, labels, cordon and uncordon, and — a teaching action
// for cluster admins — drain: the server cordons the host and deletes the
// members of instance groups on it, which their groups replace on other
// hosts while people watch the cloud heal. Stand-alone instances stay
// where they are (deleting them would lose them); the page names them.

import * as api from '../api.js';
import { register } from '../app.js';
import {
  h, replace, page, section, dl, table, live, link, clusterPath, button, teaching, field, input, form, age, enc,
  update, confirm,
} from './ui.js';
import { phaseCell } from './instances.js';

const GROUP = 'ouro.dev/group';

function hostPhase(host) {
  const p = (host.status && host.status.phase) || 'Unknown';
  const parts = [h('span', { class: ['badge', 'host-' + p, p === 'NotReady' ? 'host-lost' : ''], text: p })];
  if (host.spec.unschedulable) parts.push(' ', h('span', { class: 'badge host-cordoned', text: 'cordoned' }));
  return h('span', {}, parts);
}

// meter shows used of total as a bar with text.
function meter(label, used, total, unit) {
  const pct = total ? Math.round((used / total) * 100) : 0;
  return h('div', { class: 'meter' },
    h('span', { class: 'meter-label', text: `${label} ${used}/${total}${unit} (${pct}%)` }),
    h('meter', { min: 0, max: total || 1, value: used, high: (total || 1) * 0.85, optimum: 0, 'aria-label': label }));
}

function capacity(host) {
  const c = (host.status && host.status.capacity) || {};
  const a = (host.status && host.status.allocated) || {};
  return h('div', { class: 'meters' },
    meter('CPU', a.vcpus || 0, c.vcpus || 0, ''),
    meter('Memory', a.memoryMiB || 0, c.memoryMiB || 0, ' MiB'),
    meter('Disk', a.diskGiB || 0, c.diskGiB || 0, ' GiB'));
}

function renderHosts(el, params, ctx) {
  const body = page(el, 'Hosts');
  const t = table([
    { title: 'Name', cell: (x) => link('/hosts/' + enc(x.metadata.name), x.metadata.name) },
    { title: 'Phase', cell: hostPhase },
    { title: 'Address', cell: (x) => x.status.address || '' },
    { title: 'Arch', cell: (x) => x.status.architecture || '' },
    { title: 'Drivers', cell: (x) => (x.status.drivers || []).join(', ') },
    { title: 'Capacity', cell: capacity, class: 'wide' },
    { title: 'Zone', cell: (x) => (x.metadata.labels || {})['ouro.dev/zone'] || '' },
    { title: 'Age', cell: (x) => age(x.metadata.creationTimestamp) },
  ], { empty: 'No hosts have joined. On a new machine run `ouro agent --join-token …` (see `ouro host join-token`).' });
  body.append(t.el);
  return live(body, clusterPath('hosts'), (items) => {
    for (const x of items) x.status = x.status || {};
    t.update(items);
  });
}

function renderHost(el, params, ctx) {
  const name = params.name;
  const path = clusterPath('hosts', name);
  const actions = h('div', { class: 'button-row' });
  const body = page(el, 'Host ' + name, [actions]);
  const info = h('div');
  const labels = h('div');
  const conds = h('div');
  const insts = table([
    { title: 'Instance', cell: (i) => i.metadata.project === ctx.project ? link('/instances/' + enc(i.metadata.name), i.metadata.name)
      : link('/instances/' + enc(i.metadata.name) + '?project=' + enc(i.metadata.project), i.metadata.project + '/' + i.metadata.name) },
    { title: 'Phase', cell: phaseCell },
    { title: 'Group', cell: (i) => (i.metadata.labels || {})[GROUP] || '' },
    { title: 'Flavor', cell: (i) => i.spec.flavor },
  ], { empty: 'No instances (that you can see) on this host.' });
  body.append(info, section('Labels and taints', labels), section('Conditions', conds), section('Instances', insts.el));
  let onHost = [];
  let labelsDrawn = false;
  const stopHost = live(body, clusterPath('hosts'), (items, map) => {
    const host = map.get('/' + name);
    if (!host) { replace(info, h('p', { class: 'notice', text: `No host ${name}.` })); replace(actions); return; }
    host.status = host.status || {};
    const st = host.status;
    replace(info, section('Host', dl([
      ['Phase', hostPhase(host)], ['Address', st.address || ''], ['Architecture', st.architecture || ''],
      ['Drivers', (st.drivers || []).join(', ')], ['Agent version', st.agentVersion || ''],
      ['Capacity', capacity(host)], ['Joined', age(host.metadata.creationTimestamp) + ' ago'],
    ])));
    const ct = table([
      { title: 'Type', cell: (c) => c.type }, { title: 'Status', cell: (c) => String(c.status) },
      { title: 'Reason', cell: (c) => c.reason || '' }, { title: 'Message', cell: (c) => c.message || '', class: 'wide' },
      { title: 'Since', cell: (c) => age(c.lastTransitionTime) },
    ], { empty: 'No conditions.' });
    ct.update(st.conditions || []);
    replace(conds, ct.el);
    if (!labelsDrawn) { labelsDrawn = true; drawLabels(labels, ctx, host, path); }
    drawActions(actions, ctx, host, path, () => onHost);
  });
  // Cluster admins see every instance of the host; others those of the project.
  const instPath = ctx.me.clusterAdmin ? '/v1/instances?host=' + enc(name) : '/v1/projects/' + enc(ctx.project) + '/instances';
  const stopInst = live(body, instPath, (items) => {
    onHost = items.filter((i) => i.status && i.status.host === name);
    insts.update(onHost);
  });
  return () => { stopHost(); stopInst(); };
}

function drawLabels(el, ctx, host, path) {
  const list = h('div');
  const draw = (hst) => {
    const rows = Object.entries(hst.metadata.labels || {}).sort();
    const t = table([
      { title: 'Label', cell: ([k]) => h('code', { text: k }) },
      { title: 'Value', cell: ([, v]) => v },
      { title: '', show: ctx.can('update', 'hosts'), cell: ([k]) => ctx.can('update', 'hosts') ? button(ctx, 'Remove', async () => {
        draw(await update(path, (x) => { delete (x.metadata.labels || {})[k]; }));
      }, { confirm: `Remove label ${k} from host ${hst.metadata.name}?`, done: 'Label removed' }) : '' },
    ], { empty: 'No labels.' });
    t.update(rows);
    replace(list, t.el, dl([['Taints', (hst.spec.taints || []).join(', ')]]));
  };
  draw(host);
  el.append(list);
  if (ctx.can('update', 'hosts')) {
    const key = input({ placeholder: 'ouro.dev/zone' });
    const value = input();
    el.append(form([field('Key', key, 'metadata.labels'), field('Value', value, '')], 'Set label', async (f) => {
      const k = key.value.trim();
      if (!k) throw new api.ApiError(400, 'InvalidArgument', 'required', 'metadata.labels', 'give the label\'s key');
      draw(await update(path, (x) => { x.metadata.labels = { ...(x.metadata.labels || {}), [k]: value.value.trim() }; }));
      ctx.toast(`Label ${k} set`, 'ok');
      f.reset();
    }));
  }
}

function drawActions(el, ctx, host, path, instances) {
  const name = host.metadata.name;
  const items = [];
  if (ctx.can('cordon', 'hosts')) {
    if (host.spec.unschedulable) {
      items.push(button(ctx, 'Uncordon', () => update(path, (x) => { x.spec.unschedulable = false; }), { done: `Host ${name} takes new instances again` }));
    } else {
      items.push(button(ctx, 'Cordon', () => update(path, (x) => { x.spec.unschedulable = true; }),
        { confirm: `Cordon host ${name}? Its instances keep running; no new ones are placed there.`, danger: false, done: `Host ${name} cordoned` }));
    }
  }
  if (ctx.can('drain', 'hosts')) {
    items.push(teaching(button(ctx, 'Drain', () => drain(ctx, name, instances()), {
      title: 'Cordon the host and move its group members elsewhere',
    })));
  }
  replace(el, items);
}

// drain asks the server to drain the host (POST /v1/hosts/NAME/drain, as
// `ouro host drain`): it cordons the host and deletes the group members on
// it, which their groups replace elsewhere; stand-alone instances stay.
async function drain(ctx, name, instances) {
  const members = instances.filter((i) => (i.metadata.labels || {})[GROUP] && !i.metadata.deletionTimestamp);
  const alone = instances.filter((i) => !(i.metadata.labels || {})[GROUP]);
  const q = `Drain host ${name}? It is cordoned, and its group members (${members.length} seen) are deleted for their groups to replace on other hosts.` +
    (alone.length ? ` Its stand-alone instances (${alone.map((i) => i.metadata.name).join(', ')}) stay: move them yourself.` : '');
  if (!(await confirm(q, 'Drain'))) return;
  const out = (await api.send('POST', clusterPath('hosts', name, 'drain'))) || {};
  const deleted = out.deleted || [];
  const kept = out.kept || [];
  ctx.toast(`Host ${name} cordoned; ${deleted.length} group member(s) being replaced elsewhere` +
    (kept.length ? `; ${kept.length} stand-alone instance(s) stay: ${kept.join(', ')}` : ''), 'ok');
}

register('/hosts', { title: 'Hosts', render: renderHosts });
register('/hosts/:name', { title: 'Host', render: renderHost });
