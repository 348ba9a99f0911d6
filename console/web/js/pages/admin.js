// Projects, users and tokens. Everyone sees the projects they have a role
// in; cluster admins create and delete projects, manage users and their
// roles, and revoke tokens. Project admins issue tokens for their project
// (POST /v1/tokens grants the role and returns the secret once, as
// `ouro token create` prints it).

import * as api from '../api.js';
import { register } from '../app.js';
import {
  h, replace, page, section, table, live, clusterPath, button, field, input, select, form, age, secret, update,
} from './ui.js';

const roles = ['viewer', 'member', 'admin'];

function renderProjects(el, params, ctx) {
  const body = page(el, 'Projects');
  const shown = h('div');
  const t = table([
    { title: 'Name', cell: (p) => p.metadata.name + (p.metadata.name === ctx.project ? ' (current)' : '') },
    { title: 'Description', cell: (p) => p.spec.description || '', class: 'wide' },
    { title: 'Your role', cell: (p) => ctx.me.clusterAdmin ? 'cluster admin' : (ctx.me.projects[p.metadata.name] || '') },
    { title: 'Age', cell: (p) => age(p.metadata.creationTimestamp) },
    { title: '', show: ctx.can('delete', 'projects'), cell: (p) => ctx.can('delete', 'projects') ? button(ctx, 'Delete', () => api.send('DELETE', clusterPath('projects', p.metadata.name)),
      { confirm: `Delete project ${p.metadata.name}? Only a project without instances, images and floating IPs can go.`, done: `Project ${p.metadata.name} deleted` }) : '' },
  ], { empty: 'No projects.' });
  body.append(t.el);
  if (ctx.can('create', 'projects')) {
    const name = input({ autocomplete: 'off' });
    const desc = input();
    body.append(section('Create project', form([
      field('Name', name, 'metadata.name'),
      field('Description', desc, 'spec.description'),
    ], 'Create', async (f) => {
      await api.send('POST', clusterPath('projects'), { kind: 'Project', metadata: { name: name.value.trim() }, spec: { description: desc.value.trim() } });
      ctx.toast(`Project ${name.value.trim()} created; reload to pick it in the top bar`, 'ok');
      f.reset();
    })));
  }
  if (ctx.project && ctx.can('grant', 'tokens') && !ctx.me.clusterAdmin) {
    body.append(section(`Issue a token for project ${ctx.project}`, shown, tokenForm(ctx, shown, false)));
  }
  return live(body, clusterPath('projects'), (items) => t.update(items));
}

// tokenForm issues a token: for a user (created if missing) with a role in
// a project; the secret is shown once in shown.
function tokenForm(ctx, shown, anyProject) {
  const user = input({ autocomplete: 'off', placeholder: 'default: a new user <project>-<role>-<random>' });
  const project = anyProject ? input({ value: ctx.project }) : null;
  const role = select(roles);
  const ttl = input({ placeholder: 'e.g. 720h; empty: no expiry' });
  const desc = input();
  return form([
    field('User', user, 'user'),
    project ? field('Project', project, 'project') : null,
    field('Role', role, 'role'),
    field('Valid for', ttl, 'ttl'),
    field('Description', desc, 'description'),
  ], 'Issue token', async (f) => {
    const p = project ? project.value.trim() : ctx.project;
    const req = { user: user.value.trim() || newUserName(p, role.value), project: p, role: role.value, description: desc.value.trim() };
    if (ttl.value.trim()) req.ttl = ttl.value.trim();
    const tok = await api.send('POST', clusterPath('tokens'), req);
    const expiry = tok.spec && tok.spec.expiresAt ? 'valid until ' + new Date(tok.spec.expiresAt).toLocaleString() : 'never expires';
    replace(shown, secret(ctx, `Token for user ${req.user}, ${req.role} in project ${p} (${expiry})`, tok.status.secret, 'ouro-token-' + req.user,
      'Store it now: it is not shown again. Use it with --token, OURO_TOKEN, or to sign in here.'));
    f.reset();
    shown.scrollIntoView({ block: 'nearest' });
  });
}

// newUserName is <project>-<role>-<5 random letters or digits>, as the CLI
// names the user of a token given without --user.
function newUserName(project, role) {
  const letters = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const b = crypto.getRandomValues(new Uint8Array(5));
  let prefix = project + '-' + role;
  if (prefix.length > 63 - 6) prefix = prefix.slice(0, 63 - 6).replace(/-+$/, '');
  return prefix + '-' + [...b].map((x) => letters[x % letters.length]).join('');
}

function rolesText(u) {
  return Object.keys(u.spec.roles || {}).sort().map((p) => p + '=' + u.spec.roles[p]).join(', ');
}

