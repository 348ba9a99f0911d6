package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/pki"
	"github.com/ouroboros-cloud/ouro/store"
)

func joinRequest(t *testing.T, name, endpoint string) (api.JoinRequest, []byte) {
	t.Helper()
	keyPEM, csrPEM, err := pki.NewKeyAndCSR(name, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return api.JoinRequest{Name: name, Address: "127.0.0.1", AgentEndpoint: endpoint, CSR: string(csrPEM),
		Capacity: api.Resources{VCPUs: 2, MemoryMiB: 2048, DiskGiB: 20}, Architecture: "amd64", Drivers: []string{"container"}}, keyPEM
}

func TestJoin(t *testing.T) {
	e := newEnv(t)
	var jt api.JoinToken
	e.must(http.StatusCreated, "POST", "/v1/jointokens", e.admin, api.JoinTokenRequest{TTL: "1h"}).decode(t, &jt)
	if jt.Status.Secret == "" || jt.Status.SecretHash != "" {
		t.Fatalf("join token status %+v", jt.Status)
	}
	req, keyPEM := joinRequest(t, "h1", "https://127.0.0.1:9443")

	// A join token is no API token, and an API token does not join.
	e.must(http.StatusUnauthorized, "GET", "/v1/whoami", jt.Status.Secret, nil)
	e.must(http.StatusUnauthorized, "POST", "/v1/hosts/join", e.admin, req)

	var jr api.JoinResponse
	e.must(http.StatusOK, "POST", "/v1/hosts/join", jt.Status.Secret, req).decode(t, &jr)
	if jr.Host.Status.Phase != api.HostReady || jr.Host.Status.Capacity.VCPUs != 2 || jr.Host.Kind != "Host" {
		t.Errorf("joined host %+v", jr.Host)
	}
	if _, err := tls.X509KeyPair([]byte(jr.Certificate), keyPEM); err != nil {
		t.Errorf("agent certificate does not fit its key: %v", err)
	}
	block, _ := pem.Decode([]byte(jr.Certificate))
	cert, _ := x509.ParseCertificate(block.Bytes)
	pool, err := pki.PoolFromPEM([]byte(jr.CACert))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"}); err != nil {
		t.Errorf("agent certificate: %v", err)
	}

	var who api.Whoami
	e.must(http.StatusOK, "GET", "/v1/whoami", jr.Token, nil).decode(t, &who)
	if who.Host != "h1" {
		t.Errorf("whoami %+v", who)
	}
	e.must(http.StatusOK, "POST", "/v1/hosts/h1/heartbeat", jr.Token, api.HeartbeatRequest{TTL: "1s"})
	alive, _, _ := e.fake.Presence().Alive(context.Background())
	if !alive["h1"] || e.fake.alive["h1"] != minHeartbeatTTL {
		t.Errorf("presence after heartbeat: %v ttl %v", alive, e.fake.alive["h1"])
	}
	e.must(http.StatusOK, "POST", "/v1/hosts/h1/heartbeat", jr.Token, nil)
	if e.fake.alive["h1"] != DefaultHeartbeatTTL {
		t.Errorf("default heartbeat ttl %v", e.fake.alive["h1"])
	}
	// The host may write its own Host status.
	var h api.Host
	e.must(http.StatusOK, "GET", "/v1/hosts/h1", jr.Token, nil).decode(t, &h)
	h.Status.AgentVersion = "v2"
	e.must(http.StatusOK, "PUT", "/v1/hosts/h1/status", jr.Token, h)

	// Joining again revokes the old host token.
	var jr2 api.JoinResponse
	e.must(http.StatusOK, "POST", "/v1/hosts/join", jt.Status.Secret, req).decode(t, &jr2)
	e.must(http.StatusUnauthorized, "GET", "/v1/whoami", jr.Token, nil)
	e.must(http.StatusOK, "GET", "/v1/whoami", jr2.Token, nil)

	// Token listings never carry secret hashes.
	r := e.must(http.StatusOK, "GET", "/v1/tokens", e.admin, nil)
	if strings.Contains(string(r.body), "secretHash") {
		t.Errorf("token list leaks hashes: %s", r.body)
	}
	// Bad requests change nothing.
	before := e.fake.revision()
	bad := req
	bad.CSR = "junk"
	if ae := e.must(http.StatusBadRequest, "POST", "/v1/hosts/join", jt.Status.Secret, bad).apiError(); ae.Field != "csr" {
		t.Errorf("bad csr: %+v", ae)
	}
	bad = req
	bad.AgentEndpoint = "http://x"
	e.must(http.StatusBadRequest, "POST", "/v1/hosts/join", jt.Status.Secret, bad)
	if e.fake.revision() != before {
		t.Error("a refused join changed the store")
	}
	// Deleting the host revokes its credentials.
	e.must(http.StatusOK, "DELETE", "/v1/hosts/h1", e.admin, nil)
	e.must(http.StatusUnauthorized, "GET", "/v1/whoami", jr2.Token, nil)
}

