package apiserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/upgrade"
	"github.com/ouroboros-cloud/ouro/pki"
	"github.com/ouroboros-cloud/ouro/store"
)

// TestConsoleProxy connects a client through the server to a fake agent
// whose console upper-cases what it gets, over mutual TLS as the real
// agent is called.
func TestConsoleProxy(t *testing.T) {
	e := newEnv(t)
	e.image("default", "img", false)
	vm := e.instance(e.admin, "default", "vm", "img")
	ctr := e.instance(e.admin, "default", "ctr", "img")

	keyPEM, csrPEM, err := pki.NewKeyAndCSR("h1", nil)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := e.ca.SignCSR(csrPEM, []string{"127.0.0.1"}, "h1")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	detached := make(chan struct{}, 1)
	agent := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS.PeerCertificates[0].Subject.CommonName != pki.ServerCN || !upgrade.Requested(r, api.ConsoleProtocol) {
			http.Error(w, "bad caller", http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/v1/instances/" + vm.Metadata.UID + "/console":
			conn, err := upgrade.Accept(w, api.ConsoleProtocol)
			if err != nil {
				t.Errorf("agent accept: %v", err)
				return
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					detached <- struct{}{}
					return
				}
				conn.Write([]byte(strings.ToUpper(line)))
			}
		case "/v1/instances/" + ctr.Metadata.UID + "/console":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(api.ErrorBody{Error: &api.Error{Code: api.CodeInvalid,
				Message: "instance's driver (container) has no console; use exec"}})
		default:
			http.NotFound(w, r)
		}
	}))
	agent.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: e.ca.Pool()}
	agent.StartTLS()
	t.Cleanup(agent.Close)
	hostObj := &api.Host{Metadata: api.ObjectMeta{Name: "h1"}, Status: api.HostStatus{AgentEndpoint: agent.URL}}
	if _, err := e.store.Create(context.Background(), hostObj, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	cl := func(token string) *client.Client {
		c, err := client.New(client.Config{Server: e.ts.URL, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin := cl(e.admin)

	// Not placed, then not running: 409 before the agent is asked.
	if _, err := admin.Console(ctx, "default", "vm"); api.StatusOf(err) != http.StatusConflict {
		t.Errorf("console of an unplaced instance: %v", err)
	}
	e.place("default", "vm", "h1", api.PhaseStarting)
	if _, err := admin.Console(ctx, "default", "vm"); api.StatusOf(err) != http.StatusConflict {
		t.Errorf("console of a starting instance: %v", err)
	}
	e.place("default", "vm", "h1", api.PhaseRunning)
	e.place("default", "ctr", "h1", api.PhaseRunning)

	// A plain request, without the upgrade, is refused.
	if ae := e.must(http.StatusBadRequest, "POST", "/v1/projects/default/instances/vm/console", e.admin, nil).apiError(); !strings.Contains(ae.Message, "upgrade") {
		t.Errorf("console without upgrade: %+v", ae)
	}
	// Same rights as exec: viewers may not.
	viewer := cl(e.userToken("vera", map[string]api.Role{"default": api.RoleViewer}))
	if _, err := viewer.Console(ctx, "default", "vm"); api.StatusOf(err) != http.StatusForbidden {
		t.Errorf("console as viewer: %v", err)
	}
	// The agent's refusal is passed on.
	_, err = admin.Console(ctx, "default", "ctr")
	if api.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "has no console; use exec") {
		t.Errorf("console of a container: %v", err)
	}

	member := cl(e.userToken("max", map[string]api.Role{"default": api.RoleMember}))
	conn, err := member.Console(ctx, "default", "vm")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for _, in := range []string{"hello\n", "root\n"} {
		if _, err := io.WriteString(conn, in); err != nil {
			t.Fatal(err)
		}
		got, err := br.ReadString('\n')
		if err != nil || got != strings.ToUpper(in) {
			t.Fatalf("console answered %q, %v; want %q", got, err, strings.ToUpper(in))
		}
	}
	// Closing detaches: the agent's side ends.
	conn.Close()
	select {
	case <-detached:
	case <-time.After(5 * time.Second):
		t.Fatal("closing the client's console did not end the agent's")
	}
	// The request is counted with its real status once it ends.
	want := `code="101",method="POST",route="POST /v1/projects/{project}/instances/{name}/console"`
	eventually(t, "the console request in the metrics", func() bool {
		return strings.Contains(string(e.must(http.StatusOK, "GET", "/metrics", e.admin, nil).body), want)
	})
}
