package apitest

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"slices"
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

func TestStoreHelpers(t *testing.T) {
	var rec Recorder
	s := Start(t, Config{Wrap: rec.Wrap})
	img := &api.Image{Metadata: api.ObjectMeta{Name: "busybox", Project: "default"},
		Spec: api.ImageSpec{Format: api.FormatOCI}, Status: api.ImageStatus{Phase: "Ready"}}
	s.Create(t, img)
	if img.Metadata.UID == "" || img.Metadata.ResourceVersion == "" {
		t.Errorf("Create left no UID or resourceVersion: %+v", img.Metadata)
	}
	got := s.Update(t, api.ImageKind, "default", "busybox", func(o api.Object) { o.(*api.Image).Status.Phase = "Failed" })
	if got.Meta().ResourceVersion == img.Metadata.ResourceVersion {
		t.Error("Update kept the resourceVersion")
	}
	if in := s.Get(t, api.ImageKind, "default", "busybox").(*api.Image); in.Status.Phase != "Failed" {
		t.Errorf("after Update: %+v", in.Status)
	}
	s.Remove(t, api.ImageKind, "default", "busybox")
	if obj := s.Get(t, api.ImageKind, "default", "busybox"); obj != nil {
		t.Errorf("after Remove: %+v", obj)
	}

	now := time.Now().UTC()
	for i, reason := range []string{"Second", "First"} {
		s.Create(t, &api.Event{Metadata: api.ObjectMeta{Name: fmt.Sprintf("ev-%d", i), Project: "default"},
			Object: api.ObjectRef{Kind: "Instance", Project: "default", Name: "web"}, Type: api.EventNormal,
			Reason: reason, Time: now.Add(time.Duration(-i) * time.Second)})
	}
	if evs := s.Events(t, "default", "web"); len(evs) != 2 || evs[0].Reason != "First" || evs[1].Reason != "Second" {
		t.Errorf("Events = %+v, want First then Second", evs)
	}

	// The recorder keeps each answer's status; Fail(route, nil) lets the
	// route through again.
	rec.Reset()
	rec.Fail("GET /v1/whoami", &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable, Message: "down"})
	rec.Fail("GET /v1/whoami", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := s.Client(t, s.Admin)
	if _, err := c.Do(ctx, http.MethodGet, "/v1/whoami", nil, nil, nil); err != nil {
		t.Errorf("whoami after the failure was lifted: %v", err)
	}
	if _, err := c.Do(ctx, http.MethodGet, "/v1/projects/default/images/nothing", nil, nil, nil); api.StatusOf(err) != http.StatusNotFound {
		t.Errorf("get a missing image: %v", err)
	}
	var statuses []int
	for _, r := range rec.Requests() {
		statuses = append(statuses, r.Status)
	}
	if want := []int{http.StatusOK, http.StatusNotFound}; !slices.Equal(statuses, want) {
		t.Errorf("statuses %v, want %v", statuses, want)
	}
}

func TestClientCert(t *testing.T) {
	s := Start(t, Config{})
	pair := s.ClientCert(t, "ouro-agent:h2")
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: s.CA.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate does not verify for client auth: %v", err)
	}
	if cert.Subject.CommonName != "ouro-agent:h2" {
		t.Errorf("common name %q", cert.Subject.CommonName)
	}
}
