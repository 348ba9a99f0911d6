package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/browsertest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// The console's end-to-end tests drive a real headless Chromium against a
// cloud of the netns harness. OURO_SCREENSHOTS=docs/img makes them save
// the screenshots of docs/console.md.

// consoleUser is a user of the console with a password.
type consoleUser struct {
	name, password string
}

// runStdin runs the CLI as the admin with stdin and fails the test if it
// fails.
func (c *cloud) runStdin(stdin string, args ...string) string {
	c.t.Helper()
	cmd := commandIn(c.netns, ouroBin, args...)
	cmd.Env = append(os.Environ(), "OURO_CONFIG="+c.config)
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errOut
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("ouro %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

// newPassword returns a random password.
func newPassword(t testing.TB) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "pw-" + hex.EncodeToString(b)
}

// adminUser gives the bootstrap admin a password and returns it.
func (c *cloud) adminUser() consoleUser {
	c.t.Helper()
	var who struct {
		User string `json:"user"`
	}
	out := c.ouro("whoami", "-o", "json")
	if err := json.Unmarshal([]byte(out), &who); err != nil || who.User == "" {
		c.t.Fatalf("whoami: %v in %q", err, out)
	}
	u := consoleUser{name: who.User, password: newPassword(c.t)}
	c.runStdin(u.password+"\n", "user", "passwd", u.name, "--password-stdin")
	return u
}

// grantUser gives user role in project (making the user) and a password,
// and returns the user and an API token of the grant.
func (c *cloud) grantUser(project, role, name string) (consoleUser, string) {
	c.t.Helper()
	tok := c.issueToken(project, role, name)
	u := consoleUser{name: name, password: newPassword(c.t)}
	c.runStdin(u.password+"\n", "user", "passwd", name, "--password-stdin")
	return u, tok
}

// consoleBrowser starts a browser for the cloud's console; extra are
// servers of other origins the browser may visit.
func (c *cloud) consoleBrowser(extra ...*httptest.Server) *browsertest.Browser {
	c.t.Helper()
	cfg := browsertest.Config{URL: c.url, CACert: c.ca}
	if c.netns != "" {
		cfg.Dial = netnsDialer(c.netns)
	}
	for _, s := range extra {
		cfg.ExtraKeys = append(cfg.ExtraKeys, s.Certificate())
	}
	return browsertest.Start(c.t, cfg)
}

// tileJS is a JavaScript expression for the map's tile of instance name
// (null when the map shows none).
func tileJS(name string) string {
	return fmt.Sprintf(`document.querySelector('main a.tile[href="#/instances/' + encodeURIComponent(%q) + '"]')`, name)
}

// tileState is what the map shows of an instance.
type tileState struct {
	Found bool `json:"found"`
	// Phase is the phase the tile's class names.
	Phase string `json:"phase"`
	// Grey: the tile, or the panel of its host, is marked lost.
	Grey bool `json:"grey"`
	// Host is the aria-label of the host panel the tile is on.
	Host string `json:"host"`
}

// mapJS evaluates to a map of instance name to tileState of every tile on
// the map.
const mapJS = `(() => {
	const out = {};
	for (const el of document.querySelectorAll('main a.tile')) {
		const name = decodeURIComponent(el.getAttribute('href').replace(/^#\/instances\//, ''));
		const phase = ([...el.classList].find(c => c.startsWith('phase-')) || '').slice(6);
		const panel = el.closest('section.host');
		out[name] = {found: true, phase, host: panel ? panel.getAttribute('aria-label') || '' : '',
			grey: el.classList.contains('host-lost') || !!(panel && panel.matches('.host-lost, .lost, .notready, .host-NotReady'))};
	}
	return out;
})()`

// waitMap waits until the map's tiles satisfy ok, which says what it saw.
func waitMap(t *testing.T, p *browsertest.Page, timeout time.Duration, what string, ok func(map[string]tileState) (bool, string)) map[string]tileState {
	t.Helper()
	var tiles map[string]tileState
	wait.ForDetail(t, timeout, what, func() (bool, string) {
		tiles = nil
		p.Eval(mapJS, &tiles)
		return ok(tiles)
	})
	return tiles
}

// describe renders tiles for a failure message.
func describe(tiles map[string]tileState) string {
	var b strings.Builder
	for n, s := range tiles {
		fmt.Fprintf(&b, "%s %s grey=%v on %q; ", n, s.Phase, s.Grey, s.Host)
	}
	return b.String()
}

// mutatingControls is a JavaScript expression listing the buttons and
// links of the page that would change something.
const mutatingControls = `[...document.querySelectorAll('main button, main a.button, main input[type=submit]')]
	.map(el => el.textContent.trim())
	.filter(t => /^(create|delete|stop|start|reboot|crash|scale|update|undo|drain|cordon|uncordon|upload|import|add|remove|allocate|release|associate|rollback|pause|resume)\b/i.test(t))`

// TestConsole drives the web console in Chromium against a cloud of
// three hosts: signing in, creating an instance through the form and
// watching it turn Running on the map, the map following a group scaled
// from the CLI, what a viewer and a member of another project see and
// may do, forged requests without the CSRF token, and a host's power cut
// greying its tiles while replacements appear.
func TestConsole(t *testing.T) {
	browsertest.NeedChromium(t)
	// Another origin on the same site as the console (127.0.0.1, another
	// port): the session cookie goes along with its requests.
	evil := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<!doctype html><title>elsewhere</title><p>another origin</p>")
	}))
	defer evil.Close()

	nc := newNetCloud(t, 3)
	admin := nc.adminUser()
	viewer, _ := nc.grantUser("default", "viewer", "console-viewer")
	nc.ouro("project", "create", "console-other")
	other, otherToken := nc.grantUser("console-other", "admin", "console-other-admin")

	b := nc.consoleBrowser(evil)
	ap := b.NewPage(t)
	mark := func(p *browsertest.Page) {
		p.Eval(`window.__consoleTestMark = 'still here'`, nil)
	}
	notReloaded := func(p *browsertest.Page) {
		t.Helper()
		var m string
		p.Eval(`window.__consoleTestMark || ''`, &m)
		if m != "still here" {
			t.Fatal("the page was reloaded")
		}
	}

	t.Run("sign in", func(t *testing.T) {
		ap.Open("/")
		ap.WaitSelector(30*time.Second, ".signin-form")
		ap.Screenshot("console-signin")
		ap.SignIn(admin.name, admin.password)
		ap.Route("#/map")
		ap.WaitSelector(30*time.Second, "main section.host")
	})

	t.Run("create through the form", func(t *testing.T) {
		mark(ap)
		ap.Route("#/instances/new")
		ap.FillField("Name", "form-made")
		ap.FillField("Image", "busybox")
		ap.FillField("Flavor", "tiny")
		ap.FillField("Command", "sleep 3600")
		ap.Screenshot("console-create")
		ap.Click("main form button[type=submit]")
		ap.Wait(30*time.Second, "the create answered", `(() => {
			if (!location.hash.startsWith('#/instances/new')) return {ok: true};
			const e = document.querySelector('main .form-error:not([hidden]), main .field-error:not([hidden])');
			return {ok: false, detail: e ? e.innerText : 'still on the form'};
		})()`)
		ap.Route("#/map")
		waitMap(t, ap, 90*time.Second, "form-made Running on the map", func(m map[string]tileState) (bool, string) {
			s := m["form-made"]
			return s.Phase == "Running", describe(m)
		})
		notReloaded(ap)
		nc.waitPhase("default", "form-made", api.PhaseRunning)
	})

	t.Run("scale a group from the CLI", func(t *testing.T) {
		ap.Route("#/map")
		mark(ap)
		members := func(m map[string]tileState, prefix string) (running, all int) {
			for n, s := range m {
				if strings.HasPrefix(n, prefix) {
					all++
					if s.Phase == "Running" {
						running++
					}
				}
			}
			return
		}
		nc.ouro("group", "create", "scaled", "--image", "busybox", "--flavor", "tiny", "--count", "2", "--", "sleep", "3600")
		waitMap(t, ap, 2*time.Minute, "2 members of scaled Running", func(m map[string]tileState) (bool, string) {
			r, a := members(m, "scaled-")
			return r == 2 && a == 2, describe(m)
		})
		nc.ouro("group", "scale", "scaled", "5")
		waitMap(t, ap, 2*time.Minute, "5 members of scaled Running", func(m map[string]tileState) (bool, string) {
			r, a := members(m, "scaled-")
			return r == 5 && a == 5, describe(m)
		})
		ap.Screenshot("console-map")
		nc.ouro("group", "scale", "scaled", "1")
		waitMap(t, ap, 2*time.Minute, "1 member of scaled", func(m map[string]tileState) (bool, string) {
			r, a := members(m, "scaled-")
			return r == 1 && a == 1, describe(m)
		})
		notReloaded(ap)
	})

	t.Run("a viewer changes nothing", func(t *testing.T) {
		// An annotation that looks like markup is shown as text.
		cl := nc.clientAs(nc.admin)
		var in api.Instance
		if err := cl.Get(context.Background(), api.InstanceKind, "default", "form-made", &in); err != nil {
			t.Fatal(err)
		}
		in.Metadata.Annotations = map[string]string{"note": "<b class=injected>not bold</b>"}
		if err := cl.Update(context.Background(), &in); err != nil {
			t.Fatal(err)
		}
		vp := b.NewPage(t)
		vp.SignIn(viewer.name, viewer.password)
		vp.Route("#/instances/form-made")
		vp.WaitText(30*time.Second, "main", "form-made")
		vp.WaitText(30*time.Second, "main", "Running")
		vp.WaitText(30*time.Second, "main", "note: <b class=injected>not bold</b>")
		var injected bool
		vp.Eval(`!!document.querySelector('b.injected')`, &injected)
		if injected {
			t.Error("an annotation's text became markup on the instance page")
		}
		var controls []string
		vp.Eval(mutatingControls, &controls)
		if len(controls) > 0 {
			t.Errorf("a viewer sees buttons that change things on the instance page: %q", controls)
		}
		vp.Screenshot("console-viewer")
		vp.Route("#/instances")
		vp.WaitText(30*time.Second, "main", "form-made")
		vp.Eval(mutatingControls, &controls)
		if len(controls) > 0 {
			t.Errorf("a viewer sees buttons that change things on the instance list: %q", controls)
		}
		tok := vp.CSRFToken()
		for _, req := range []struct{ method, path, body string }{
			{"POST", "/v1/projects/default/instances/form-made/stop", ""},
			{"DELETE", "/v1/projects/default/instances/form-made", ""},
			{"POST", "/v1/projects/default/instances", `{"kind":"Instance","metadata":{"name":"viewer-made"},"spec":{"image":"busybox","flavor":"tiny"}}`},
		} {
			r := vp.Fetch(req.method, req.path, map[string]string{"X-CSRF-Token": tok, "Content-Type": "application/json"}, req.body)
			if r.Status != http.StatusForbidden {
				t.Errorf("a viewer's %s %s: %d %s, want 403", req.method, req.path, r.Status, r.Body)
			}
		}
		nc.waitPhase("default", "form-made", api.PhaseRunning)
	})

	t.Run("another project sees none of this one", func(t *testing.T) {
		op := b.NewPage(t)
		op.SignInToken(other.name, otherToken)
		var projects []string
		op.Eval(`[...document.querySelectorAll('#project-picker option')].map(o => o.value)`, &projects)
		for _, p := range projects {
			if p == "default" {
				t.Errorf("the project picker of a member of console-other offers default: %q", projects)
			}
		}
		op.Route("#/map")
		op.WaitSelector(30*time.Second, "main .map-live:not(.stale)")
		var tiles map[string]tileState
		op.Eval(mapJS, &tiles)
		if len(tiles) > 0 {
			t.Errorf("the map of a member of console-other shows instances: %s", describe(tiles))
		}
		op.Route("#/instances")
		op.WaitSelector(30*time.Second, "main h1")
		var text string
		op.Eval(`document.querySelector('main').innerText`, &text)
		for _, name := range []string{"form-made", "scaled-"} {
			if strings.Contains(text, name) {
				t.Errorf("a member of console-other sees %s of default:\n%s", name, text)
			}
		}
		tok := op.CSRFToken()
		for _, path := range []string{"/v1/projects/default/instances", "/v1/projects/default/instances/form-made"} {
			r := op.Fetch("GET", path, nil, "")
			if r.Status != http.StatusForbidden && r.Status != http.StatusNotFound {
				t.Errorf("GET %s as a member of console-other: %d %s", path, r.Status, tail(r.Body, 300))
			}
		}
		r := op.Fetch("DELETE", "/v1/projects/default/instances/form-made", map[string]string{"X-CSRF-Token": tok}, "")
		if r.Status != http.StatusForbidden && r.Status != http.StatusNotFound {
			t.Errorf("DELETE form-made as a member of console-other: %d %s", r.Status, r.Body)
		}
		nc.waitPhase("default", "form-made", api.PhaseRunning)
	})

	t.Run("forged requests without the CSRF token", func(t *testing.T) {
		// From the console's own page, without the header.
		create := `{"kind":"Instance","metadata":{"name":"forged"},"spec":{"image":"busybox","flavor":"tiny"}}`
		for _, req := range []struct {
			method, path, body string
			headers            map[string]string
		}{
			{"DELETE", "/v1/projects/default/instances/form-made", "", nil},
			{"POST", "/v1/projects/default/instances/form-made/stop", "", nil},
			{"POST", "/v1/projects/default/instances", create, map[string]string{"Content-Type": "application/json"}},
			{"POST", "/v1/projects/default/instances", create, map[string]string{"Content-Type": "application/json", "X-CSRF-Token": "not-the-token"}},
		} {
			r := ap.Fetch(req.method, req.path, req.headers, req.body)
			if r.Status != http.StatusForbidden {
				t.Errorf("%s %s without the CSRF token (headers %v): %d %s, want 403", req.method, req.path, req.headers, r.Status, r.Body)
			}
		}
		// From another origin of the same site, whose requests carry the
		// session cookie: a simple request (no preflight), and one that
		// needs a preflight the server must not grant.
		ep := ap // the same browser context: the same cookies
		ep.OpenURL(evil.URL + "/")
		var outcome []string
		ep.Eval(fmt.Sprintf(`(async () => {
			const base = %q, out = [];
			try {
				await fetch(base + '/v1/projects/default/instances', {method: 'POST', mode: 'no-cors', credentials: 'include',
					headers: {'Content-Type': 'text/plain'}, body: %q});
				out.push('no-cors POST sent');
			} catch (e) { out.push('no-cors POST: ' + e); }
			try {
				const r = await fetch(base + '/v1/projects/default/instances/form-made', {method: 'DELETE', credentials: 'include'});
				out.push('cross-origin DELETE answered ' + r.status);
			} catch (e) { out.push('cross-origin DELETE refused by the browser'); }
			return out;
		})()`, ap.URL(), create), &outcome)
		t.Logf("from %s: %q", evil.URL, outcome)
		for _, o := range outcome {
			if strings.HasPrefix(o, "cross-origin DELETE answered 2") {
				t.Errorf("a cross-origin DELETE succeeded: %s", o)
			}
		}
		if _, err := nc.instance("default", "forged"); err == nil || !api.IsNotFound(err) {
			t.Errorf("the forged create made instance forged (err %v)", err)
		}
		in := nc.waitPhase("default", "form-made", api.PhaseRunning)
		if in.Metadata.DeletionTimestamp != nil {
			t.Error("a forged DELETE is deleting form-made")
		}
		ap.Open("/")
		ap.WaitSelector(30*time.Second, ".shell .user-name")
	})

	t.Run("a host's power cut", func(t *testing.T) {
		ap.Route("#/map")
		mark(ap)
		nc.ouro("group", "create", "healing", "--image", "busybox", "--flavor", "tiny", "--count", "4",
			"--anti-affinity", "soft", "--", "sleep", "3600")
		ms := nc.waitMembersRunning("healing", 4)
		dead := nc.busiestHost(ms)
		lost := map[string]bool{}
		for n, in := range ms {
			if in.Status.Host == dead.name {
				lost[n] = true
			}
		}
		nc.createOn(dead.name, vm{name: "stays-put"})
		waitMap(t, ap, time.Minute, "4 members of healing and stays-put Running on the map", func(m map[string]tileState) (bool, string) {
			n := 0
			for name := range ms {
				if m[name].Phase == "Running" {
					n++
				}
			}
			return n == 4 && m["stays-put"].Phase == "Running", describe(m)
		})
		powerCut(t, dead)
		// The standalone instance stays on the lost host, grey; the
		// group's members there turn grey until the group replaces them
		// (deleting them, which may come before the next look).
		sawGrey := map[string]bool{}
		waitMap(t, ap, 3*time.Minute, "the tiles of "+dead.name+" grey and 4 replacements Running", func(m map[string]tileState) (bool, string) {
			ok := m["stays-put"].Grey
			for n := range lost {
				if s, on := m[n]; on {
					if s.Grey {
						sawGrey[n] = true
					} else {
						ok = false
					}
				}
			}
			running := 0
			for n, s := range m {
				if strings.HasPrefix(n, "healing-") && !lost[n] && s.Phase == "Running" && !s.Grey {
					running++
				}
			}
			return ok && running == 4, fmt.Sprintf("stays-put %+v; group tiles seen grey %v; %d members running elsewhere: %s",
				m["stays-put"], sawGrey, running, describe(m))
		})
		t.Logf("lost members seen grey before their replacement deleted them: %v of %d", len(sawGrey), len(lost))
		notReloaded(ap)
		ap.Screenshot("console-host-lost")
	})
}

