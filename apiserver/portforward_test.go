package apiserver

import (
	"bufio"
	"context"
	"crypto/tls"
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

// TestPortForwardProxy tunnels a connection through the server to a fake
// agent whose "instance port" upper-cases lines, over mutual TLS as the
// real agent is called, and checks who may open one.
func TestPortForwardProxy(t *testing.T) {
	e := newEnv(t)
	e.image("default", "img", false)
	web := e.instance(e.admin, "default", "web", "img")
	e.project("other")

	pair := e.agentCert("h1")
	ports := make(chan string, 4)
	agent := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS.PeerCertificates[0].Subject.CommonName != pki.ServerCN || !upgrade.Requested(r, api.PortForwardProtocol) ||
			r.URL.Path != "/v1/instances/"+web.Metadata.UID+"/portforward" {
			http.Error(w, "bad caller", http.StatusBadRequest)
			return
		}
		ports <- r.URL.Query().Get("port")
		conn, err := upgrade.Accept(w, api.PortForwardProtocol)
		if err != nil {
			return
		}
		defer conn.Close()
		line, _ := bufio.NewReader(conn).ReadString('\n')
		io.WriteString(conn, strings.ToUpper(line))
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

	if _, err := admin.PortForward(ctx, "default", "web", 22); api.StatusOf(err) != http.StatusConflict {
		t.Errorf("port forward to an unplaced instance: %v", err)
	}
	e.place("default", "web", "h1", api.PhaseRunning)

	for _, tc := range []struct {
		name    string
		token   string
		project string
		port    int
		want    int
	}{
		{"viewer", e.userToken("vera", map[string]api.Role{"default": api.RoleViewer}), "default", 22, http.StatusForbidden},
		{"member of another project", e.userToken("mallory", map[string]api.Role{"other": api.RoleMember}), "default", 22, http.StatusNotFound},
		{"port 0", e.admin, "default", 0, http.StatusBadRequest},
		{"port beyond 65535", e.admin, "default", 70000, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := cl(tc.token).PortForward(ctx, tc.project, "web", tc.port); api.StatusOf(err) != tc.want {
				t.Errorf("port forward: %v, want status %d", err, tc.want)
			}
		})
	}
	if ae := e.must(http.StatusBadRequest, "POST", "/v1/projects/default/instances/web/portforward?port=22", e.admin, nil).apiError(); !strings.Contains(ae.Message, "upgrade") {
		t.Errorf("port forward without upgrade: %+v", ae)
	}
	select {
	case p := <-ports:
		t.Fatalf("a refused request reached the agent (port %s)", p)
	default:
	}

	member := cl(e.userToken("max", map[string]api.Role{"default": api.RoleMember}))
	conn, err := member.PortForward(ctx, "default", "web", 8080)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := <-ports; p != "8080" {
		t.Errorf("the agent was asked for port %s, want 8080", p)
	}
	io.WriteString(conn, "ping\n")
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "PING\n" {
		t.Errorf("through the tunnel: %q, %v; want PING", line, err)
	}
}
