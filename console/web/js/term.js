// The terminal: a virtual machine's serial console, or commands run in a
// container, in xterm.js, at #/instances/NAME/console.
//
// A VM's console is one WebSocket, GET .../instances/NAME/console?ws=1,
// carrying the serial line's bytes both ways as binary messages. A
// container has no console: the page runs a shell in it on a terminal,
// GET .../instances/NAME/exec?ws=1&tty=1&command=/bin/sh&rows=R&cols=C,
// with the terminal's bytes as binary messages, resizes as text messages
// {"cols","rows"} and the shell's exit code as {"exitCode"}. Both sign in
// with the session cookie and offer the session's CSRF token as the
// subprotocol csrf.<token> (docs/console.md, "Terminal").
//
// xterm.js and its fit addon are not ours: make console-assets copies
// them into vendor/ from npm (console/package.json). They are loaded here,
// as scripts of this origin, only when a terminal is opened.
import * as api from './api.js';
import { register, h } from './app.js';

const enc = encodeURIComponent;
const encoder = new TextEncoder();

let vendor = null; // a promise of {Terminal, FitAddon}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.append(s);
  });
}

// loadXterm loads xterm.js, its stylesheet and the fit addon once.
function loadXterm() {
  if (!vendor) {
    vendor = (async () => {
      if (!document.querySelector('link[data-xterm]')) {
        document.head.append(h('link', { rel: 'stylesheet', href: 'vendor/xterm.css', 'data-xterm': true }));
      }
      await loadScript('vendor/xterm.js');
      await loadScript('vendor/addon-fit.js');
      if (!window.Terminal || !window.FitAddon) throw new Error('vendor/xterm.js did not define Terminal');
      return { Terminal: window.Terminal, FitAddon: window.FitAddon.FitAddon };
    })();
    vendor.catch(() => { vendor = null; });
  }
  return vendor;
}

// mirrorStyles applies the <style> elements xterm.js writes into el (its
// row sizes and colours), which the console's Content-Security-Policy
// (style-src 'self', no inline styles) keeps the browser from applying,
// as constructed stylesheets, which that policy allows. It returns a
// function that stops.
function mirrorStyles(el) {
  if (!('adoptedStyleSheets' in document) || typeof CSSStyleSheet !== 'function') return () => {};
  const sheets = new Map(); // <style> → CSSStyleSheet
  const sync = () => {
    for (const style of el.querySelectorAll('style')) {
      let sheet = sheets.get(style);
      if (!sheet) {
        sheet = new CSSStyleSheet();
        sheets.set(style, sheet);
        document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
      }
      if (sheet.text !== style.textContent) {
        sheet.text = style.textContent;
        try {
          sheet.replaceSync(style.textContent);
        } catch (e) {
          console.error('terminal: style', e);
        }
      }
    }
  };
  const obs = new MutationObserver(sync);
  obs.observe(el, { subtree: true, childList: true, characterData: true });
  sync();
  return () => {
    obs.disconnect();
    const mine = new Set(sheets.values());
    document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => !mine.has(s));
  };
}

function wsURL(path, params) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}?${params}`;
}

// open starts a WebSocket signed in by the session cookie, with the CSRF
// token as a subprotocol.
function open(path, params) {
  const ws = new WebSocket(wsURL(path, params), ['ouro-terminal', `csrf.${api.me.csrfToken}`]);
  ws.binaryType = 'arraybuffer';
  return ws;
}

function closeReason(ev) {
  if (ev.code === 1000 || ev.code === 1005) return ev.reason || 'closed';
  if (ev.code === 1006) return 'the connection was refused or lost (is the instance running, and may you open its console?)';
  return `${ev.reason || 'closed'} (code ${ev.code})`;
}

register('instances/:name/console', {
  title: 'Console',
  async render(el, params, ctx) {
    const name = params.name;
    const back = h('a', { href: `#/instances/${enc(name)}` }, `← ${name}`);
    el.append(h('p', { class: 'muted' }, back), h('h1', {}, 'Console: ', h('code', {}, name)));
    if (!ctx.can('exec', 'instances')) {
      const role = ctx.me.projects[ctx.project] || 'no role';
      el.append(h('p', { class: 'error', role: 'alert' }, `Your role in ${ctx.project} (${role}) may not open an instance's console or run commands in it.`));
      return undefined;
    }
    const path = api.projectPath(ctx.project, 'instances', name);
    const inst = await api.get(path, { signal: ctx.signal });
    const st = inst.status || {};
    const vm = st.driver === 'vm';

    const status = h('span', { class: 'term-status badge', role: 'status', 'aria-live': 'polite' }, 'Connecting…');
    const about = h('p', { class: 'term-about' });
    const reconnect = h('button', { type: 'button', class: 'button', disabled: true }, 'Reconnect');
    const box = h('div', { class: 'term', 'aria-label': vm ? `Serial console of ${name}` : `Shell in ${name}` });
    el.append(about, h('div', { class: 'toolbar' }, status, reconnect), box);
    if (st.phase !== 'Running') {
      about.after(h('p', { class: 'error', role: 'alert' }, `${name} is ${st.phase || 'not running'}: the console connects once it is Running. Start it, then press Reconnect.`));
    }
    const who = `${ctx.me.user} (${ctx.me.clusterAdmin ? 'cluster admin' : ctx.me.projects[ctx.project]})`;
    if (vm) {
      about.append('Serial console of virtual machine ', h('strong', {}, name), ` on host ${st.host || '?'}, project ${ctx.project}, as ${who}. `,
        'What you type goes to the VM; leaving the page detaches, the VM goes on running.');
    } else {
      about.append('A shell (', h('code', {}, '/bin/sh'), ') on a terminal in container ', h('strong', {}, name),
        ` on host ${st.host || '?'}, project ${ctx.project}, as ${who}, as `, h('code', {}, `ouro instance exec -it ${name} -- sh`),
        ' gives. Ctrl-C goes to the command running; leaving the page or reconnecting hangs the shell up and ends what it runs.');
    }

    let xt;
    try {
      xt = await loadXterm();
    } catch (e) {
      status.textContent = 'Not available';
      box.replaceWith(h('div', { class: 'error', role: 'alert' },
        h('strong', {}, 'The terminal is not built into this server.'),
        h('div', { class: 'error-hint' }, 'Run ', h('code', {}, 'make console-assets'), ' (then ', h('code', {}, 'make'),
          ') to install xterm.js with npm and embed it; the command line has ',
          h('code', {}, vm ? `ouro instance console ${name}` : `ouro instance exec -it ${name} -- sh`), '.')));
      return undefined;
    }
    if (ctx.signal.aborted) return undefined;

    const stopStyles = mirrorStyles(box);
    const term = new xt.Terminal({ cursorBlink: true, scrollback: 5000,
      fontFamily: getComputedStyle(document.documentElement).getPropertyValue('--mono').trim() || 'monospace' });
    const fit = new xt.FitAddon();
    term.loadAddon(fit);
    term.open(box);
    const refit = () => {
      try {
        fit.fit();
      } catch {
        // not laid out yet
      }
    };
    refit();
    const resized = new ResizeObserver(refit);
    resized.observe(box);

    const setStatus = (text, cls) => {
      status.textContent = text;
      status.className = `term-status badge ${cls}`;
    };
    const session = (vm ? serialConsole : containerShell)(term, path, setStatus, reconnect);
    reconnect.addEventListener('click', () => {
      session.connect();
      term.focus();
    });
    session.connect();
    term.focus();
    return () => {
      session.close();
      resized.disconnect();
      term.dispose();
      stopStyles();
    };
  },
});

