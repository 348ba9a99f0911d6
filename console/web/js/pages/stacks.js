// Stacks, read-only: the list, and a stack's page with its resources and
// their state, outputs, and drift (reported and corrected differences
// between the objects it owns and its spec). Stacks change through
// `ouro stack apply`.

import { register } from '../app.js';
import { h, replace, page, section, dl, table, live, link, projectPath, age, enc, phase } from './ui.js';

const routes = { Instance: 'instances', InstanceGroup: 'groups', Network: 'networks', SecurityGroup: 'securitygroups', LoadBalancer: 'loadbalancers' };

function resourceLink(kind, name) {
  return routes[kind] ? link('/' + routes[kind] + '/' + enc(name), name) : name;
}

function renderList(el, params, ctx) {
  const body = page(el, 'Stacks');
  const t = table([
    { title: 'Name', cell: (s) => link('/stacks/' + enc(s.metadata.name), s.metadata.name) },
    { title: 'Phase', cell: (s) => phase((s.status && s.status.phase) || 'Pending') },
    { title: 'Resources', cell: (s) => String((s.spec.resources || []).length) },
    { title: 'Drift', cell: (s) => String(((s.status && s.status.drift) || []).length) },
    { title: 'Applied by', cell: (s) => s.spec.appliedBy || '' },
    { title: 'Age', cell: (s) => age(s.metadata.creationTimestamp) },
  ], { empty: 'No stacks. Apply one with `ouro stack apply`.' });
  body.append(t.el);
  return live(body, projectPath(ctx, 'stacks'), (items) => t.update(items));
}

function renderDetail(el, params, ctx) {
  const name = params.name;
  const body = page(el, 'Stack ' + name);
  const info = h('div');
  const resources = table([
    { title: 'Kind', cell: (r) => r.kind },
    { title: 'Name', cell: (r) => resourceLink(r.kind, r.name) },
    { title: 'State', cell: (r) => phase(r.state) },
    { title: 'Message', cell: (r) => r.message || '', class: 'wide' },
    { title: 'Defaulted', cell: (r) => (r.defaulted || []).map((d) => `${d.field}=${d.got}`).join(', ') },
  ], { empty: 'No resources yet.' });
  const outputs = table([
    { title: 'Output', cell: ([k]) => k },
    { title: 'Value', cell: ([, v]) => h('code', { text: v }) },
  ], { empty: 'No outputs.' });
  const drift = table([
    { title: 'Kind', cell: (d) => d.kind },
    { title: 'Name', cell: (d) => resourceLink(d.kind, d.name) },
    { title: 'Field', cell: (d) => d.field ? h('code', { text: d.field }) : '' },
    { title: 'Stack wants', cell: (d) => d.want || '' },
    { title: 'Found', cell: (d) => d.got || '' },
    { title: 'Corrected', cell: (d) => d.corrected ? 'yes' : 'no' },
    { title: 'Seen', cell: (d) => d.seen ? age(d.seen) : '' },
  ], { empty: 'No drift.' });
  body.append(info, section('Resources', resources.el), section('Outputs', outputs.el), section('Drift', drift.el));
  return live(body, projectPath(ctx, 'stacks'), (items, map) => {
    const s = map.get(ctx.project + '/' + name);
    if (!s) { replace(info, h('p', { class: 'notice', text: `No stack ${name}.` })); return; }
    const st = s.status || {};
    replace(info, section('Stack', dl([
      ['Phase', phase(st.phase || 'Pending')], ['Message', st.message || ''],
      ['Drift mode', s.spec.drift || 'correct'], ['Generation', `${s.metadata.generation || 0} (applied ${st.observedGeneration || 0})`],
      ['Parameters', Object.entries(s.spec.parameters || {}).map(([k, v]) => k + '=' + v).join(', ')],
      ['Applied by', s.spec.appliedBy || ''], ['Created', age(s.metadata.creationTimestamp) + ' ago'],
    ])));
    resources.update(st.resources || []);
    outputs.update(Object.entries(st.outputs || {}).sort());
    drift.update(st.drift || []);
  });
}

register('/stacks', { title: 'Stacks', render: renderList });
register('/stacks/:name', { title: 'Stack', render: renderDetail });