func TestJoinTokenExpired(t *testing.T) {
	e := newEnv(t)
	name, secret, wire := auth.NewSecret()
	jt := &api.JoinToken{Metadata: api.ObjectMeta{Name: name}, Spec: api.JoinTokenSpec{ExpiresAt: time.Now().Add(-time.Second)},
		Status: api.TokenStatus{SecretHash: auth.Hash(secret)}}
	if _, err := e.store.Create(context.Background(), jt, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	req, _ := joinRequest(t, "h1", "https://127.0.0.1:9443")
	e.must(http.StatusUnauthorized, "POST", "/v1/hosts/join", wire, req)
	e.must(http.StatusNotFound, "GET", "/v1/hosts/h1", e.admin, nil)
}

func TestTokens(t *testing.T) {
	e := newEnv(t)
	e.project("a")
	e.project("b")
	padmin := e.userToken("pat", map[string]api.Role{"a": api.RoleAdmin})
	var tok api.Token
	e.must(http.StatusCreated, "POST", "/v1/tokens", padmin, api.TokenRequest{User: "newbie", Project: "a", Role: api.RoleMember, TTL: "1h"}).decode(t, &tok)
	if tok.Status.Secret == "" || tok.Status.SecretHash != "" || tok.Spec.ExpiresAt == nil {
		t.Fatalf("token %+v", tok)
	}
	var who api.Whoami
	e.must(http.StatusOK, "GET", "/v1/whoami", tok.Status.Secret, nil).decode(t, &who)
	if who.User != "newbie" || who.Roles["a"] != api.RoleMember {
		t.Errorf("whoami %+v", who)
	}
	e.must(http.StatusNotFound, "POST", "/v1/tokens", padmin, api.TokenRequest{User: "newbie", Project: "b", Role: api.RoleMember})
	e.must(http.StatusForbidden, "POST", "/v1/tokens", padmin, api.TokenRequest{User: "admin", Project: "a", Role: api.RoleViewer})
	e.must(http.StatusForbidden, "POST", "/v1/tokens", padmin, api.TokenRequest{User: "newbie"})
	e.must(http.StatusBadRequest, "POST", "/v1/tokens", padmin, api.TokenRequest{User: "newbie", Project: "a", Role: "owner"})
	// A user with roles elsewhere is out of the project admin's reach.
	e.must(http.StatusCreated, "POST", "/v1/tokens", e.admin, api.TokenRequest{User: "newbie", Project: "b", Role: api.RoleViewer})
	e.must(http.StatusForbidden, "POST", "/v1/tokens", padmin, api.TokenRequest{User: "newbie", Project: "a", Role: api.RoleViewer})
	// Deleting the user deletes its tokens.
	e.must(http.StatusOK, "DELETE", "/v1/users/newbie", e.admin, nil)
	e.must(http.StatusUnauthorized, "GET", "/v1/whoami", tok.Status.Secret, nil)
	var toks api.List[api.Token]
	e.must(http.StatusOK, "GET", "/v1/tokens", e.admin, nil).decode(t, &toks)
	for _, tk := range toks.Items {
		if tk.Spec.User == "newbie" {
			t.Errorf("token %s of a deleted user remains", tk.Metadata.Name)
		}
	}
}

func TestAgentProxy(t *testing.T) {
	e := newEnv(t)
	e.image("default", "img", false)
	in := e.instance(e.admin, "default", "web", "img")
	pair := e.agentCert("h1")
	var gotCN string
	agent := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotCN = r.TLS.PeerCertificates[0].Subject.CommonName
		switch r.URL.Path {
		case "/v1/instances/" + in.Metadata.UID + "/logs":
			w.Write([]byte("line " + r.URL.Query().Get("tail") + "\n"))
		case "/v1/instances/" + in.Metadata.UID + "/exec":
			var req api.ExecRequest
			json.NewDecoder(r.Body).Decode(&req)
			json.NewEncoder(w).Encode(api.ExecResponse{ExitCode: 3, Stdout: []byte(strings.Join(req.Command, " ")), Stderr: req.Stdin})
		default:
			http.NotFound(w, r)
		}
	}))
	agent.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: e.ca.Pool()}
	agent.StartTLS()
	t.Cleanup(agent.Close)

	path := "/v1/projects/default/instances/web"
	e.must(http.StatusConflict, "GET", path+"/logs", e.admin, nil)
	hostObj := &api.Host{Metadata: api.ObjectMeta{Name: "h1"}, Status: api.HostStatus{AgentEndpoint: agent.URL}}
	if _, err := e.store.Create(context.Background(), hostObj, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.place("default", "web", "h1", api.PhaseStarting)
	r := e.must(http.StatusOK, "GET", path+"/logs?tail=5", e.admin, nil)
	if string(r.body) != "line 5\n" {
		t.Errorf("logs = %q", r.body)
	}
	if gotCN != pki.ServerCN {
		t.Errorf("agent saw client %q", gotCN)
	}
	exec := api.ExecRequest{Command: []string{"echo", "hi"}, Stdin: []byte("in")}
	e.must(http.StatusConflict, "POST", path+"/exec", e.admin, exec) // not Running yet
	e.place("default", "web", "h1", api.PhaseRunning)
	var out api.ExecResponse
	e.must(http.StatusOK, "POST", path+"/exec", e.admin, exec).decode(t, &out)
	if out.ExitCode != 3 || string(out.Stdout) != "echo hi" || string(out.Stderr) != "in" {
		t.Errorf("exec = %+v", out)
	}
	agent.Close()
	if ae := e.must(http.StatusServiceUnavailable, "POST", path+"/exec", e.admin, exec).apiError(); ae.Code != api.CodeUnavailable {
		t.Errorf("agent down: %+v", ae)
	}
}

