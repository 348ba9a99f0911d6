package apiserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/ipam"
	"github.com/ouroboros-cloud/ouro/pki"
	"github.com/ouroboros-cloud/ouro/store"
)

// env is a server over a store, served by an httptest server, with a
// bootstrapped admin.
type env struct {
	t     testing.TB
	srv   *Server
	store store.Interface
	fake  *fakeStore
	ts    *httptest.Server
	admin string
	ca    *pki.CA
}

func newEnv(t testing.TB) *env {
	t.Helper()
	fs := newFakeStore()
	e := newEnvWith(t, fs, Config{})
	e.fake = fs
	return e
}

// newEnvLowestFirst is newEnv whose instances get the lowest free
// address of a network first.
func newEnvLowestFirst(t *testing.T) *env {
	t.Helper()
	fs := newFakeStore()
	addrs := ipam.New(ipam.Config{Store: fs, Offset: ipam.LowestFirst})
	e := newEnvWith(t, fs, Config{IPAM: addrs, Admission: admission.New(admission.Config{Store: fs, IPAM: addrs})})
	e.fake = fs
	return e
}

// newEtcdEnv is newEnv over a real store, an embedded etcd started for
// the test; it skips the test in -short mode.
func newEtcdEnv(t *testing.T) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd")
	}
	return newEnvWith(t, store.NewEtcd(etcdtest.Client(t)), Config{})
}

func newEnvWith(t testing.TB, st store.Interface, cfg Config) *env {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(dir + "/pki")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueServerCert(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store, cfg.DataDir, cfg.CA, cfg.ClientCert = st, dir, ca, &cert
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg.AuthCacheTTL == 0 {
		cfg.AuthCacheTTL = -1 // revocations show at once in tests
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.Config.ConnContext, ts.Config.ConnState = srv.ConnContext, srv.ConnState
	ts.Start()
	t.Cleanup(ts.Close)
	admin, err := srv.Bootstrap(context.Background())
	if err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	return &env{t: t, srv: srv, store: st, ts: ts, admin: admin, ca: ca}
}

// agentCert returns a serving certificate for the agent of host name,
// signed by the cluster CA as at join.
func (e *env) agentCert(name string) tls.Certificate {
	e.t.Helper()
	keyPEM, csrPEM, err := pki.NewKeyAndCSR(name, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	certPEM, err := e.ca.SignCSR(csrPEM, []string{"127.0.0.1"}, name)
	if err != nil {
		e.t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		e.t.Fatal(err)
	}
	return pair
}

// resp is an answer of the server.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) apiError() *api.Error {
	var b api.ErrorBody
	json.Unmarshal(r.body, &b)
	if b.Error == nil {
		return &api.Error{}
	}
	return b.Error
}

func (r resp) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// do sends a request; body is JSON-encoded unless it is a string or
// []byte. Extra headers come in pairs.
func (e *env) do(method, path, token string, body any, headers ...string) resp {
	e.t.Helper()
	var rd io.Reader
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
		ct = "application/octet-stream"
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: data}
}

// must sends a request and fails the test unless it answers want.
func (e *env) must(want int, method, path, token string, body any, headers ...string) resp {
	e.t.Helper()
	r := e.do(method, path, token, body, headers...)
	if r.status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.body)
	}
	return r
}

// userToken makes a user with roles and returns a token for it.
func (e *env) userToken(name string, roles map[string]api.Role) string {
	e.t.Helper()
	e.must(http.StatusCreated, "POST", "/v1/users", e.admin, api.User{Metadata: api.ObjectMeta{Name: name}, Spec: api.UserSpec{Roles: roles}})
	var tok api.Token
	e.must(http.StatusCreated, "POST", "/v1/tokens", e.admin, api.TokenRequest{User: name}).decode(e.t, &tok)
	return tok.Status.Secret
}

// hostToken stores a host token directly, as a join would.
func (e *env) hostToken(host string) string {
	e.t.Helper()
	name, secret, wire := auth.NewSecret()
	tok := &api.Token{Metadata: api.ObjectMeta{Name: name}, Spec: api.TokenSpec{Host: host}, Status: api.TokenStatus{SecretHash: auth.Hash(secret)}}
	if _, err := e.store.Create(context.Background(), tok, store.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	return wire
}

func (e *env) project(name string) {
	e.t.Helper()
	e.must(http.StatusCreated, "POST", "/v1/projects", e.admin, api.Project{Metadata: api.ObjectMeta{Name: name}})
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// image uploads one layer and makes an image of it.
func (e *env) image(project, name string, public bool) api.Image {
	e.t.Helper()
	layer := []byte("layer of " + project + "/" + name)
	e.must(http.StatusCreated, "PUT", "/v1/blobs/"+digestOf(layer), e.admin, layer)
	img := api.Image{Metadata: api.ObjectMeta{Name: name}, Spec: api.ImageSpec{Public: public, Format: api.FormatOCI,
		Layers: []api.Blob{{Digest: digestOf(layer), Size: int64(len(layer)), MediaType: api.MediaTypeLayerTar}}}}
	var out api.Image
	e.must(http.StatusCreated, "POST", "/v1/projects/"+project+"/images", e.admin, img).decode(e.t, &out)
	return out
}

func (e *env) instance(token, project, name, image string) api.Instance {
	e.t.Helper()
	var out api.Instance
	e.must(http.StatusCreated, "POST", "/v1/projects/"+project+"/instances", token, api.Instance{
		Metadata: api.ObjectMeta{Name: name}, Spec: api.InstanceSpec{Image: image, Flavor: "tiny"}}).decode(e.t, &out)
	return out
}

// place sets an instance's host and phase as the scheduler and agent would.
func (e *env) place(project, name, host string, phase api.InstancePhase) api.Instance {
	e.t.Helper()
	var in api.Instance
	if err := e.store.Get(context.Background(), api.InstanceKind, project, name, &in); err != nil {
		e.t.Fatal(err)
	}
	in.Status.Host, in.Status.Phase = host, phase
	if err := e.store.Update(context.Background(), &in); err != nil {
		e.t.Fatal(err)
	}
	return in
}

// jsonEqual reports whether a and b encode to the same JSON, so that an
// empty list equals a missing one.
func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
