package blobrepl_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/apiserver"
	"github.com/ouroboros-cloud/ouro/blobaccess"
	"github.com/ouroboros-cloud/ouro/blobrepl"
	"github.com/ouroboros-cloud/ouro/blobstore"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/membership"
	"github.com/ouroboros-cloud/ouro/pki"
	"github.com/ouroboros-cloud/ouro/store"
)

// waitFor bounds the waits on conditions.
const waitFor = 30 * time.Second

// cluster is servers over one etcd and one CA.
type cluster struct {
	t    *testing.T
	etcd *clientv3.Client
	ca   *pki.CA
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd and API servers")
	}
	ca, err := pki.LoadOrCreateCA(filepath.Join(t.TempDir(), "pki"))
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, etcd: etcdtest.Client(t), ca: ca}
}

// server is one API server of the cluster with its replicator, served
// over TLS as the daemon serves it: a client certificate is asked for.
type server struct {
	name  string
	url   string
	admin string
	blobs *blobstore.Store
	// client trusts the cluster CA and presents no certificate.
	client *http.Client
}

// start runs server name until the test ends and waits until its
// presence is announced.
func (c *cluster) start(name string) *server {
	t := c.t
	t.Helper()
	dir := t.TempDir()
	st := store.NewEtcd(c.etcd)
	cert, err := c.ca.IssueServerCert(nil)
	if err != nil {
		t.Fatal(err)
	}
	blobs := blobstore.New(filepath.Join(dir, "blobs", "sha256"), etcdtest.Quiet())
	access := blobaccess.New(blobaccess.Config{Store: st})
	repl := blobrepl.New(blobrepl.Config{Name: name, Store: blobs, Access: access, CA: c.ca, Cert: &cert,
		Logger: etcdtest.Quiet(), Peers: func(ctx context.Context) (map[string]string, error) {
			return membership.Present(ctx, c.etcd)
		}})
	srv, err := apiserver.New(apiserver.Config{Store: st, DataDir: dir, CA: c.ca, ClientCert: &cert,
		Logger: etcdtest.Quiet(), AuthCacheTTL: -1, Blobs: blobs, BlobAccess: access, Replicator: repl})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait(); srv.Close() })
	admin, err := srv.Bootstrap(ctx)
	if err != nil {
		t.Fatalf("bootstrap %s: %v", name, err)
	}
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert}
	ts.StartTLS()
	t.Cleanup(ts.Close)

	members := membership.New(membership.Config{Client: c.etcd, Name: name, APIURL: ts.URL, Logger: etcdtest.Quiet()})
	wg.Go(func() { members.Announce(ctx, func(context.Context) error { return nil }) })
	wg.Go(func() { repl.Run(ctx) })
	eventually(t, name+" announced", func() bool {
		p, err := membership.Present(ctx, c.etcd)
		return err == nil && p[name] == ts.URL
	})
	return &server{name: name, url: ts.URL, admin: admin, blobs: blobs, client: c.httpClient(nil)}
}

// httpClient trusts the cluster CA and presents cert, if any.
func (c *cluster) httpClient(cert *tls.Certificate) *http.Client {
	conf := &tls.Config{RootCAs: c.ca.Pool()}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: conf}}
}

// eventually waits until cond holds, failing the test after waitFor.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, waitFor)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// do sends a request to s with token (if any) and returns the status and
// body.
func (s *server) do(t *testing.T, hc *http.Client, method, path, token string, body []byte) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// must sends a request and fails the test unless it is answered want.
func (s *server) must(t *testing.T, want int, method, path, token string, body []byte) []byte {
	t.Helper()
	got, b := s.do(t, s.client, method, path, token, body)
	if got != want {
		t.Fatalf("%s %s on %s: %d %s, want %d", method, path, s.name, got, b, want)
	}
	return b
}

// upload puts data as a blob through s and returns its hex digest.
func (s *server) upload(t *testing.T, token string, data []byte) string {
	t.Helper()
	hx := digestOf(data)
	s.must(t, http.StatusCreated, http.MethodPut, "/v1/blobs/sha256:"+hx, token, data)
	return hx
}

