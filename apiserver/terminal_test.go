package apiserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/consoletest"
	"github.com/ouroboros-cloud/ouro/internal/upgrade"
	"github.com/ouroboros-cloud/ouro/pki"
	"github.com/ouroboros-cloud/ouro/session"
	"github.com/ouroboros-cloud/ouro/store"
)

// terminalEnv is a server with sessions and a fake agent on host h1
// running vm (a console that upper-cases lines) and ctr (an exec that
// echoes its command).
type terminalEnv struct {
	*env
	// detached gets a value each time a console's caller leaves.
	detached chan struct{}
}

func newTerminalEnv(t *testing.T) *terminalEnv {
	t.Helper()
	return newTerminalEnvWith(t, Config{})
}

func newTerminalEnvWith(t *testing.T, cfg Config) *terminalEnv {
	t.Helper()
	fs := newFakeStore()
	e := newEnvWith(t, fs, cfg)
	e.fake = fs
	detached := make(chan struct{}, 16)
	e.image("default", "img", false)
	vm := e.instance(e.admin, "default", "vm", "img")
	ctr := e.instance(e.admin, "default", "ctr", "img")

	agent := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS.PeerCertificates[0].Subject.CommonName != pki.ServerCN {
			http.Error(w, "bad caller", http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/v1/instances/" + vm.Metadata.UID + "/console":
			if !upgrade.Requested(r, api.ConsoleProtocol) {
				http.Error(w, "no upgrade", http.StatusBadRequest)
				return
			}
			consoletest.Serve(t, w)
			detached <- struct{}{}
		case "/v1/instances/" + ctr.Metadata.UID + "/exec":
			if upgrade.Requested(r, api.ExecTTYProtocol) {
				if serveFakeTTY(t, w, r) {
					detached <- struct{}{}
				}
				return
			}
			var req api.ExecRequest
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(api.ExecResponse{ExitCode: 3,
				Stdout: []byte(strings.Join(req.Command, " ") + "\n"), Stderr: []byte("warning\n")})
		default:
			http.NotFound(w, r)
		}
	}))
	agent.TLS = &tls.Config{Certificates: []tls.Certificate{e.agentCert("h1")}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: e.ca.Pool()}
	agent.StartTLS()
	t.Cleanup(agent.Close)
	hostObj := &api.Host{Metadata: api.ObjectMeta{Name: "h1"}, Status: api.HostStatus{AgentEndpoint: agent.URL}}
	if _, err := e.store.Create(context.Background(), hostObj, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, driver := range map[string]string{"vm": "vm", "ctr": "container"} {
		in := e.place("default", name, "h1", api.PhaseRunning)
		in.Status.Driver = driver
		if err := e.store.Update(context.Background(), &in); err != nil {
			t.Fatal(err)
		}
	}
	return &terminalEnv{env: e, detached: detached}
}

// signIn gives user (with roles) a session, signed in with a token,
// and returns its cookie and CSRF token.
func (e *terminalEnv) signIn(user string, roles map[string]api.Role) (cookie, csrf string) {
	e.t.Helper()
	r := e.must(http.StatusOK, "POST", "/v1/session", "", api.SessionRequest{Token: e.userToken(user, roles)})
	var sess api.Session
	r.decode(e.t, &sess)
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == session.CookieName {
			return c.Value, sess.CSRFToken
		}
	}
	e.t.Fatalf("signing in %s set no session cookie", user)
	return "", ""
}

// dial opens a terminal WebSocket at path (with its query) with the
// given headers and subprotocols; it returns the connection or the
// server's refusal.
func (e *terminalEnv) dial(path string, hdr http.Header, protocols ...string) (*websocket.Conn, *http.Response, error) {
	e.t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: protocols}
	ws, resp, err := d.Dial("ws"+strings.TrimPrefix(e.ts.URL, "http")+path, hdr)
	if ws != nil {
		e.t.Cleanup(func() { ws.Close() })
	}
	return ws, resp, err
}

// originHeader is what a browser on the test server's page sends.
func (e *terminalEnv) originHeader(cookie string) http.Header {
	h := http.Header{"Origin": {e.ts.URL}}
	if cookie != "" {
		h.Set("Cookie", session.CookieName+"="+cookie)
	}
	return h
}

