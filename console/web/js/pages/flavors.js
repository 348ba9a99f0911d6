// Flavors: the named sizes of instances. Everyone reads them; cluster
// admins create and delete them.

import * as api from '../api.js';
import { register } from '../app.js';
import { page, section, table, live, clusterPath, button, field, input, form, age } from './ui.js';

function renderFlavors(el, params, ctx) {
  const body = page(el, 'Flavors');
  const t = table([
    { title: 'Name', cell: (f) => f.metadata.name },
    { title: 'vCPUs', cell: (f) => String(f.spec.vcpus) },
    { title: 'Memory', cell: (f) => f.spec.memoryMiB + ' MiB' },
    { title: 'Disk', cell: (f) => f.spec.diskGiB + ' GiB' },
    { title: 'Age', cell: (f) => age(f.metadata.creationTimestamp) },
    { title: '', show: ctx.can('delete', 'flavors'), cell: (f) => ctx.can('delete', 'flavors') ? button(ctx, 'Delete', () => api.send('DELETE', clusterPath('flavors', f.metadata.name)),
      { confirm: `Delete flavor ${f.metadata.name}? Instances keep their size.`, done: `Flavor ${f.metadata.name} deleted` }) : '' },
  ], { empty: 'No flavors.' });
  body.append(t.el);
  if (ctx.can('create', 'flavors')) {
    const name = input({ autocomplete: 'off' });
    const vcpus = input({ type: 'number', min: 1, value: '1' });
    const mem = input({ type: 'number', min: 1, value: '512' });
    const disk = input({ type: 'number', min: 0, value: '10' });
    body.append(section('Create flavor', form([
      field('Name', name, 'metadata.name'),
      field('vCPUs', vcpus, 'spec.vcpus'),
      field('Memory (MiB)', mem, 'spec.memoryMiB'),
      field('Disk (GiB)', disk, 'spec.diskGiB'),
    ], 'Create', async (f) => {
      await api.send('POST', clusterPath('flavors'), {
        kind: 'Flavor', metadata: { name: name.value.trim() },
        spec: { vcpus: Number(vcpus.value), memoryMiB: Number(mem.value), diskGiB: Number(disk.value) },
      });
      ctx.toast(`Flavor ${name.value.trim()} created`, 'ok');
      f.reset();
    })));
  }
  return live(body, clusterPath('flavors'), (items) => {
    t.update(items.sort((a, b) => (a.spec.vcpus - b.spec.vcpus) || (a.spec.memoryMiB - b.spec.memoryMiB)));
  });
}

register('/flavors', { title: 'Flavors', render: renderFlavors });