// TestConsoleSerial types into a VM's serial console in the browser's
// terminal and reads the shell's answer.
func TestConsoleSerial(t *testing.T) {
	browsertest.NeedChromium(t)
	needVM(t)
	nc := newNetCloud(t, 1)
	killVMsOf(t, nc.hosts[0])
	nc.importTinyCLI()
	nc.ouro("instance", "create", "serial-vm", "--image", "tiny", "--flavor", "tiny")
	nc.waitPhase("default", "serial-vm", api.PhaseRunning)
	wait.ForDetail(t, 2*time.Minute, "serial-vm booted", func() (bool, string) {
		log := nc.consoleLog("serial-vm")
		return strings.Contains(log, "OURO-INIT"), tail(log, 1000)
	})
	admin := nc.adminUser()

	b := nc.consoleBrowser()
	p := b.NewPage(t)
	p.SignIn(admin.name, admin.password)
	p.Route("#/instances/serial-vm/console")
	p.WaitSelector(60*time.Second, "main .xterm")
	p.Wait(60*time.Second, "the terminal connected", `(() => {
		const ta = document.querySelector('main .xterm-helper-textarea');
		if (!ta) return {ok: false, detail: 'no terminal input'};
		ta.focus();
		const st = document.querySelector('main .term-status');
		return {ok: !!st && st.classList.contains('term-connected'), detail: st ? st.textContent : 'no status'};
	})()`)
	// The shell answers what only it can compute: the echo of the typed
	// line is in lower case, the answer in upper case.
	p.Press("main .xterm-helper-textarea", "\r")
	p.Press("main .xterm-helper-textarea", "echo ouro-serial | tr a-z A-Z\r")
	p.Wait(60*time.Second, "the answer in the terminal", `(() => {
		const rows = document.querySelector('main .xterm-rows');
		const text = rows ? rows.innerText : '';
		const a = document.activeElement;
		return {ok: text.includes('OURO-SERIAL'), detail: 'focus on ' + (a ? a.tagName + '.' + a.className : 'nothing') + ': ' + text.slice(-600)};
	})()`)
	p.Screenshot("console-serial")
}
