// Images: the list, delete, and upload of a file with progress, through
// the blob API as `ouro image import` does it: hash the file (SHA-256),
// ask whether the server already holds the blob (HEAD), send it (PUT
// /v1/blobs/sha256:HEX), then create the Image naming it, with an
// idempotency key derived from project, name and content.
//
// The browser takes a qcow2 or raw disk, or a root filesystem tarball
// (plain or gzip) as a one-layer container image; anything else needs the
// CLI, which also reads OCI layouts, docker save archives and registries.

import * as api from '../api.js';
import { register } from '../app.js';
import { h, replace, page, section, table, live, projectPath, button, field, input, select, form, age, bytes } from './ui.js';
import { hashFile } from './sha256.js';

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const formats = {
  qcow2: { mediaType: 'application/vnd.ouro.disk.qcow2', format: 'qcow2' },
  raw: { mediaType: 'application/vnd.ouro.disk.raw', format: 'raw' },
  tar: { mediaType: 'application/vnd.oci.image.layer.v1.tar', format: 'oci' },
  targz: { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', format: 'oci' },
};

// detect tells a file's kind from its first bytes and name, as the CLI
// does: the qcow2 magic, gzip, a tar header; *.img and *.raw are raw disks.
export async function detect(file) {
  const head = new Uint8Array(await file.slice(0, 512).arrayBuffer());
  if (head[0] === 0x51 && head[1] === 0x46 && head[2] === 0x49 && head[3] === 0xfb) return 'qcow2';
  if (head[0] === 0x1f && head[1] === 0x8b) return 'targz';
  if (String.fromCharCode(...head.slice(257, 262)) === 'ustar') return 'tar';
  if (/\.(img|raw)$/i.test(file.name)) return 'raw';
  return '';
}

function renderImages(el, params, ctx) {
  const body = page(el, 'Images');
  const t = table([
    { title: 'Name', cell: (i) => i.metadata.name },
    { title: 'Format', cell: (i) => i.spec.format },
    { title: 'Arch', cell: (i) => i.spec.architecture || 'any' },
    { title: 'Size', cell: (i) => bytes((i.status && i.status.size) || 0) },
    { title: 'Public', cell: (i) => i.spec.public ? 'yes' : 'no' },
    { title: 'Phase', cell: (i) => (i.status && i.status.phase) || '' },
    { title: 'Source', cell: (i) => i.spec.source || i.spec.description || '', class: 'wide' },
    { title: 'Age', cell: (i) => age(i.metadata.creationTimestamp) },
    { title: '', show: ctx.can('delete', 'images'), cell: (i) => ctx.can('delete', 'images') ? button(ctx, 'Delete', () => api.send('DELETE', projectPath(ctx, 'images', i.metadata.name)),
      { confirm: `Delete image ${i.metadata.name}?`, done: `Image ${i.metadata.name} deleted` }) : '' },
  ], { empty: 'No images. Upload one below, or use `ouro image import`.' });
  body.append(t.el);
  if (ctx.can('create', 'images')) body.append(section('Upload an image', uploadForm(ctx)));
  return live(body, projectPath(ctx, 'images'), (items) => t.update(items));
}

function uploadForm(ctx) {
  const name = input({ autocomplete: 'off' });
  const file = h('input', { type: 'file' });
  const kind = select([['', 'Detect from the file'], ['qcow2', 'qcow2 disk'], ['raw', 'Raw disk'],
    ['tar', 'Root filesystem tarball'], ['targz', 'Root filesystem tarball (gzip)']]);
  const desc = input();
  const pub = h('input', { type: 'checkbox' });
  const bar = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'Upload progress' });
  const status = h('p', { class: 'field-help', role: 'status' });
  const cancel = h('button', { type: 'button', text: 'Cancel', hidden: true });
  let controller = null;
  cancel.addEventListener('click', () => { if (controller) controller.abort(); });
  file.addEventListener('change', () => {
    if (!name.value && file.files[0]) {
      name.value = file.files[0].name.toLowerCase().replace(/\.(qcow2|img|raw|tar|tgz|tar\.gz|gz)$/g, '').replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
    }
  });
  const fields = [
    field('Name', name, 'metadata.name'),
    field('File', file, 'spec.disk spec.layers', 'A qcow2 or raw (*.img, *.raw) disk, or a root filesystem tarball.'),
    field('Kind', kind, 'spec.format'),
    field('Description', desc, 'spec.description'),
  ];
  if (ctx.me && ctx.me.clusterAdmin) fields.push(field('Public (every project may use it)', pub, 'spec.public'));
  const f = form([...fields, h('div', { class: 'progress-line' }, bar, cancel), status], 'Upload', async () => {
    const fl = file.files[0];
    const n = name.value.trim();
    if (!fl) throw new api.ApiError(400, 'InvalidArgument', 'choose a file', 'spec.disk');
    if (!n) throw new api.ApiError(400, 'InvalidArgument', 'required', 'metadata.name', 'name the image');
    const k = kind.value || await detect(fl);
    if (!k) {
      throw new api.ApiError(400, 'InvalidArgument', `${fl.name} is no qcow2 disk, tarball or *.img/*.raw file`, 'spec.format',
        'choose the kind, or use `ouro image import` for OCI layouts, docker save archives and registries');
    }
    if (k === 'raw' && fl.size % 512 !== 0) {
      throw new api.ApiError(400, 'InvalidArgument', `a raw disk is a whole number of 512-byte sectors; ${fl.name} has ${fl.size} bytes`, 'spec.disk');
    }
    controller = new AbortController();
    cancel.hidden = false;
    bar.hidden = false;
    try {
      const img = await upload(ctx, n, fl, k, { description: desc.value.trim(), public: pub.checked }, controller.signal, (phase, done, total) => {
        bar.max = total || 1;
        bar.value = done;
        status.textContent = `${phase}: ${bytes(done)} of ${bytes(total)} (${total ? Math.floor((done / total) * 100) : 100}%)`;
      });
      status.textContent = `Image ${img.metadata.name} created (${bytes((img.status && img.status.size) || fl.size)}).`;
      ctx.toast(`Image ${n} uploaded`, 'ok');
      f.reset();
    } catch (err) {
      status.textContent = err.name === 'AbortError' ? 'Cancelled.' : '';
      if (err.name !== 'AbortError') throw err;
    } finally {
      cancel.hidden = true;
      bar.hidden = true;
      controller = null;
    }
  });
  return f;
}