const (
	vmConsole = "/v1/projects/default/instances/vm/console?ws=1"
	ctrExec   = "/v1/projects/default/instances/ctr/exec?ws=1&command=echo&command=hi+there"
	ctrTTY    = "/v1/projects/default/instances/ctr/exec?ws=1&tty=1&command=sh&command=-l&rows=30&cols=100"
)

// TestTerminalConsole carries bytes both ways between a browser's
// WebSocket and a VM's console.
func TestTerminalConsole(t *testing.T) {
	e := newTerminalEnv(t)
	cookie, csrf := e.signIn("max", map[string]api.Role{"default": api.RoleMember})
	for _, tt := range []struct {
		name      string
		path      string
		hdr       http.Header
		protocols []string
		protocol  string // the one the server picks
	}{
		{"cookie, CSRF as subprotocol", vmConsole, e.originHeader(cookie), []string{TerminalProtocol, "csrf." + csrf}, TerminalProtocol},
		{"cookie, CSRF as the only subprotocol", vmConsole, e.originHeader(cookie), []string{"csrf." + csrf}, "csrf." + csrf},
		{"cookie, CSRF in the query", vmConsole + "&csrf=" + csrf, e.originHeader(cookie), nil, ""},
		{"bearer token", vmConsole, http.Header{"Authorization": {"Bearer " + e.admin}}, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ws, resp, err := e.dial(tt.path, tt.hdr, tt.protocols...)
			if err != nil {
				t.Fatalf("dial: %v (%v)", err, resp)
			}
			if ws.Subprotocol() != tt.protocol {
				t.Errorf("subprotocol %q, want %q", ws.Subprotocol(), tt.protocol)
			}
			ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			// A line typed in two messages, a resize in between.
			for _, m := range []struct {
				typ  int
				data string
			}{{websocket.BinaryMessage, "hel"}, {websocket.TextMessage, `{"cols":100,"rows":30}`}, {websocket.BinaryMessage, "lo\n"}} {
				if err := ws.WriteMessage(m.typ, []byte(m.data)); err != nil {
					t.Fatal(err)
				}
			}
			var got strings.Builder
			for !strings.HasSuffix(got.String(), "\n") {
				typ, data, err := ws.ReadMessage()
				if err != nil {
					t.Fatalf("read after %q: %v", got.String(), err)
				}
				if typ != websocket.BinaryMessage {
					t.Fatalf("message of type %d, want binary", typ)
				}
				got.Write(data)
			}
			if got.String() != "HELLO\n" {
				t.Errorf("console answered %q, want HELLO", got.String())
			}
		})
	}
}

// TestTerminalDetach: closing the browser's WebSocket ends the agent's
// console stream, and so does closing the server.
func TestTerminalDetach(t *testing.T) {
	e := newTerminalEnv(t)
	bearer := http.Header{"Authorization": {"Bearer " + e.admin}}
	waitDetached := func(what string) {
		t.Helper()
		select {
		case <-e.detached:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not end the agent's console", what)
		}
	}
	ws, resp, err := e.dial(vmConsole, bearer)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	ws.Close()
	waitDetached("closing the WebSocket")

	ws, resp, err = e.dial(vmConsole, bearer)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	e.srv.Close()
	waitDetached("closing the server")
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			break // the server closed the WebSocket too
		}
	}
}

// TestTerminalExec runs a command through the exec WebSocket.
func TestTerminalExec(t *testing.T) {
	e := newTerminalEnv(t)
	cookie, csrf := e.signIn("max", map[string]api.Role{"default": api.RoleMember})
	ws, resp, err := e.dial(ctrExec, e.originHeader(cookie), "csrf."+csrf)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var out strings.Builder
	var end struct {
		ExitCode int `json:"exitCode"`
	}
	for {
		typ, data, err := ws.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Fatalf("read: %v", err)
			}
			break
		}
		if typ == websocket.TextMessage {
			if err := json.Unmarshal(data, &end); err != nil {
				t.Fatalf("text message %q: %v", data, err)
			}
			continue
		}
		out.Write(data)
	}
	if out.String() != "echo hi there\nwarning\n" || end.ExitCode != 3 {
		t.Errorf("exec gave %q, exit code %d", out.String(), end.ExitCode)
	}
}