func (s *server) has(hx string) bool {
	_, err := s.blobs.Stat(hx)
	return err == nil
}

// memberToken issues a token of a member of project default.
func (s *server) memberToken(t *testing.T, user string) string {
	t.Helper()
	body, _ := json.Marshal(api.TokenRequest{User: user, Project: "default", Role: api.RoleMember})
	var tok api.Token
	if err := json.Unmarshal(s.must(t, http.StatusCreated, http.MethodPost, "/v1/tokens", s.admin, body), &tok); err != nil {
		t.Fatal(err)
	}
	return tok.Status.Secret
}

// image makes an image of project default with one layer.
func (s *server) image(t *testing.T, token, name, hx string, size int) {
	t.Helper()
	img := api.Image{Metadata: api.ObjectMeta{Name: name, Project: "default"}, Spec: api.ImageSpec{Format: api.FormatOCI,
		Layers: []api.Blob{{Digest: "sha256:" + hx, Size: int64(size), MediaType: api.MediaTypeLayerTar}}}}
	body, _ := json.Marshal(img)
	s.must(t, http.StatusCreated, http.MethodPost, "/v1/projects/default/images", token, body)
}

func TestReplication(t *testing.T) {
	c := newCluster(t)
	a := c.start("a")

	// Alone, a server stores uploads as it always did.
	alone := []byte("uploaded while alone")
	hxAlone := a.upload(t, a.admin, alone)

	b := c.start("b")
	// An upload is answered only once another ready server holds it.
	layer := []byte("a layer uploaded to a")
	tok := a.memberToken(t, "mia")
	hx := a.upload(t, tok, layer)
	if !b.has(hx) {
		t.Fatal("the upload was answered before b held the blob")
	}
	// Its uploader may make an image of it through b: the push carried
	// the upload's record.
	b.image(t, tok, "img", hx, len(layer))
	a.image(t, a.admin, "alone", hxAlone, len(alone))

	// A server started later fetches every blob images refer to.
	c3 := c.start("c")
	eventually(t, "c holds the blobs images refer to", func() bool { return c3.has(hx) && c3.has(hxAlone) })

	// A server that lost its blobs fetches one it is asked for.
	if err := os.RemoveAll(a.blobs.Dir()); err != nil {
		t.Fatal(err)
	}
	got := a.must(t, http.StatusOK, http.MethodGet, "/v1/blobs/sha256:"+hx, tok, nil)
	if !bytes.Equal(got, layer) {
		t.Fatalf("GET through a = %q, want %q", got, layer)
	}
	if !a.has(hx) {
		t.Error("a served the blob without keeping it")
	}
	// A blob nobody holds is still not found.
	a.must(t, http.StatusNotFound, http.MethodGet, "/v1/blobs/sha256:"+digestOf([]byte("nowhere")), a.admin, nil)
}

