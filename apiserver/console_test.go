package apiserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/consoletest"
	"github.com/ouroboros-cloud/ouro/internal/upgrade"
	"github.com/ouroboros-cloud/ouro/internal/wait"
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

	pair := e.agentCert("h1")
	detached := make(chan struct{}, 1)
	agent := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS.PeerCertificates[0].Subject.CommonName != pki.ServerCN || !upgrade.Requested(r, api.ConsoleProtocol) {
			http.Error(w, "bad caller", http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/v1/instances/" + vm.Metadata.UID + "/console":
			consoletest.Serve(t, w)
			detached <- struct{}{}
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
	_, err := admin.Console(ctx, "default", "ctr")
	if api.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "has no console; use exec") {
		t.Errorf("console of a container: %v", err)
	}

	member := cl(e.userToken("max", map[string]api.Role{"default": api.RoleMember}))
	conn, err := member.Console(ctx, "default", "vm")
	if err != nil {
		t.Fatal(err)
	}
	consoletest.Check(t, conn)
	// Closing detaches: the agent's side ends.
	conn.Close()
	select {
	case <-detached:
	case <-time.After(5 * time.Second):
		t.Fatal("closing the client's console did not end the agent's")
	}
	// The request is counted with its real status once it ends.
	want := `code="101",method="POST",route="POST /v1/projects/{project}/instances/{name}/console"`
	wait.For(t, 10*time.Second, "the console request in the metrics", func() bool {
		return strings.Contains(string(e.must(http.StatusOK, "GET", "/metrics", e.admin, nil).body), want)
	})
}
