// VPCs, networks, security groups with their rules, and floating IPs.

import * as api from '../api.js';
import { register } from '../app.js';
import {
  h, replace, page, section, dl, table, live, link, projectPath, clusterPath, button, field, input, select, form,
  age, enc, phase, condition,
} from './ui.js';

// --- VPCs ------------------------------------------------------------------

function renderVPCs(el, params, ctx) {
  const body = page(el, 'VPCs');
  const t = table([
    { title: 'Name', cell: (v) => v.metadata.name },
    { title: 'CIDR', cell: (v) => v.spec.cidr },
    { title: 'Default', cell: (v) => (v.status && v.status.default) ? 'yes' : 'no' },
    { title: 'Routes', cell: (v) => ((v.status && v.status.routeTable && v.status.routeTable.routes) || []).map((r) => r.destination + ' → ' + r.target).join(', ') },
    { title: 'Age', cell: (v) => age(v.metadata.creationTimestamp) },
    { title: '', show: ctx.can('delete', 'vpcs'), cell: (v) => ctx.can('delete', 'vpcs') ? button(ctx, 'Delete', () => api.send('DELETE', projectPath(ctx, 'vpcs', v.metadata.name)),
      { confirm: `Delete VPC ${v.metadata.name}?`, done: `VPC ${v.metadata.name} deleted` }) : '' },
  ], { empty: 'No VPCs.' });
  body.append(t.el);
  if (ctx.can('create', 'vpcs')) {
    const name = input({ autocomplete: 'off' });
    const cidr = input({ placeholder: '10.0.0.0/16' });
    body.append(section('Create VPC', form([
      field('Name', name, 'metadata.name'),
      field('CIDR', cidr, 'spec.cidr', 'An IPv4 prefix from /16 to /28; its subnets are networks created in it.'),
    ], 'Create', async (f) => {
      await api.send('POST', projectPath(ctx, 'vpcs'), { kind: 'VPC', metadata: { name: name.value.trim(), project: ctx.project }, spec: { cidr: cidr.value.trim() } });
      ctx.toast(`VPC ${name.value.trim()} created`, 'ok');
      f.reset();
    })));
  }
  return live(body, projectPath(ctx, 'vpcs'), (items) => t.update(items));
}

// --- networks --------------------------------------------------------------

function renderNetworks(el, params, ctx) {
  const body = page(el, 'Networks');
  const t = table([
    { title: 'Name', cell: (n) => link('/networks/' + enc(n.metadata.name), n.metadata.name) },
    { title: 'CIDR', cell: (n) => n.spec.cidr },
    { title: 'Gateway', cell: (n) => n.spec.gateway || '' },
    { title: 'NAT', cell: (n) => n.spec.nat === false ? 'off' : 'on' },
    { title: 'VPC', cell: (n) => n.spec.vpc || '' },
    { title: 'VNI', cell: (n) => String((n.status && n.status.vni) || '') },
    { title: 'Applied', cell: (n) => appliedCell(n) },
    { title: 'Age', cell: (n) => age(n.metadata.creationTimestamp) },
    { title: '', show: ctx.can('delete', 'networks'), cell: (n) => ctx.can('delete', 'networks') ? button(ctx, 'Delete', () => api.send('DELETE', projectPath(ctx, 'networks', n.metadata.name)),
      { confirm: `Delete network ${n.metadata.name}?`, done: `Network ${n.metadata.name} deleted` }) : '' },
  ], { empty: 'No networks.' });
  body.append(t.el);
  if (ctx.can('create', 'networks')) {
    const name = input({ autocomplete: 'off' });
    const cidr = input({ placeholder: '10.1.0.0/24' });
    const gw = input({ placeholder: 'default: the first address' });
    const dns = input({ placeholder: 'e.g. 1.1.1.1, 9.9.9.9 (default: the host\'s)' });
    const nat = select([['true', 'on'], ['false', 'off']]);
    const vpc = input({ placeholder: 'none', autocomplete: 'off' });
    body.append(section('Create network', form([
      field('Name', name, 'metadata.name'),
      field('VPC', vpc, 'spec.vpc', 'A VPC of the project to make the network its subnet, reachable from its other subnets.'),
      field('CIDR', cidr, 'spec.cidr', 'An IPv4 prefix from /16 to /29.'),
      field('Gateway', gw, 'spec.gateway'),
      field('DNS servers', dns, 'spec.dns'),
      field('NAT to the outside', nat, 'spec.nat'),
    ], 'Create', async (f) => {
      const spec = { cidr: cidr.value.trim(), nat: nat.value === 'true' };
      if (gw.value.trim()) spec.gateway = gw.value.trim();
      if (vpc.value.trim()) spec.vpc = vpc.value.trim();
      const d = dns.value.split(/[\s,]+/).filter(Boolean);
      if (d.length) spec.dns = d;
      await api.send('POST', projectPath(ctx, 'networks'), { kind: 'Network', metadata: { name: name.value.trim(), project: ctx.project }, spec });
      ctx.toast(`Network ${name.value.trim()} created`, 'ok');
      f.reset();
    })));
  }
  return live(body, projectPath(ctx, 'networks'), (items) => t.update(items));
}