// TestTerminalRefusals: who may not open a terminal, and requests that
// are not one.
func TestTerminalRefusals(t *testing.T) {
	e := newTerminalEnv(t)
	cookie, csrf := e.signIn("max", map[string]api.Role{"default": api.RoleMember})
	vcookie, vcsrf := e.signIn("vera", map[string]api.Role{"default": api.RoleViewer})
	viewerToken := e.userToken("vic", map[string]api.Role{"default": api.RoleViewer})
	ocookie, ocsrf := e.signIn("olga", map[string]api.Role{"other": api.RoleMember})
	csrfProto := []string{"csrf." + csrf}
	foreign := e.originHeader(cookie)
	foreign.Set("Origin", "https://evil.example")
	for _, tt := range []struct {
		name      string
		path      string
		hdr       http.Header
		protocols []string
		status    int
		message   string
	}{
		{"viewer by cookie, console", vmConsole, e.originHeader(vcookie), []string{"csrf." + vcsrf}, http.StatusForbidden, "may not exec"},
		{"viewer by cookie, exec", ctrExec, e.originHeader(vcookie), []string{"csrf." + vcsrf}, http.StatusForbidden, "may not exec"},
		{"viewer by token", vmConsole, http.Header{"Authorization": {"Bearer " + viewerToken}}, nil, http.StatusForbidden, "may not exec"},
		{"another site's page", vmConsole, foreign, csrfProto, http.StatusForbidden, "origin"},
		{"no CSRF token", vmConsole, e.originHeader(cookie), nil, http.StatusForbidden, "CSRFTokenInvalid"},
		{"no CSRF token, exec", ctrExec, e.originHeader(cookie), []string{TerminalProtocol}, http.StatusForbidden, "CSRFTokenInvalid"},
		{"another session's CSRF token", vmConsole, e.originHeader(cookie), []string{"csrf." + ocsrf}, http.StatusForbidden, "CSRFTokenInvalid"},
		{"wrong CSRF token in the query", vmConsole + "&csrf=x", e.originHeader(cookie), nil, http.StatusForbidden, "CSRFTokenInvalid"},
		{"unknown session", vmConsole, e.originHeader("forged"), csrfProto, http.StatusUnauthorized, "session has ended"},
		{"no credentials", vmConsole, e.originHeader(""), csrfProto, http.StatusUnauthorized, "missing bearer token or session cookie"},
		{"without ws=1", "/v1/projects/default/instances/vm/console", e.originHeader(cookie), csrfProto, http.StatusBadRequest, "ws=1"},
		{"viewer, exec on a terminal", ctrTTY, e.originHeader(vcookie), []string{"csrf." + vcsrf}, http.StatusForbidden, "may not exec"},
		{"another project's member, exec on a terminal", ctrTTY, e.originHeader(ocookie), []string{"csrf." + ocsrf}, http.StatusNotFound, "not found"},
		{"no CSRF token, exec on a terminal", ctrTTY, e.originHeader(cookie), nil, http.StatusForbidden, "CSRFTokenInvalid"},
		{"another site's page, exec on a terminal", ctrTTY, foreign, csrfProto, http.StatusForbidden, "origin"},
		{"terminal of no size", "/v1/projects/default/instances/ctr/exec?ws=1&tty=1&command=sh&rows=0", e.originHeader(cookie), csrfProto, http.StatusBadRequest, "rows"},
		{"terminal without command", "/v1/projects/default/instances/ctr/exec?ws=1&tty=1", e.originHeader(cookie), csrfProto, http.StatusBadRequest, "command"},
		{"no command", "/v1/projects/default/instances/ctr/exec?ws=1", e.originHeader(cookie), csrfProto, http.StatusBadRequest, "command"},
		{"another project's member", vmConsole, e.originHeader(ocookie), []string{"csrf." + ocsrf}, http.StatusNotFound, "not found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ws, resp, err := e.dial(tt.path, tt.hdr, tt.protocols...)
			if err == nil {
				ws.Close()
				t.Fatal("the handshake succeeded")
			}
			if resp == nil {
				t.Fatalf("no answer: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(strings.ToLower(string(body)), strings.ToLower(tt.message)) {
				t.Errorf("answer %d %s, want %d with %q", resp.StatusCode, body, tt.status, tt.message)
			}
		})
	}
	// A plain request without the WebSocket upgrade.
	if ae := e.must(http.StatusBadRequest, "GET", vmConsole, e.admin, nil).apiError(); !strings.Contains(ae.Message, "WebSocket") {
		t.Errorf("console without upgrade: %+v", ae)
	}
}
