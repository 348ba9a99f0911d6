package endpoint

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/pki"
)

// stubDriver is a driver.Driver and driver.Execer whose instances only
// have a state and a log file.
type stubDriver struct {
	logDir string
	execFn func(argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error)

	mu      sync.Mutex
	running map[string]bool
}

var (
	_ driver.Driver = (*stubDriver)(nil)
	_ driver.Execer = (*stubDriver)(nil)
)

func newStubDriver(t *testing.T) *stubDriver {
	t.Helper()
	return &stubDriver{logDir: t.TempDir(), running: map[string]bool{}}
}

func (d *stubDriver) Name() string                              { return "stub" }
func (d *stubDriver) Fingerprint(context.Context) driver.Info   { return driver.Info{Available: true} }
func (d *stubDriver) Create(context.Context, driver.Spec) error { return nil }
func (d *stubDriver) Delete(context.Context, string) error      { return nil }
func (d *stubDriver) List(context.Context) ([]string, error)    { return nil, nil }
func (d *stubDriver) LogPath(id string) string                  { return filepath.Join(d.logDir, id+".log") }

func (d *stubDriver) Start(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running[id] = true
	return nil
}

func (d *stubDriver) Stop(_ context.Context, id string, _ time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running[id] = false
	return nil
}

func (d *stubDriver) Inspect(_ context.Context, id string) (driver.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	running, ok := d.running[id]
	switch {
	case !ok:
		return driver.Status{}, driver.ErrNotFound
	case running:
		return driver.Status{State: driver.StateRunning}, nil
	}
	return driver.Status{State: driver.StateStopped}, nil
}

func (d *stubDriver) Exec(_ context.Context, _ string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if d.execFn == nil {
		return 0, errors.New("no exec in this test")
	}
	return d.execFn(argv, stdin, stdout, stderr)
}

// stubInstances holds instances by uid, all run by one driver.
type stubInstances struct {
	d     driver.Driver
	byUID map[string]*api.Instance
}

func (s stubInstances) Lookup(uid string) (*api.Instance, driver.Driver, *api.Error) {
	inst, ok := s.byUID[uid]
	if !ok {
		return nil, nil, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: fmt.Sprintf("no instance with uid %q", uid)}
	}
	return inst, s.d, nil
}

// stubIdentity is fixed credentials.
type stubIdentity struct {
	cert tls.Certificate
	pool *x509.CertPool
}

func (s stubIdentity) TLSIdentity() (tls.Certificate, *x509.CertPool, bool) {
	return s.cert, s.pool, true
}

// testEndpoint is a served endpoint and a server's client for it.
type testEndpoint struct {
	url    string // base URL
	client *http.Client
	ca     *pki.CA
}

// serve runs an endpoint for d with running instances uids until the
// test ends.
func serve(t *testing.T, d driver.Driver, uids ...string) *testEndpoint {
	t.Helper()
	return serveReach(t, d, nil, uids...)
}

// serveReach is serve with a way to reach instances for port forwards.
func serveReach(t *testing.T, d driver.Driver, reach Reach, uids ...string) *testEndpoint {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Server certificates serve both ways: the endpoint presents one, the
	// caller another (common name ouro-server).
	own, err := ca.IssueServerCert(nil)
	if err != nil {
		t.Fatal(err)
	}
	caller, err := ca.IssueServerCert(nil)
	if err != nil {
		t.Fatal(err)
	}
	insts := stubInstances{d: d, byUID: map[string]*api.Instance{}}
	for _, uid := range uids {
		insts.byUID[uid] = &api.Instance{Metadata: api.ObjectMeta{Project: "demo", Name: "i-" + uid, UID: uid}}
		if err := d.Start(t.Context(), uid); err != nil {
			t.Fatal(err)
		}
	}
	s := New(Config{
		Instances: insts,
		Identity:  stubIdentity{cert: own, pool: ca.Pool()},
		Reach:     reach,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{caller}}}
	t.Cleanup(tr.CloseIdleConnections)
	return &testEndpoint{url: "https://" + ln.Addr().String(), client: &http.Client{Transport: tr}, ca: ca}
}