function appliedCell(n) {
  const c = condition(n.status, 'Applied');
  if (!c) return 'yes';
  return h('span', { class: c.status ? 'cond-true' : 'cond-false', title: c.message || '', text: c.status ? 'yes' : 'no: ' + (c.message || c.reason) });
}

function renderNetwork(el, params, ctx) {
  const name = params.name;
  const body = page(el, 'Network ' + name);
  const info = h('div');
  const ports = table([
    { title: 'Instance', cell: (x) => link('/instances/' + enc(x.inst.metadata.name), x.inst.metadata.name) },
    { title: 'Phase', cell: (x) => phase(x.inst.status.phase) },
    { title: 'IP', cell: (x) => x.ifc.ip || '' },
    { title: 'MAC', cell: (x) => x.ifc.mac || '' },
    { title: 'Security groups', cell: (x) => (x.att.securityGroups || []).join(', ') },
    { title: 'Host', cell: (x) => x.inst.status.host || '' },
  ], { empty: 'No instance is attached.' });
  body.append(info, section('Attached instances', ports.el));
  const stopNet = live(body, projectPath(ctx, 'networks'), (items, map) => {
    const n = map.get(ctx.project + '/' + name);
    if (!n) { replace(info, h('p', { class: 'notice', text: `No network ${name}.` })); return; }
    replace(info, section('Network', dl([
      ['CIDR', n.spec.cidr], ['Gateway', n.spec.gateway || ''], ['DNS', (n.spec.dns || []).join(', ')],
      ['NAT', n.spec.nat === false ? 'off' : 'on'], ['VNI', String((n.status && n.status.vni) || '')],
      ['Applied', appliedCell(n)], ['Created', age(n.metadata.creationTimestamp) + ' ago'],
    ])));
  });
  const stopInst = live(body, projectPath(ctx, 'instances'), (items) => {
    const rows = [];
    for (const inst of items) {
      inst.status = inst.status || {};
      const att = (inst.spec.networks || []).find((a) => a.network === name);
      if (!att) continue;
      const ifc = (inst.status.interfaces || []).find((i) => i.network === name) || {};
      rows.push({ inst, att, ifc });
    }
    ports.update(rows);
  });
  return () => { stopNet(); stopInst(); };
}

// --- security groups -------------------------------------------------------

function ruleText(r) {
  const ports = r.portMin ? (r.portMax && r.portMax !== r.portMin ? `${r.portMin}-${r.portMax}` : String(r.portMin)) : 'any port';
  return `${r.direction} ${r.protocol} ${ports} ${r.direction === 'ingress' ? 'from' : 'to'} ${r.cidr || 'group ' + r.sourceGroup}`;
}

function renderSecurityGroups(el, params, ctx) {
  const body = page(el, 'Security groups');
  const t = table([
    { title: 'Name', cell: (g) => link('/securitygroups/' + enc(g.metadata.name), g.metadata.name) },
    { title: 'Description', cell: (g) => g.spec.description || '' },
    { title: 'Rules', cell: (g) => String((g.spec.rules || []).length) },
    { title: 'Age', cell: (g) => age(g.metadata.creationTimestamp) },
  ], { empty: 'No security groups.' });
  body.append(t.el);
  if (ctx.can('create', 'securitygroups')) {
    const name = input({ autocomplete: 'off' });
    const desc = input();
    body.append(section('Create security group', form([
      field('Name', name, 'metadata.name'),
      field('Description', desc, 'spec.description'),
    ], 'Create', async () => {
      const n = name.value.trim();
      await api.send('POST', projectPath(ctx, 'securitygroups'), { kind: 'SecurityGroup', metadata: { name: n, project: ctx.project }, spec: { description: desc.value } });
      ctx.navigate('#/securitygroups/' + enc(n));
    })));
  }
  return live(body, projectPath(ctx, 'securitygroups'), (items) => t.update(items));
}