// serialConsole connects term to a VM's serial console.
function serialConsole(term, path, setStatus, reconnect) {
  let ws = null;
  const send = (data) => {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(data);
  };
  term.onData((d) => send(encoder.encode(d)));
  term.onBinary((d) => send(Uint8Array.from(d, (c) => c.charCodeAt(0))));
  term.onResize(({ cols, rows }) => send(JSON.stringify({ cols, rows })));
  return {
    connect() {
      if (ws) ws.close();
      reconnect.disabled = true;
      setStatus('Connecting…', 'term-connecting');
      const conn = open(`${path}/console`, 'ws=1');
      ws = conn;
      conn.onopen = () => {
        setStatus('Connected', 'term-connected');
        term.writeln('\x1b[2m[connected; press Enter for a prompt]\x1b[0m');
      };
      conn.onmessage = (ev) => {
        if (ev.data instanceof ArrayBuffer) term.write(new Uint8Array(ev.data));
      };
      conn.onclose = (ev) => {
        if (ws !== conn) return;
        ws = null;
        setStatus('Disconnected', 'term-disconnected');
        term.writeln(`\r\n\x1b[2m[disconnected: ${closeReason(ev)}]\x1b[0m`);
        reconnect.disabled = false;
      };
    },
    close() {
      if (ws) {
        const conn = ws;
        ws = null;
        conn.close();
      }
    },
  };
}

// containerShell runs /bin/sh in the container on a terminal of term's
// size: keystrokes go to it as binary messages, term's resizes as text
// messages {"cols","rows"}, and the shell's exit code comes back as the
// text message {"exitCode"}. Leaving the page or reconnecting hangs the
// shell up.
function containerShell(term, path, setStatus, reconnect) {
  let ws = null;
  const send = (data) => {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(data);
  };
  term.onData((d) => send(encoder.encode(d)));
  term.onBinary((d) => send(Uint8Array.from(d, (c) => c.charCodeAt(0))));
  term.onResize(({ cols, rows }) => send(JSON.stringify({ cols, rows })));
  return {
    connect() {
      if (ws) ws.close();
      reconnect.disabled = true;
      setStatus('Connecting…', 'term-connecting');
      const params = new URLSearchParams([['ws', '1'], ['tty', '1'], ['command', '/bin/sh'],
        ['rows', String(term.rows)], ['cols', String(term.cols)]]);
      const conn = open(`${path}/exec`, params.toString());
      ws = conn;
      let ended = '';
      conn.onopen = () => {
        setStatus('Connected', 'term-connected');
        // The page may have been fitted while connecting.
        send(JSON.stringify({ cols: term.cols, rows: term.rows }));
      };
      conn.onmessage = (ev) => {
        if (ev.data instanceof ArrayBuffer) {
          term.write(new Uint8Array(ev.data));
          return;
        }
        let msg = {};
        try {
          msg = JSON.parse(ev.data);
        } catch {
          return;
        }
        if (msg.error) ended = `\x1b[31m[${msg.error}]\x1b[0m`;
        if (typeof msg.exitCode === 'number') ended = `\x1b[2m[the shell exited with code ${msg.exitCode}]\x1b[0m`;
      };
      conn.onclose = (ev) => {
        if (ws !== conn) return;
        ws = null;
        setStatus('Disconnected', 'term-disconnected');
        term.writeln(`\r\n${ended || `\x1b[2m[disconnected: ${closeReason(ev)}]\x1b[0m`}`);
        reconnect.disabled = false;
      };
    },
    close() {
      if (ws) {
        const conn = ws;
        ws = null;
        conn.close();
      }
    },
  };
}