// upload hashes file, sends it as a blob unless the server has it, and
// creates the image. progress(phase, done, total) follows each step.
async function upload(ctx, name, file, kind, opts, signal, progress) {
  const hex = await hashFile(file, (d, t) => progress('Reading', d, t), signal);
  const digest = 'sha256:' + hex;
  const blobPath = '/v1/blobs/' + digest;
  let has = false;
  try {
    await api.send('HEAD', blobPath, undefined, { signal });
    has = true;
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    if (err.status !== 404) throw err;
  }
  if (!has) await putBlob(blobPath, file, signal, (d) => progress('Uploading', d, file.size));
  progress('Creating the image', file.size, file.size);
  const fmt = formats[kind];
  const blob = { digest, size: file.size, mediaType: fmt.mediaType };
  const spec = { format: fmt.format, source: file.name };
  if (fmt.format === 'oci') {
    spec.layers = [blob];
    spec.config = { cmd: ['/bin/sh'], env: [DEFAULT_PATH] };
  } else {
    spec.disk = blob;
  }
  if (opts.description) spec.description = opts.description;
  if (opts.public) spec.public = true;
  const obj = { kind: 'Image', metadata: { name, project: ctx.project }, spec };
  const key = await importKey(ctx.project, name, digest, fmt.format);
  const path = projectPath(ctx, 'images');
  try {
    return await api.send('POST', path, obj, { headers: { 'Idempotency-Key': key }, signal });
  } catch (err) {
    if (err.status !== 404 || err.field) throw err;
    return api.send('POST', path, obj, { headers: { 'Idempotency-Key': key + '-' + Date.now().toString(36) }, signal });
  }
}

// importKey is the idempotency key of an image create, made as the CLI
// makes it: project, name, the blob digests and, for a VM image, its format
// and (empty) command line, each ended by a zero byte.
async function importKey(project, name, digest, format) {
  const parts = [project, name, digest];
  if (format !== 'oci') parts.push(format, '');
  const data = new TextEncoder().encode(parts.map((s) => s + '\u0000').join(''));
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', data));
  return 'image-import-' + [...d].map((b) => b.toString(16).padStart(2, '0')).join('').slice(0, 32);
}

// putBlob sends file with XMLHttpRequest, the one browser API that reports
// upload progress.
function putBlob(path, file, signal, progress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', path);
    xhr.withCredentials = true;
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.setRequestHeader('X-CSRF-Token', api.csrfToken());
    xhr.upload.addEventListener('progress', (e) => progress(e.loaded));
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) { resolve(); return; }
      let e = {};
      try { e = JSON.parse(xhr.responseText).error || {}; } catch { /* not JSON */ }
      reject(new api.ApiError(xhr.status, e.code, e.message || `upload failed: HTTP ${xhr.status}`, e.field || 'spec.disk', e.hint));
    });
    xhr.addEventListener('error', () => reject(new api.ApiError(0, 'Unavailable', 'the upload was cut', 'spec.disk', 'try again: the server checks the content by its digest')));
    xhr.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
    if (signal) signal.addEventListener('abort', () => xhr.abort());
    xhr.send(file);
  });
}

register('/images', { title: 'Images', render: renderImages });
