// Load balancers, read-only: the list, and a load balancer's page with its
// addresses, hosts (ready, holding the VIP), listeners, pools and the
// members of each pool with the health the active host's checks see.
// Changes go through `ouro loadbalancer` or a stack.

import * as api from '../api.js';
import { register } from '../app.js';
import { h, replace, page, section, dl, table, live, link, projectPath, button, age, enc, phase } from './ui.js';

function renderList(el, params, ctx) {
  const body = page(el, 'Load balancers');
  const t = table([
    { title: 'Name', cell: (l) => link('/loadbalancers/' + enc(l.metadata.name), l.metadata.name) },
    { title: 'Phase', cell: (l) => phase((l.status && l.status.phase) || 'Pending') },
    { title: 'Network', cell: (l) => l.spec.network },
    { title: 'VIP', cell: (l) => (l.status && l.status.vip) || '' },
    { title: 'Floating IP', cell: (l) => (l.status && l.status.floatingIP) || '' },
    { title: 'Listeners', cell: (l) => (l.spec.listeners || []).map((x) => x.protocol + ':' + x.port).join(', ') },
    { title: 'Members up', cell: (l) => upText(l) },
    { title: 'Age', cell: (l) => age(l.metadata.creationTimestamp) },
  ], { empty: 'No load balancers. Create one with `ouro loadbalancer create`.' });
  body.append(t.el);
  return live(body, projectPath(ctx, 'loadbalancers'), (items) => t.update(items));
}

function upText(l) {
  const m = (l.status && l.status.members) || [];
  return `${m.filter((x) => x.health === 'up').length}/${m.length}`;
}

function renderDetail(el, params, ctx) {
  const name = params.name;
  const actions = h('div', { class: 'button-row' });
  const body = page(el, 'Load balancer ' + name, [actions]);
  const info = h('div');
  const hosts = table([
    { title: 'Host', cell: (x) => link('/hosts/' + enc(x.name), x.name) },
    { title: 'Address', cell: (x) => x.address },
    { title: 'Priority', cell: (x) => String(x.priority) },
    { title: 'Ready', cell: (x) => x.ready ? 'yes' : 'no' + (x.message ? ': ' + x.message : '') },
    { title: 'Holds the VIP', cell: (x) => x.active ? 'yes' : 'no' },
  ], { empty: 'Not placed yet.' });
  const listeners = table([
    { title: 'Name', cell: (x) => x.name || '' },
    { title: 'Protocol', cell: (x) => x.protocol },
    { title: 'Port', cell: (x) => String(x.port) },
    { title: 'Default pool', cell: (x) => x.defaultPool },
    { title: 'Rules', cell: (x) => (x.rules || []).map((r) => `${r.host || '*'}${r.pathPrefix || ''} → ${r.pool}`).join('; ') },
  ], { empty: 'No listeners.' });
  const pools = h('div');
  body.append(info, section('Hosts', hosts.el), section('Listeners', listeners.el), section('Pools and members', pools));
  if (ctx.can('delete', 'loadbalancers')) {
    actions.append(button(ctx, 'Delete', async () => {
      await api.send('DELETE', projectPath(ctx, 'loadbalancers', name));
      ctx.navigate('#/loadbalancers');
    }, { confirm: `Delete load balancer ${name}? Its addresses are released.`, done: `Load balancer ${name} deleted` }));
  }
  return live(body, projectPath(ctx, 'loadbalancers'), (items, map) => {
    const lb = map.get(ctx.project + '/' + name);
    if (!lb) { replace(info, h('p', { class: 'notice', text: `No load balancer ${name}.` })); return; }
    const st = lb.status || {};
    replace(info, section('Load balancer', dl([
      ['Phase', phase(st.phase || 'Pending')], ['Network', link('/networks/' + enc(lb.spec.network), lb.spec.network)],
      ['VIP', st.vip || ''], ['Floating IP', st.floatingIP ? `${st.floatingIP} (pool ${st.floatingIPPool})` : ''],
      ['Port addresses', (st.portAddresses || []).join(', ')], ['Drain timeout', (lb.spec.drainTimeoutSeconds || 30) + ' s'],
      ['Conditions', (st.conditions || []).map((c) => `${c.type}=${c.status}${c.reason ? ' (' + c.reason + ')' : ''}`).join(', ')],
      ['Created', age(lb.metadata.creationTimestamp) + ' ago'],
    ])));
    hosts.update(st.hosts || []);
    listeners.update(lb.spec.listeners || []);
    replace(pools, (lb.spec.pools || []).map((p) => poolBlock(p, (st.members || []).filter((m) => m.pool === p.name))));
  });
}

function poolBlock(p, members) {
  const t = table([
    { title: 'Instance', cell: (m) => link('/instances/' + enc(m.instance), m.instance) },
    { title: 'Address', cell: (m) => m.address + ':' + m.port },
    { title: 'Weight', cell: (m) => String(m.weight) },
    { title: 'State', cell: (m) => m.state },
    { title: 'Health', cell: (m) => h('span', { class: ['badge', 'health-' + m.health], text: m.health }) },
    { title: 'Since', cell: (m) => m.since ? age(m.since) : '' },
  ], { empty: 'No members.' });
  t.update(members);
  const src = p.group ? ['group ', link('/groups/' + enc(p.group), p.group)] : 'instances';
  const mon = p.healthMonitor || {};
  return h('div', { class: 'pool' },
    h('h3', {}, `Pool ${p.name}: `, src, ` port ${p.port}, ${p.algorithm || 'roundrobin'}, check ${mon.type || 'tcp'}${mon.path ? ' ' + mon.path : ''}`),
    t.el);
}

register('/loadbalancers', { title: 'Load balancers', render: renderList });
register('/loadbalancers/:name', { title: 'Load balancer', render: renderDetail });
