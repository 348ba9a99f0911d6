// The create-instance form: image, flavor, networks with their security
// groups, key pair, user-data and count, sent as `ouro instance create`
// sends them (count N makes NAME-1 … NAME-N, each create with an
// idempotency key of its content, so a retry makes only what is missing).
// The API's validation messages appear next to the field they name.

import * as api from '../api.js';
import { register } from '../app.js';
import {
  h, page, field, input, select, textarea, form, lines, projectPath, clusterPath, idempotencyKey, replace, enc,
} from './ui.js';

const MAX_COUNT = 100;
const MAX_USERDATA = 16 << 10;

// names returns NAME for one instance, else NAME-1 … NAME-N.
export function instanceNames(name, count) {
  if (count === 1) return [name];
  return Array.from({ length: count }, (_, i) => name + '-' + (i + 1));
}

async function listNames(path) {
  try {
    const l = await api.get(path);
    return (l.items || []).map((o) => o.metadata.name).sort();
  } catch {
    return [];
  }
}

// networkRows holds the interfaces asked for, each a network and its
// security groups, the first the primary.
function networkRows(networks, groups) {
  const rows = h('div', { class: 'rows' });
  const add = (net = '', sgs = []) => {
    const n = select([['', '(choose)'], ...networks], { 'aria-label': 'Network' });
    n.value = net;
    const g = h('select', { multiple: true, size: Math.min(4, Math.max(2, groups.length)), 'aria-label': 'Security groups' },
      groups.map((x) => h('option', { value: x, text: x, selected: sgs.includes(x) })));
    const remove = h('button', { type: 'button', class: 'small', text: 'Remove', 'aria-label': 'Remove this interface' });
    const row = h('div', { class: 'row-inline' }, n, g, remove);
    remove.addEventListener('click', () => row.remove());
    rows.append(row);
  };
  const more = h('button', { type: 'button', class: 'small', text: 'Add interface' });
  more.addEventListener('click', () => add());
  if (networks.includes('default')) add('default', groups.includes('default') ? ['default'] : []);
  return {
    el: h('div', {}, rows, more),
    value() {
      const out = [];
      for (const r of rows.children) {
        const [n, g] = r.querySelectorAll('select');
        if (!n.value) continue;
        const sgs = [...g.selectedOptions].map((o) => o.value);
        out.push(sgs.length ? { network: n.value, securityGroups: sgs } : { network: n.value });
      }
      return out;
    },
  };
}

