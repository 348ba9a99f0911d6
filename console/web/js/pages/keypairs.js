// Key pairs: the list, import of a public key, and create, which makes an
// ed25519 pair in the browser (WebCrypto), registers only the public key
// and shows the private key once in OpenSSH format, as `ouro keypair
// create` prints it. The server never sees the private key.

import * as api from '../api.js';
import { register } from '../app.js';
import { h, replace, page, section, table, live, projectPath, button, field, input, textarea, form, age, secret } from './ui.js';

// sshString encodes bytes as an SSH wire string (uint32 length, bytes).
function sshString(bytes) {
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length);
  out.set(bytes, 4);
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let i = 0;
  for (const p of parts) { out.set(p, i); i += p.length; }
  return out;
}

function uint32(n) {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

function b64(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

const utf8 = (s) => new TextEncoder().encode(s);

// newEd25519 makes a key pair and returns {publicKey (authorized_keys
// line), privateKey (OpenSSH PEM)} with comment as the comment.
export async function newEd25519(comment) {
  const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
  const pub = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', pair.privateKey));
  const seed = pkcs8.slice(pkcs8.length - 32); // the PKCS#8 of Ed25519 ends with the 32-byte seed
  const keyType = utf8('ssh-ed25519');
  const pubBlob = concat(sshString(keyType), sshString(pub));
  const check = crypto.getRandomValues(new Uint8Array(4));
  let priv = concat(check, check, sshString(keyType), sshString(pub), sshString(concat(seed, pub)), sshString(utf8(comment)));
  const pad = [];
  for (let i = 1; (priv.length + pad.length) % 8 !== 0; i++) pad.push(i);
  priv = concat(priv, new Uint8Array(pad));
  const none = utf8('none');
  const body = concat(utf8('openssh-key-v1\0'), sshString(none), sshString(none), sshString(new Uint8Array(0)),
    uint32(1), sshString(pubBlob), sshString(priv));
  const text = b64(body).replace(/.{1,70}/g, '$&\n');
  seed.fill(0);
  return {
    publicKey: 'ssh-ed25519 ' + b64(pubBlob) + ' ' + comment,
    privateKey: '-----BEGIN OPENSSH PRIVATE KEY-----\n' + text + '-----END OPENSSH PRIVATE KEY-----\n',
  };
}

function keyPair(ctx, name, publicKey) {
  return { kind: 'KeyPair', metadata: { name, project: ctx.project }, spec: { publicKey } };
}

function renderKeyPairs(el, params, ctx) {
  const body = page(el, 'Key pairs');
  const shown = h('div');
  const t = table([
    { title: 'Name', cell: (k) => k.metadata.name },
    { title: 'Type', cell: (k) => (k.status && k.status.type) || '' },
    { title: 'Fingerprint', cell: (k) => h('code', { text: (k.status && k.status.fingerprint) || '' }) },
    { title: 'Age', cell: (k) => age(k.metadata.creationTimestamp) },
    { title: '', show: ctx.can('delete', 'keypairs'), cell: (k) => ctx.can('delete', 'keypairs') ? button(ctx, 'Delete', () => api.send('DELETE', projectPath(ctx, 'keypairs', k.metadata.name)),
      { confirm: `Delete key pair ${k.metadata.name}? Instances that have its key keep it.`, done: `Key pair ${k.metadata.name} deleted` }) : '' },
  ], { empty: 'No key pairs.' });
  body.append(shown, t.el);
  if (ctx.can('create', 'keypairs')) {
    const name = input({ autocomplete: 'off' });
    const create = form([field('Name', name, 'metadata.name')], 'Create key pair', async (f) => {
      const n = name.value.trim();
      if (!n) throw new api.ApiError(400, 'InvalidArgument', 'required', 'metadata.name', 'name the key pair');
      let keys;
      try {
        keys = await newEd25519(n);
      } catch (err) {
        throw new api.ApiError(0, 'Unsupported', 'This browser cannot make ed25519 keys: ' + err.message, '',
          'run `ouro keypair create` or import a public key below');
      }
      const out = await api.send('POST', projectPath(ctx, 'keypairs'), keyPair(ctx, n, keys.publicKey));
      replace(shown, secret(ctx, `Private key of ${n} (${(out && out.status && out.status.fingerprint) || 'ed25519'})`, keys.privateKey, n,
        'The server never had it and this page shows it only once: copy or download it now, then keep it with mode 0600 (ssh -i FILE).'));
      keys.privateKey = '';
      f.reset();
      shown.scrollIntoView({ block: 'nearest' });
    });
    const iname = input({ autocomplete: 'off' });
    const pub = textarea({ rows: 3, class: 'mono', placeholder: 'ssh-ed25519 AAAA… you@laptop' });
    const file = h('input', { type: 'file', accept: '.pub', 'aria-label': 'Read the public key from a file' });
    file.addEventListener('change', async () => {
      if (file.files[0]) pub.value = (await file.files[0].slice(0, 8192).text()).trim();
    });
    const imp = form([
      field('Name', iname, 'metadata.name'),
      field('Public key', h('div', {}, pub, file), 'spec.publicKey', 'One OpenSSH authorized_keys line: ed25519, ecdsa, or RSA of at least 2048 bits.'),
    ], 'Import', async (f) => {
      await api.send('POST', projectPath(ctx, 'keypairs'), keyPair(ctx, iname.value.trim(), pub.value.trim()));
      ctx.toast(`Key pair ${iname.value.trim()} imported`, 'ok');
      f.reset();
    });
    body.append(section('Create a new key pair', h('p', { class: 'field-help', text: 'An ed25519 pair is made in this browser; only the public key is sent.' }), create),
      section('Import a public key', imp));
  }
  return live(body, projectPath(ctx, 'keypairs'), (items) => t.update(items));
}

register('/keypairs', { title: 'Key pairs', render: renderKeyPairs });