function renderSecurityGroup(el, params, ctx) {
  const name = params.name;
  const path = projectPath(ctx, 'securitygroups', name);
  const actions = h('div', { class: 'button-row' });
  const body = page(el, 'Security group ' + name, [actions]);
  const info = h('div');
  const mayEdit = ctx.can('update', 'securitygroups');
  const rules = table([
    { title: 'ID', cell: (r) => h('code', { text: r.id || '' }) },
    { title: 'Direction', cell: (r) => r.direction },
    { title: 'Protocol', cell: (r) => r.protocol },
    { title: 'Ports', cell: (r) => r.portMin ? (r.portMax && r.portMax !== r.portMin ? `${r.portMin}-${r.portMax}` : String(r.portMin)) : 'any' },
    { title: 'Remote', cell: (r) => r.cidr || (r.sourceGroup ? link('/securitygroups/' + enc(r.sourceGroup), 'group ' + r.sourceGroup) : '') },
    { title: '', show: mayEdit, cell: (r) => mayEdit ? button(ctx, 'Delete', () => api.send('DELETE', path + '/rules/' + enc(r.id)),
      { confirm: `Delete rule ${ruleText(r)}?`, done: 'Rule deleted' }) : '' },
  ], { empty: 'No rules: all ingress is denied, all egress allowed.' });
  body.append(info, section('Rules', rules.el));
  if (mayEdit) body.append(section('Add rule', ruleForm(ctx, path)));
  if (ctx.can('delete', 'securitygroups')) {
    actions.append(button(ctx, 'Delete', async () => { await api.send('DELETE', path); ctx.navigate('#/securitygroups'); },
      { confirm: `Delete security group ${name}?`, done: `Security group ${name} deleted` }));
  }
  return live(body, projectPath(ctx, 'securitygroups'), (items, map) => {
    const g = map.get(ctx.project + '/' + name);
    if (!g) { replace(info, h('p', { class: 'notice', text: `No security group ${name}.` })); rules.update([]); return; }
    replace(info, g.spec.description ? h('p', { text: g.spec.description }) : '');
    rules.update(g.spec.rules || []);
  });
}

function ruleForm(ctx, path) {
  const direction = select(['ingress', 'egress']);
  const protocol = select(['tcp', 'udp', 'icmp', 'all']);
  const portMin = input({ type: 'number', min: 1, max: 65535 });
  const portMax = input({ type: 'number', min: 1, max: 65535, placeholder: 'default: the first port' });
  const remoteKind = select([['cidr', 'Address prefix'], ['group', 'Security group']]);
  const cidr = input({ placeholder: '0.0.0.0/0' });
  const group = input({ placeholder: 'group name (this one included)' });
  const syncPorts = () => {
    const needs = protocol.value === 'tcp' || protocol.value === 'udp';
    portMin.disabled = !needs;
    portMax.disabled = !needs;
  };
  const syncRemote = () => {
    cidr.closest('.field').hidden = remoteKind.value !== 'cidr';
    group.closest('.field').hidden = remoteKind.value !== 'group';
  };
  protocol.addEventListener('change', syncPorts);
  remoteKind.addEventListener('change', syncRemote);
  const f = form([
    field('Direction', direction, 'rule.direction'),
    field('Protocol', protocol, 'rule.protocol'),
    field('First port', portMin, 'rule.portMin'),
    field('Last port', portMax, 'rule.portMax'),
    field('Remote side', remoteKind, ''),
    field('Prefix', cidr, 'rule.cidr'),
    field('Group', group, 'rule.sourceGroup'),
  ], 'Add rule', async () => {
    const rule = { direction: direction.value, protocol: protocol.value };
    if (!portMin.disabled && portMin.value) rule.portMin = Number(portMin.value);
    if (!portMax.disabled && portMax.value) rule.portMax = Number(portMax.value);
    if (remoteKind.value === 'cidr') rule.cidr = cidr.value.trim();
    else rule.sourceGroup = group.value.trim();
    await api.send('POST', path + '/rules', rule);
    ctx.toast('Rule added: ' + ruleText(rule), 'ok');
  });
  syncPorts();
  syncRemote();
  return f;
}