function renderUsers(el, params, ctx) {
  const body = page(el, 'Users and tokens');
  if (!ctx.me.clusterAdmin) {
    body.append(h('p', { class: 'notice', text: 'Only cluster admins manage users.' }));
    return undefined;
  }
  const shown = h('div');
  const users = table([
    { title: 'Name', cell: (u) => u.metadata.name },
    { title: 'Cluster admin', cell: (u) => u.spec.clusterAdmin ? 'yes' : 'no' },
    { title: 'Roles', cell: (u) => rolesCell(ctx, u), class: 'wide' },
    { title: 'Password', cell: (u) => u.status && u.status.passwordSet ? 'set' : 'none' },
    { title: 'Age', cell: (u) => age(u.metadata.creationTimestamp) },
    { title: '', cell: (u) => u.metadata.name === ctx.me.user ? '' : button(ctx, 'Delete', () => api.send('DELETE', clusterPath('users', u.metadata.name)),
      { confirm: `Delete user ${u.metadata.name}? Their tokens stop working.`, done: `User ${u.metadata.name} deleted` }) },
  ], { empty: 'No users.' });
  const tokens = table([
    { title: 'Name', cell: (t) => h('code', { text: t.metadata.name }) },
    { title: 'For', cell: (t) => t.spec.user ? 'user ' + t.spec.user : 'host ' + (t.spec.host || '?') },
    { title: 'Description', cell: (t) => t.spec.description || '', class: 'wide' },
    { title: 'Expires', cell: (t) => t.spec.expiresAt ? new Date(t.spec.expiresAt).toLocaleString() : 'never' },
    { title: 'Age', cell: (t) => age(t.metadata.creationTimestamp) },
    { title: '', cell: (t) => button(ctx, 'Revoke', () => api.send('DELETE', clusterPath('tokens', t.metadata.name)),
      { confirm: `Revoke token ${t.metadata.name}${t.spec.host ? ' of host ' + t.spec.host + ' (its agent loses access)' : ''}?`, done: 'Token revoked' }) },
  ], { empty: 'No tokens.' });
  body.append(section('Users', users.el, grantForm(ctx)),
    section('Set a console password', passwordForm(ctx)),
    section('Issue a token', shown, tokenForm(ctx, shown, true)),
    section('Tokens', tokens.el));
  const stopU = live(body, clusterPath('users'), (items) => users.update(items));
  const stopT = live(body, clusterPath('tokens'), (items) => tokens.update(items));
  return () => { stopU(); stopT(); };
}

function rolesCell(ctx, u) {
  const list = h('ul', { class: 'plain' });
  for (const p of Object.keys(u.spec.roles || {}).sort()) {
    list.append(h('li', {}, `${p}: ${u.spec.roles[p]} `, button(ctx, 'Revoke', () => update(clusterPath('users', u.metadata.name), (x) => {
      delete (x.spec.roles || {})[p];
    }), { confirm: `Take ${u.metadata.name}'s role in ${p}?`, done: 'Role revoked', class: 'small' })));
  }
  return list.children.length ? list : rolesText(u);
}

// grantForm gives a user a role in a project (the user must exist; a token
// issued below makes one).
function grantForm(ctx) {
  const user = input({ autocomplete: 'off' });
  const project = input({ value: ctx.project });
  const role = select(roles);
  return form([
    field('User', user, 'metadata.name'),
    field('Project', project, 'spec.roles'),
    field('Role', role, ''),
  ], 'Grant role', async (f) => {
    const u = user.value.trim();
    const p = project.value.trim();
    await update(clusterPath('users', u), (x) => { x.spec.roles = { ...(x.spec.roles || {}), [p]: role.value }; });
    ctx.toast(`${u} is ${role.value} in ${p}`, 'ok');
    f.reset();
    project.value = ctx.project;
  });
}

// passwordForm sets a user's console password (PUT /v1/users/NAME/password,
// as `ouro user passwd`); it ends the user's password sessions.
function passwordForm(ctx) {
  const user = input({ autocomplete: 'off' });
  const pw = input({ type: 'password', autocomplete: 'new-password', minlength: 12 });
  const again = input({ type: 'password', autocomplete: 'new-password' });
  return form([
    field('User', user, 'metadata.name user'),
    field('Password', pw, 'password', 'At least 12 characters.'),
    field('Again', again, 'again'),
  ], 'Set password', async (f) => {
    if (pw.value !== again.value) throw new api.ApiError(400, 'InvalidArgument', 'the passwords differ', 'again', 'type the same password twice');
    const u = user.value.trim();
    await api.send('PUT', clusterPath('users', u, 'password'), { password: pw.value });
    ctx.toast(`Password of ${u} set; their password sessions ended`, 'ok');
    f.reset();
  });
}

register('/projects', { title: 'Projects', render: renderProjects });
register('/users', { title: 'Users', render: renderUsers });
