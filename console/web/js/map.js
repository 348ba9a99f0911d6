// The live map (#/map): hosts, their capacity and their instances, kept
// current by the API's watch streams.
import { register, h } from './app.js';

register('map', {
  title: 'Map',
  render(el) {
    el.append(h('h1', {}, 'Map'), h('p', { class: 'muted' }, 'The live map is being built.'));
  },
});
