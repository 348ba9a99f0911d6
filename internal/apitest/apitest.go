// Package apitest runs the real API server over a real store (an embedded
// etcd) for the tests of the API's clients, such as the CLI and the
// agent, and helps them make the tokens, projects and agent endpoints
// they need.
package apitest

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/apiserver"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/pki"
	"github.com/ouroboros-cloud/ouro/store"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// callTimeout bounds the calls the helpers make to the server.
const callTimeout = 30 * time.Second

// Config changes how Start serves the API.
type Config struct {
	// Wrap, if set, wraps the server's handler: tests use it to record
	// requests or to answer some of them in their own way (see Recorder).
	Wrap func(http.Handler) http.Handler
	// Servers, if set, makes the server's apiserver.Servers from the etcd
	// client and CA under it.
	Servers func(etcd *clientv3.Client, ca *pki.CA) apiserver.Servers
	// Console, if set, serves the paths outside the API
	// (apiserver.Config.Console).
	Console http.Handler
}

// Server is an API server over an embedded etcd, served on loopback
// until the test ends. Its project "default", default flavors, network
// and security group exist, as after a real bootstrap.
type Server struct {
	// URL is the base URL of the API.
	URL string
	// Admin is the bootstrap admin's token.
	Admin string
	// Store is the store under the server; tests write through it what
	// only agents and controllers would (statuses, events).
	Store store.Interface
	// Etcd is a client of the etcd under the store.
	Etcd *clientv3.Client
	// CA is the cluster CA: it signed the server's client certificate and
	// signs the agent endpoints made by Agent.
	CA *pki.CA
	// API is the server itself.
	API *apiserver.Server

	pkiDir string // holds the CA's certificate and key
}

// Start runs an API server over a fresh embedded etcd until the test ends.
func Start(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	etcd := etcdtest.Client(tb)
	st := store.NewEtcd(etcd)
	dir := tb.TempDir()
	ca, err := pki.LoadOrCreateCA(filepath.Join(dir, "pki"))
	if err != nil {
		tb.Fatalf("create CA: %v", err)
	}
	cert, err := ca.IssueServerCert(nil)
	if err != nil {
		tb.Fatalf("issue server certificate: %v", err)
	}
	var servers apiserver.Servers
	if cfg.Servers != nil {
		servers = cfg.Servers(etcd, ca)
	}
	srv, err := apiserver.New(apiserver.Config{Store: st, DataDir: dir, CA: ca, ClientCert: &cert,
		Logger: etcdtest.Quiet(), AuthCacheTTL: -1, Servers: servers, Console: cfg.Console})
	if err != nil {
		tb.Fatalf("new API server: %v", err)
	}
	tb.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	admin, err := srv.Bootstrap(ctx)
	if err != nil {
		tb.Fatalf("bootstrap: %v", err)
	}
	var h http.Handler = srv.Handler()
	if cfg.Wrap != nil {
		h = cfg.Wrap(h)
	}
	ts := httptest.NewServer(h)
	tb.Cleanup(ts.Close)
	return &Server{URL: ts.URL, Admin: admin, Store: st, Etcd: etcd, CA: ca, API: srv, pkiDir: filepath.Join(dir, "pki")}
}

// Client returns an API client that sends token.
func (s *Server) Client(tb testing.TB, token string) *client.Client {
	tb.Helper()
	c, err := client.New(client.Config{Server: s.URL, Token: token})
	if err != nil {
		tb.Fatalf("new client: %v", err)
	}
	return c
}

// Do sends one request as the admin and decodes the answer into out,
// failing the test on any error.
func (s *Server) Do(tb testing.TB, method, path string, in, out any) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if _, err := s.Client(tb, s.Admin).Do(ctx, method, path, nil, in, out); err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
}

// Project creates a project with its default network and security group.
func (s *Server) Project(tb testing.TB, name string) {
	tb.Helper()
	s.Do(tb, http.MethodPost, "/v1/projects", &api.Project{Metadata: api.ObjectMeta{Name: name}}, nil)
}

// Token issues a token for user with role in project (the user is made
// if missing) and returns its secret.
func (s *Server) Token(tb testing.TB, user, project string, role api.Role) string {
	tb.Helper()
	var tok api.Token
	s.Do(tb, http.MethodPost, "/v1/tokens", api.TokenRequest{User: user, Project: project, Role: role}, &tok)
	return tok.Status.Secret
}

// JoinToken makes a join token, as an administrator hands one to a new
// host, and returns its secret.
func (s *Server) JoinToken(tb testing.TB) string {
	tb.Helper()
	var jt api.JoinToken
	s.Do(tb, http.MethodPost, "/v1/jointokens", api.JoinTokenRequest{}, &jt)
	return jt.Status.Secret
}

// Join joins a host named name whose agent serves on endpoint and returns
// the host's token.
func (s *Server) Join(tb testing.TB, name, endpoint string) string {
	tb.Helper()
	joinToken := s.JoinToken(tb)
	_, csrPEM, err := pki.NewKeyAndCSR(name, []string{"127.0.0.1"})
	if err != nil {
		tb.Fatalf("make CSR: %v", err)
	}
	req := api.JoinRequest{Name: name, Address: "127.0.0.1", AgentEndpoint: endpoint, CSR: string(csrPEM),
		Capacity: api.Resources{VCPUs: 4, MemoryMiB: 8192, DiskGiB: 100}, Architecture: "amd64",
		Drivers: []string{api.DriverContainer}}
	var jr api.JoinResponse
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if _, err := s.Client(tb, joinToken).Do(ctx, http.MethodPost, "/v1/hosts/join", nil, req, &jr); err != nil {
		tb.Fatalf("join host %s: %v", name, err)
	}
	return jr.Token
}

// Agent serves h as the agent of host name, over TLS with a certificate
// of the cluster CA and asking for the server's client certificate as a
// real agent does, and joins the host with that endpoint. It returns the
// host's token.
func (s *Server) Agent(tb testing.TB, name string, h http.Handler) string {
	tb.Helper()
	keyPEM, csrPEM, err := pki.NewKeyAndCSR(name, []string{"127.0.0.1"})
	if err != nil {
		tb.Fatalf("make agent key: %v", err)
	}
	certPEM, err := s.CA.SignCSR(csrPEM, []string{"127.0.0.1"}, name)
	if err != nil {
		tb.Fatalf("sign agent certificate: %v", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		tb.Fatalf("agent key pair: %v", err)
	}
	ts := httptest.NewUnstartedServer(h)
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: s.CA.Pool()}
	ts.StartTLS()
	tb.Cleanup(ts.Close)
	return s.Join(tb, name, ts.URL)
}
