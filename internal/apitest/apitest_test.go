package apitest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

func TestServer(t *testing.T) {
	var rec Recorder
	s := Start(t, Config{Wrap: rec.Wrap})
	s.Project(t, "demo")
	tok := s.Token(t, "alice", "demo", api.RoleMember)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var who api.Whoami
	if _, err := s.Client(t, tok).Do(ctx, http.MethodGet, "/v1/whoami", nil, nil, &who); err != nil {
		t.Fatalf("whoami: %v", err)
	}
	if who.User != "alice" || who.Roles["demo"] != api.RoleMember {
		t.Errorf("whoami = %+v", who)
	}
	reqs := rec.Requests()
	if last := reqs[len(reqs)-1]; last.Path != "/v1/whoami" || last.Auth != "Bearer "+tok {
		t.Errorf("last request %+v", last)
	}

	rec.Fail("GET /v1/whoami", &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable, Message: "down"})
	if _, err := s.Client(t, tok).Do(ctx, http.MethodGet, "/v1/whoami", nil, nil, &who); api.StatusOf(err) != http.StatusServiceUnavailable {
		t.Errorf("whoami with a failure injected: %v", err)
	}
	rec.Reset()
	if n := len(rec.Requests()); n != 0 {
		t.Errorf("%d requests after Reset", n)
	}
}

func TestAgent(t *testing.T) {
	s := Start(t, Config{})
	called := make(chan string, 1)
	hostTok := s.Agent(t, "h1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called <- r.TLS.PeerCertificates[0].Subject.CommonName
		w.Write([]byte("log line\n"))
	}))
	if hostTok == "" {
		t.Fatal("no host token")
	}
	var h api.Host
	if err := s.Store.Get(context.Background(), api.HostKind, "", "h1", &h); err != nil || h.Status.AgentEndpoint == "" {
		t.Fatalf("host h1: %+v, %v", h.Status, err)
	}

	// The server reaches the agent over TLS for an instance placed there.
	in := &api.Instance{Metadata: api.ObjectMeta{Name: "web", Project: "default"},
		Status: api.InstanceStatus{Phase: api.PhaseRunning, Host: "h1"}}
	if _, err := s.Store.Create(context.Background(), in, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/projects/default/instances/web/logs", nil)
	req.Header.Set("Authorization", "Bearer "+s.Admin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("logs: status %d", res.StatusCode)
	}
	if cn := <-called; cn == "" {
		t.Error("the agent saw no client certificate")
	}
}