func TestBlobs(t *testing.T) {
	e := newEnv(t)
	data := []byte("hello blob")
	d := digestOf(data)
	var b api.Blob
	e.must(http.StatusCreated, "PUT", "/v1/blobs/"+d, e.admin, data).decode(t, &b)
	if b.Digest != d || b.Size != int64(len(data)) {
		t.Errorf("blob %+v", b)
	}
	r := e.must(http.StatusOK, "GET", "/v1/blobs/"+d, e.admin, nil)
	if string(r.body) != string(data) {
		t.Errorf("GET = %q", r.body)
	}
	r = e.must(http.StatusOK, "HEAD", "/v1/blobs/"+d, e.admin, nil)
	if r.header.Get("Content-Length") != "10" {
		t.Errorf("HEAD Content-Length %q", r.header.Get("Content-Length"))
	}
	bad := digestOf([]byte("other"))
	if ae := e.must(http.StatusBadRequest, "PUT", "/v1/blobs/"+bad, e.admin, data).apiError(); ae.Field != "digest" {
		t.Errorf("bad digest: %+v", ae)
	}
	e.must(http.StatusNotFound, "GET", "/v1/blobs/"+bad, e.admin, nil)
	e.must(http.StatusBadRequest, "PUT", "/v1/blobs/sha256:xyz", e.admin, data)
	entries, _ := os.ReadDir(e.srv.blobs.Dir())
	if len(entries) != 1 {
		t.Errorf("blob directory holds %d entries, want only the good blob", len(entries))
	}
	viewer := e.userToken("vic", map[string]api.Role{"default": api.RoleViewer})
	e.must(http.StatusForbidden, "PUT", "/v1/blobs/"+d, viewer, data)
	// No image refers to the blob: only cluster admins may read it.
	e.must(http.StatusNotFound, "GET", "/v1/blobs/"+d, viewer, nil)

	// The sweep removes old unreferenced blobs only.
	e.image("default", "img", false)
	orphan := []byte("orphan")
	e.must(http.StatusCreated, "PUT", "/v1/blobs/"+digestOf(orphan), e.admin, orphan)
	old := time.Now().Add(-2 * UnreferencedBlobAge)
	for _, dg := range []string{digestOf(orphan), digestOf([]byte("layer of default/img"))} {
		p := e.srv.blobs.Path(strings.TrimPrefix(dg, "sha256:"))
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.srv.SweepBlobs(context.Background()); err != nil {
		t.Fatal(err)
	}
	exists := func(dg string) bool {
		_, err := os.Stat(e.srv.blobs.Path(strings.TrimPrefix(dg, "sha256:")))
		return err == nil
	}
	if exists(digestOf(orphan)) {
		t.Error("old unreferenced blob kept")
	}
	if !exists(digestOf([]byte("layer of default/img"))) {
		t.Error("referenced blob removed")
	}
	if !exists(d) {
		t.Error("young unreferenced blob removed")
	}
}

func TestHealthAndMetrics(t *testing.T) {
	e := newEnv(t)
	if r := e.must(http.StatusOK, "GET", "/healthz", "", nil); strings.TrimSpace(string(r.body)) != "ok" {
		t.Errorf("healthz %q", r.body)
	}
	e.must(http.StatusOK, "GET", "/readyz", "", nil)
	e.must(http.StatusOK, "GET", "/v1/flavors", e.admin, nil)
	r := e.must(http.StatusOK, "GET", "/metrics", e.admin, nil)
	for _, want := range []string{`ouro_apiserver_requests_total{code="200",method="GET",route="GET /v1/flavors"} 1`,
		"ouro_apiserver_request_duration_seconds_bucket", "go_goroutines", "ouro_apiserver_watches_in_flight 0"} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestPanicRecovered(t *testing.T) {
	e := newEnv(t)
	h := e.srv.metrics.instrument(e.srv.log, recoverPanics(e.srv.log, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	var body api.ErrorBody
	json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != http.StatusInternalServerError || body.Error == nil || body.Error.Code != api.CodeInternal {
		t.Errorf("panic answered %d %s", rec.Code, rec.Body)
	}
}

// TestMetricsNeedClusterAdmin: /metrics tells what the cloud runs and how
// busy it is, so only cluster admins read it; health stays open.
func TestMetricsNeedClusterAdmin(t *testing.T) {
	e := newEnv(t)
	e.project("p1")
	for _, tt := range []struct {
		name, token string
		want        int
		code        string
	}{
		{"no token", "", http.StatusUnauthorized, api.CodeUnauthorized},
		{"bad token", "ouro_nope", http.StatusUnauthorized, api.CodeUnauthorized},
		{"project admin", e.userToken("pa", map[string]api.Role{"p1": api.RoleAdmin}), http.StatusForbidden, api.CodeForbidden},
		{"viewer", e.userToken("v", map[string]api.Role{"p1": api.RoleViewer}), http.StatusForbidden, api.CodeForbidden},
		{"host", e.hostToken("h1"), http.StatusForbidden, api.CodeForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.must(tt.want, "GET", "/metrics", tt.token, nil)
			if got := r.apiError().Code; got != tt.code {
				t.Errorf("code %q, want %q", got, tt.code)
			}
			if strings.Contains(string(r.body), "ouro_apiserver") {
				t.Errorf("refused answer carries metrics: %s", r.body)
			}
		})
	}
	e.must(http.StatusOK, "GET", "/healthz", "", nil)
}

func TestClosedAgentConnectionShortensPresence(t *testing.T) {
	e := newEnv(t)
	// The agent's endpoint: a listener the test closes as a killed agent's.
	agent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	probed := make(chan struct{}, 10)
	go func() {
		for {
			c, err := agent.Accept()
			if err != nil {
				return
			}
			c.Close()
			probed <- struct{}{}
		}
	}()
	var jt api.JoinToken
	e.must(http.StatusCreated, "POST", "/v1/jointokens", e.admin, api.JoinTokenRequest{TTL: "1h"}).decode(t, &jt)
	req, _ := joinRequest(t, "h1", "https://"+agent.Addr().String())
	var jr api.JoinResponse
	e.must(http.StatusOK, "POST", "/v1/hosts/join", jt.Status.Secret, req).decode(t, &jr)
	ttl := func() time.Duration {
		e.fake.mu.Lock()
		defer e.fake.mu.Unlock()
		return e.fake.alive["h1"]
	}
	e.must(http.StatusOK, "POST", "/v1/hosts/h1/heartbeat", jr.Token, nil)

	// The connection closes while the agent lives: it is probed, and
	// nothing changes.
	e.ts.Client().CloseIdleConnections()
	select {
	case <-probed:
	case <-time.After(10 * time.Second):
		t.Fatal("the live agent's endpoint was not probed")
	}
	if got := ttl(); got != DefaultHeartbeatTTL {
		t.Fatalf("presence TTL %v after a live agent's connection closed, want %v", got, DefaultHeartbeatTTL)
	}
	// The agent is killed: its endpoint refuses, its connection closes.
	agent.Close()
	e.must(http.StatusOK, "POST", "/v1/hosts/h1/heartbeat", jr.Token, nil)
	e.ts.Client().CloseIdleConnections()
	wait.For(t, 10*time.Second, "the presence shortened", func() bool { return ttl() == SuspectTTL })
	// A heartbeat (a restarted agent's) gives the full TTL back.
	e.must(http.StatusOK, "POST", "/v1/hosts/h1/heartbeat", jr.Token, nil)
	if got := ttl(); got != DefaultHeartbeatTTL {
		t.Fatalf("presence TTL %v after the next heartbeat, want %v", got, DefaultHeartbeatTTL)
	}
}