func TestInternalRoutesOnlyForServers(t *testing.T) {
	c := newCluster(t)
	a := c.start("a")
	data := []byte("pushed by a peer")
	hx := digestOf(data)
	path := blobrepl.PathPrefix + "sha256:" + hx

	serverCert, err := c.ca.IssueServerCert(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, csrPEM, err := pki.NewKeyAndCSR("h1", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	agentPEM, err := c.ca.SignCSR(csrPEM, []string{"127.0.0.1"}, "h1")
	if err != nil {
		t.Fatal(err)
	}
	agentCert, err := tls.X509KeyPair(agentPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.LoadOrCreateCA(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	foreignCert, err := other.IssueServerCert(nil)
	if err != nil {
		t.Fatal(err)
	}
	tenant := a.memberToken(t, "tia")

	tests := []struct {
		name  string
		cert  *tls.Certificate
		token string
		want  int
	}{
		{"tenant token", nil, tenant, http.StatusUnauthorized},
		{"admin token", nil, a.admin, http.StatusUnauthorized},
		{"agent certificate", &agentCert, "", http.StatusUnauthorized},
		{"server certificate of another CA", &foreignCert, "", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hc := c.httpClient(tt.cert)
			if got, body := a.do(t, hc, http.MethodPut, path, tt.token, data); got != tt.want {
				t.Errorf("PUT: %d %s, want %d", got, body, tt.want)
			}
			if got, body := a.do(t, hc, http.MethodGet, path, tt.token, nil); got != tt.want {
				t.Errorf("GET: %d %s, want %d", got, body, tt.want)
			}
			if a.has(hx) {
				t.Fatal("a refused push left the blob")
			}
		})
	}

	peer := c.httpClient(&serverCert)
	// A corrupt push is refused and leaves nothing behind.
	if got, body := a.do(t, peer, http.MethodPut, blobrepl.PathPrefix+"sha256:"+digestOf([]byte("other")), "", data); got != http.StatusBadRequest {
		t.Errorf("corrupt push: %d %s, want 400", got, body)
	}
	entries, err := os.ReadDir(a.blobs.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("a corrupt push left %d files", len(entries))
	}
	// A server's push is taken, and taken again.
	for i := range 2 {
		if got, body := a.do(t, peer, http.MethodPut, path, "", data); got != http.StatusCreated {
			t.Fatalf("push %d: %d %s, want 201", i, got, body)
		}
	}
	got, body := a.do(t, peer, http.MethodGet, path, "", nil)
	if got != http.StatusOK || !bytes.Equal(body, data) {
		t.Errorf("GET by a server: %d %q", got, body)
	}
	if got, _ := a.do(t, peer, http.MethodGet, blobrepl.PathPrefix+"sha256:"+digestOf([]byte("none")), "", nil); got != http.StatusNotFound {
		t.Errorf("GET of a missing blob: %d, want 404", got)
	}
}

func TestUploadFailsWhenNoPeerTakesIt(t *testing.T) {
	c := newCluster(t)
	a := c.start("a")
	// A peer that is announced but refuses every push.
	dead := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	t.Cleanup(dead.Close)
	ctx := context.Background()
	lease, err := c.etcd.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	val := fmt.Sprintf(`{"apiURL":%q}`, dead.URL)
	if _, err := c.etcd.Put(ctx, "/ouro/servers/dead", val, clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	data := []byte("nobody else takes it")
	got, body := a.do(t, a.client, http.MethodPut, "/v1/blobs/sha256:"+digestOf(data), a.admin, data)
	if got != http.StatusServiceUnavailable {
		t.Errorf("upload with only a broken peer: %d %s, want 503", got, body)
	}
}

func TestSweepKeepsPushInProgress(t *testing.T) {
	c := newCluster(t)
	a := c.start("a")
	cert, err := c.ca.IssueServerCert(nil)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("pushed slowly "), 4096)
	hx := digestOf(data)
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPut, a.url+blobrepl.PathPrefix+"sha256:"+hx, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(data))
	answered := make(chan int, 1)
	go func() {
		resp, err := c.httpClient(&cert).Do(req)
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	half := len(data) / 2
	if _, err := pw.Write(data[:half]); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the push's temporary file exists", func() bool {
		entries, _ := os.ReadDir(a.blobs.Dir())
		return len(entries) == 1
	})
	nothing := func(context.Context) (map[string]bool, error) { return nil, nil }
	if err := a.blobs.Sweep(context.Background(), nothing); err != nil {
		t.Fatal(err)
	}
	if _, err := pw.Write(data[half:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if got := <-answered; got != http.StatusCreated {
		t.Fatalf("push across a sweep: %d, want 201", got)
	}
	// A fresh copy is not swept either: it has an hour to be referred to.
	if err := a.blobs.Sweep(context.Background(), nothing); err != nil {
		t.Fatal(err)
	}
	if !a.has(hx) {
		t.Error("the sweep removed a blob just pushed")
	}
}