// --- floating IPs ------------------------------------------------------------

function renderFloatingIPs(el, params, ctx) {
  const body = page(el, 'Floating IPs');
  const mayEdit = ctx.can('update', 'floatingips');
  let instances = [];
  const t = table([
    { title: 'Name', cell: (f) => f.metadata.name },
    { title: 'Address', cell: (f) => (f.status && f.status.address) || '' },
    { title: 'Pool', cell: (f) => f.spec.pool || '' },
    { title: 'Instance', cell: (f) => f.spec.instance ? link('/instances/' + enc(f.spec.instance), f.spec.instance) : '' },
    { title: 'Instance IP', cell: (f) => (f.status && f.status.instanceIP) || '' },
    { title: 'Host', cell: (f) => (f.status && f.status.host) || '' },
    { title: 'Actions', show: mayEdit, cell: (f) => actionsOf(f) },
  ], { empty: 'No floating IPs.' });
  const actionsOf = (f) => {
    if (!mayEdit) return '';
    const path = projectPath(ctx, 'floatingips', f.metadata.name);
    const out = h('div', { class: 'button-row' });
    if (f.spec.instance) {
      out.append(button(ctx, 'Disassociate', () => api.send('POST', path + '/disassociate'), { done: 'Disassociated' }));
    } else {
      const pick = select([['', 'instance…'], ...instances], { 'aria-label': 'Instance to associate ' + f.metadata.name + ' with' });
      const go = button(ctx, 'Associate', async () => {
        if (!pick.value) throw new api.ApiError(400, 'InvalidArgument', 'choose an instance first');
        await api.send('POST', path + '/associate', { instance: pick.value });
      }, { done: 'Associated' });
      out.append(pick, go);
    }
    if (ctx.can('delete', 'floatingips')) {
      out.append(button(ctx, 'Release', () => api.send('DELETE', path), { confirm: `Release floating IP ${(f.status && f.status.address) || f.metadata.name}?`, done: 'Released' }));
    }
    return out;
  };
  body.append(t.el);
  if (ctx.can('create', 'floatingips')) {
    const name = input({ autocomplete: 'off' });
    const pool = select([['', '(the only pool)']]);
    api.get(clusterPath('floatingippools')).then((l) => {
      for (const p of l.items || []) pool.append(h('option', { value: p.metadata.name, text: `${p.metadata.name} (${p.spec.start}–${p.spec.end})` }));
    }).catch(() => {});
    body.append(section('Allocate', form([
      field('Name', name, 'metadata.name'),
      field('Pool', pool, 'spec.pool'),
    ], 'Allocate', async (f) => {
      const spec = {};
      if (pool.value) spec.pool = pool.value;
      const out = await api.send('POST', projectPath(ctx, 'floatingips'), { kind: 'FloatingIP', metadata: { name: name.value.trim(), project: ctx.project }, spec });
      ctx.toast(`Allocated ${(out && out.status && out.status.address) || name.value}`, 'ok');
      f.reset();
    })));
  }
  let fips = [];
  const stopI = live(body, projectPath(ctx, 'instances'), (items) => {
    const names = items.filter((i) => i.status && (i.status.interfaces || []).length).map((i) => i.metadata.name);
    if (names.join() === instances.join()) return; // usage updates change nothing here
    instances = names;
    t.update(fips);
  });
  const stopF = live(body, projectPath(ctx, 'floatingips'), (items) => { fips = items; t.update(items); });
  return () => { stopI(); stopF(); };
}

register('/vpcs', { title: 'VPCs', render: renderVPCs });
register('/networks', { title: 'Networks', render: renderNetworks });
register('/networks/:name', { title: 'Network', render: renderNetwork });
register('/securitygroups', { title: 'Security groups', render: renderSecurityGroups });
register('/securitygroups/:name', { title: 'Security group', render: renderSecurityGroup });
register('/floatingips', { title: 'Floating IPs', render: renderFloatingIPs });