async function renderCreate(el, params, ctx) {
  const body = page(el, 'Create instance');
  if (!ctx.can('create', 'instances')) {
    body.append(h('p', { class: 'notice', text: 'Your role in this project cannot create instances.' }));
    return;
  }
  body.append(h('p', { text: 'Loading the choices…' }));
  const [own, publicImages, flavors, networks, groups, keys] = await Promise.all([
    listNames(projectPath(ctx, 'images')),
    api.get('/v1/images').then((l) => (l.items || []).filter((i) => i.spec.public && i.metadata.project !== ctx.project)
      .map((i) => i.metadata.project + '/' + i.metadata.name)).catch(() => []),
    api.get(clusterPath('flavors')).then((l) => l.items || []).catch(() => []),
    listNames(projectPath(ctx, 'networks')),
    listNames(projectPath(ctx, 'securitygroups')),
    listNames(projectPath(ctx, 'keypairs')),
  ]);
  const images = [...own, ...publicImages.sort()];
  flavors.sort((a, b) => (a.spec.vcpus - b.spec.vcpus) || (a.spec.memoryMiB - b.spec.memoryMiB));

  const name = input({ name: 'name', required: true, autocomplete: 'off', maxlength: 63, pattern: '[a-z0-9]([-a-z0-9]*[a-z0-9])?' });
  const count = input({ type: 'number', min: 1, max: MAX_COUNT, value: '1' });
  const imageList = h('datalist', { id: 'image-choices' }, images.map((i) => h('option', { value: i })));
  const image = input({ list: 'image-choices', required: true, autocomplete: 'off' });
  const flavor = select([['', '(choose)'], ...flavors.map((f) => [f.metadata.name,
    `${f.metadata.name} — ${f.spec.vcpus} vCPU, ${f.spec.memoryMiB} MiB, ${f.spec.diskGiB} GiB`])]);
  const nets = networkRows(networks, groups);
  const key = select([['', '(none)'], ...keys]);
  const userData = textarea({ rows: 6, spellcheck: 'false', class: 'mono' });
  const userDataFile = h('input', { type: 'file', 'aria-label': 'Read user-data from a file' });
  userDataFile.addEventListener('change', async () => {
    const f = userDataFile.files[0];
    if (f) userData.value = await f.slice(0, MAX_USERDATA + 1).text();
  });
  const env = textarea({ rows: 3, spellcheck: 'false', class: 'mono', placeholder: 'KEY=VALUE, one a line' });
  const command = input({ class: 'mono', placeholder: 'e.g. sleep 3600 (words split at spaces; empty keeps the image\'s)' });
  const result = h('div', { role: 'status' });

  const f = form([
    field('Name', name, 'metadata.name', 'Lower-case letters, digits and dashes; with a count above 1 the instances are NAME-1 … NAME-N.'),
    field('Count', count, 'count'),
    field('Image', h('span', {}, image, imageList), 'spec.image', 'An image of this project, or a public image.'),
    field('Flavor', flavor, 'spec.flavor spec.resources'),
    field('Networks and security groups', nets.el, 'spec.networks', 'The first interface is the primary one; without any, the instance joins network default with group default.'),
    field('Key pair', key, 'spec.keyName spec.publicKeys'),
    field('User-data (cloud-init)', h('div', {}, userData, userDataFile), 'spec.userData', 'At most 16 KiB.'),
    field('Environment', env, 'spec.env'),
    field('Command', command, 'spec.command'),
  ], 'Create', async () => {
    const n = Number(count.value);
    if (!Number.isInteger(n) || n < 1 || n > MAX_COUNT) {
      throw new api.ApiError(400, 'InvalidArgument', `${count.value} is out of range`, 'count', `use 1 to ${MAX_COUNT}`);
    }
    if (!name.value.trim()) throw new api.ApiError(400, 'InvalidArgument', 'required', 'metadata.name', 'name the instance');
    const envs = lines(env.value);
    for (const kv of envs) {
      if (!/^[^=]+=/.test(kv)) throw new api.ApiError(400, 'InvalidArgument', `"${kv}" is not KEY=VALUE`, 'spec.env', '');
    }
    const spec = {
      image: image.value.trim(),
      flavor: flavor.value,
    };
    const argv = command.value.trim().split(/\s+/).filter(Boolean);
    if (argv.length) spec.command = argv;
    if (envs.length) spec.env = envs;
    const ifs = nets.value();
    if (ifs.length) spec.networks = ifs;
    if (key.value) spec.keyName = key.value;
    if (userData.value) spec.userData = userData.value;
    const made = [];
    for (const nm of instanceNames(name.value.trim(), n)) {
      const inst = { kind: 'Instance', metadata: { name: nm, project: ctx.project }, spec };
      try {
        await createOnce(ctx, inst);
      } catch (err) {
        if (made.length) replace(result, h('p', { class: 'notice', text: `Created ${made.join(', ')}; ${nm} failed. Submitting again creates only the missing ones.` }));
        throw err;
      }
      made.push(nm);
    }
    ctx.toast(made.length === 1 ? `Instance ${made[0]} created` : `${made.length} instances created`, 'ok');
    ctx.navigate(made.length === 1 ? '#/instances/' + enc(made[0]) : '#/instances?name=' + enc(name.value.trim()));
  });
  replace(body, f, result);
  name.focus();
}

// createOnce creates inst with the key of its content; when the object that
// key once made was deleted since (404), it is a new request and goes again
// with a fresh key, as the CLI does.
async function createOnce(ctx, inst) {
  const path = projectPath(ctx, 'instances');
  const key = await idempotencyKey(ctx.project, inst);
  try {
    return await api.send('POST', path, inst, { headers: { 'Idempotency-Key': key } });
  } catch (err) {
    if (err.status !== 404 || err.field) throw err;
    return api.send('POST', path, inst, { headers: { 'Idempotency-Key': key + '-' + Date.now().toString(36) } });
  }
}

register('/instances/new', { title: 'Create instance', render: renderCreate });
