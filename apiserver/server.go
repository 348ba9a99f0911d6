// Package apiserver serves the Ouroboros REST API (docs/api.md) over a
// store.Interface: authentication (bearer tokens, or the web console's
// session cookies with their CSRF tokens, package session) and
// authorization of every request,
// validation and defaulting per kind (instances and what they attach to
// through package admission), optimistic concurrency, idempotent
// creates, list and watch streams (served by package watchcache), blob
// uploads and reads (stored by package blobstore, scoped to the images the
// caller may read by package blobaccess, copied between servers by package
// blobrepl), host join and
// heartbeats, and an instance's logs, exec and console (through package
// agentproxy). Every other path is the web console (Config.Console).
//
//	request ─▶ metrics/log ─▶ recover ─▶ mux ─▶ authenticate ─▶ authorize ─▶ decode/validate ─▶ store
package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/accesskey"
	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/agentproxy"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/blobaccess"
	"github.com/ouroboros-cloud/ouro/blobrepl"
	"github.com/ouroboros-cloud/ouro/blobstore"
	"github.com/ouroboros-cloud/ouro/ec2"
	"github.com/ouroboros-cloud/ouro/ipam"
	"github.com/ouroboros-cloud/ouro/pki"
	"github.com/ouroboros-cloud/ouro/record"
	"github.com/ouroboros-cloud/ouro/session"
	"github.com/ouroboros-cloud/ouro/store"
	"github.com/ouroboros-cloud/ouro/watchcache"
)

// DefaultBookmarkInterval is how often an idle watch gets a BOOKMARK.
const DefaultBookmarkInterval = 10 * time.Second

// Config configures a Server.
type Config struct {
	// Store holds every object.
	Store store.Interface
	// DataDir keeps admin.token and blobs/.
	DataDir string
	// CA signs agents' certificates at join and is trusted when calling
	// agents.
	CA *pki.CA
	// ClientCert is presented to agents when proxying logs and exec;
	// normally the server's own certificate from pki.LoadOrCreateServerCert.
	ClientCert *tls.Certificate
	// Logger receives request logs (debug) and errors; default slog.Default().
	Logger *slog.Logger
	// BookmarkInterval overrides DefaultBookmarkInterval (tests).
	BookmarkInterval time.Duration
	// AuthCacheTTL overrides auth.DefaultCacheTTL; negative disables the cache.
	AuthCacheTTL time.Duration
	// MaxBlobBytes bounds one uploaded blob; default DefaultMaxBlobBytes.
	MaxBlobBytes int64
	// IPAM allocates floating IPs (and, through Admission, instance
	// addresses and VNIs); default an ipam.Allocator over Store.
	IPAM *ipam.Allocator
	// Admission admits instances and what they attach to; default an
	// admission.Admitter over Store and IPAM.
	Admission *admission.Admitter
	// Servers manages the control plane's servers; nil answers their
	// routes with NotFound (external etcd, tests).
	Servers Servers
	// Blobs is the blob store; default one in DataDir/blobs/sha256.
	Blobs *blobstore.Store
	// BlobAccess decides who may read and refer to which blob; default
	// an index over Store.
	BlobAccess *blobaccess.Index
	// Replicator copies blobs to and from the other servers and serves
	// their internal routes; nil keeps blobs on this server only.
	Replicator *blobrepl.Replicator
	// CheckPool, when set, checks a ceph storage pool against its
	// cluster when it is created or its Ceph settings change (monitors
	// answer, the key is accepted, the pool exists), answering an
	// *api.Error that names the field; nil checks the form only.
	CheckPool func(ctx context.Context, p *api.StoragePool) error
	// Console, when set, serves every path outside /v1, /healthz,
	// /readyz and /metrics: the web console (package console). Nil
	// answers those paths with NotFound.
	Console http.Handler
}

// Server is the API server. It keeps no state of its own beyond caches:
// every object lives in the store.
type Server struct {
	cfg     Config
	store   store.Interface
	log     *slog.Logger
	authn   *auth.Authenticator
	metrics *metrics
	handler http.Handler
	// blobs keeps the uploaded blobs in the data directory.
	blobs *blobstore.Store
	// blobAccess decides who may read and refer to which blob.
	blobAccess *blobaccess.Index
	agents     *agentproxy.Client
	// watches serves watch streams, and full lists when the store can
	// list in snapshots.
	watches *watchcache.Cache
	// adm admits instances, groups, networks and security groups.
	adm *admission.Admitter
	// addrs allocates floating IPs.
	addrs *ipam.Allocator
	// sessions keeps the console's sign-in sessions; limiter slows down
	// guessing passwords.
	sessions *session.Manager
	limiter  *session.Limiter
	// events records what the teaching actions did, for the console's
	// timeline.
	events record.Sink

	// sealer seals access keys' secrets; ec2 serves the EC2 and STS
	// Query APIs signed with them. Both are nil without a CA.
	sealer *accesskey.Sealer
	ec2    *ec2.Handler
	// conns maps each open connection (net.Conn) to the *hostConns of
	// the hosts heartbeating over it (ConnContext, ConnState).
	conns sync.Map

	// life ends open streams when the server is closed.
	life  context.Context
	close context.CancelFunc
}

// New returns a Server. It has no side effects: directories are made when
// first needed.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("apiserver: Config.Store is required")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("apiserver: Config.DataDir is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BookmarkInterval <= 0 {
		cfg.BookmarkInterval = DefaultBookmarkInterval
	}
	if cfg.MaxBlobBytes <= 0 {
		cfg.MaxBlobBytes = DefaultMaxBlobBytes
	}
	if cfg.IPAM == nil {
		cfg.IPAM = ipam.New(ipam.Config{Store: cfg.Store})
	}
	if cfg.Admission == nil {
		cfg.Admission = admission.New(admission.Config{Store: cfg.Store, IPAM: cfg.IPAM})
	}
	s := &Server{
		cfg:     cfg,
		store:   cfg.Store,
		log:     cfg.Logger,
		authn:   auth.NewAuthenticator(cfg.Store),
		metrics: newMetrics(),
		blobs:   cfg.Blobs,
		adm:     cfg.Admission,
		addrs:   cfg.IPAM,

		sessions: session.NewManager(cfg.Store),
		limiter:  session.NewLimiter(),
		events:   record.New(cfg.Store, "apiserver").WithLogger(cfg.Logger),
	}
	if s.blobs == nil {
		s.blobs = blobstore.New(filepath.Join(cfg.DataDir, "blobs", "sha256"), cfg.Logger)
	}
	s.blobAccess = cfg.BlobAccess
	if s.blobAccess == nil {
		s.blobAccess = blobaccess.New(blobaccess.Config{Store: cfg.Store, UploadTTL: UnreferencedBlobAge})
	}
	s.life, s.close = context.WithCancel(context.Background())
	s.watches = watchcache.New(s.life, watchcache.Config{Store: cfg.Store, Logger: cfg.Logger,
		Prepare: prepareOut, ErrorOf: toAPIError})
	s.metrics.reg.MustRegister(s.watches.Collectors()...)
	switch {
	case cfg.AuthCacheTTL < 0:
		s.authn.SetCacheTTL(0)
	case cfg.AuthCacheTTL > 0:
		s.authn.SetCacheTTL(cfg.AuthCacheTTL)
	}
	s.agents = agentproxy.New(cfg.CA, cfg.ClientCert)
	if cfg.CA != nil {
		key, err := cfg.CA.DeriveKey(accesskey.Purpose)
		if err != nil {
			return nil, fmt.Errorf("apiserver: %w", err)
		}
		if s.sealer, err = accesskey.NewSealer(key); err != nil {
			return nil, fmt.Errorf("apiserver: %w", err)
		}
		ecfg := ec2.Config{Store: cfg.Store, Objects: s, Sealer: s.sealer, Logger: cfg.Logger, Life: s.life}
		if s.watches.CanList() {
			ecfg.Lists = s.watches
		}
		s.ec2 = ec2.New(ecfg)
	}
	mux := http.NewServeMux()
	s.routes(mux)
	s.handler = s.metrics.instrument(s.log, recoverPanics(s.log, mux))
	return s, nil
}

// Handler returns the HTTP handler serving the whole API.
func (s *Server) Handler() http.Handler { return s.handler }

// Close ends open watch and log streams. The handler keeps answering
// other requests.
func (s *Server) Close() error {
	s.close()
	return nil
}

// streamContext returns a context that ends when the client leaves or the
// server is closed.
func (s *Server) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.life, cancel)
	return ctx, func() { stop(); cancel() }
}

// handlerFunc is an authenticated handler; a returned error is written as
// an api.Error body unless the handler already answered.
type handlerFunc func(w http.ResponseWriter, r *http.Request, id *auth.Identity) error

func (s *Server) routes(mux *http.ServeMux) {
	for _, k := range api.Kinds() {
		if k == api.AccessKeyKind {
			continue // accesskeys.go
		}
		base := "/v1/" + k.Plural
		if k.Namespaced {
			mux.Handle("GET "+base, s.authed(s.listOrWatch(k)))
			base = "/v1/projects/{project}/" + k.Plural
		}
		mux.Handle("GET "+base, s.authed(s.listOrWatch(k)))
		if k != api.TokenKind && k != api.JoinTokenKind {
			mux.Handle("POST "+base, s.authed(s.create(k)))
		}
		mux.Handle("GET "+base+"/{name}", s.authed(s.get(k)))
		mux.Handle("PUT "+base+"/{name}", s.authed(s.update(k)))
		mux.Handle("PUT "+base+"/{name}/status", s.authed(s.updateStatus(k)))
		mux.Handle("DELETE "+base+"/{name}", s.authed(s.delete(k)))
	}
	inst := "/v1/projects/{project}/instances/{name}/"
	mux.Handle("POST "+inst+"start", s.authed(s.instanceAction(auth.VerbStart)))
	mux.Handle("POST "+inst+"stop", s.authed(s.instanceAction(auth.VerbStop)))
	mux.Handle("POST "+inst+"reboot", s.authed(s.instanceAction(auth.VerbReboot)))
	ag := &agentHandlers{agents: s.agents, getObject: s.getObject, streamContext: s.streamContext, events: s.events}
	mux.Handle("GET "+inst+"logs", s.authed(ag.logs))
	mux.Handle("POST "+inst+"exec", s.authed(ag.exec))
	mux.Handle("POST "+inst+"console", s.authed(ag.console))
	mux.Handle("GET "+inst+"exec", s.terminal(ag.execWS))
	mux.Handle("GET "+inst+"console", s.terminal(ag.consoleWS))
	mux.Handle("POST "+inst+"crash", s.authed(ag.crash))
	mux.Handle("POST "+inst+"portforward", s.authed(ag.portForward))

	sg := "/v1/projects/{project}/securitygroups/{name}/rules"
	mux.Handle("POST "+sg, s.authed(s.addRule))
	mux.Handle("DELETE "+sg+"/{id}", s.authed(s.deleteRule))
	fip := "/v1/projects/{project}/floatingips/{name}/"
	mux.Handle("POST "+fip+"associate", s.authed(s.associate(false)))
	mux.Handle("POST "+fip+"disassociate", s.authed(s.associate(true)))

	blobs := &blobHandlers{blobs: s.blobs, access: s.blobAccess, maxBytes: s.cfg.MaxBlobBytes, repl: s.cfg.Replicator}
	mux.Handle("GET /v1/blobs/{digest}", s.authed(blobs.get))
	mux.Handle("PUT /v1/blobs/{digest}", s.authed(blobs.put))
	if s.cfg.Replicator != nil {
		mux.Handle(blobrepl.PathPrefix, s.cfg.Replicator.Handler())
	}
	mux.Handle("POST /v1/tokens", s.authed(s.createToken))
	mux.Handle("POST /v1/jointokens", s.authed(s.createJoinToken))
	mux.HandleFunc("POST /v1/hosts/join", s.join)
	mux.Handle("POST /v1/hosts/{name}/heartbeat", s.authed(s.heartbeat))
	mux.Handle("POST /v1/hosts/{name}/drain", s.authed(s.drain))
	mux.Handle("GET /v1/whoami", s.authed(s.whoami))
	mux.Handle("GET /v1/storagepools/{name}/key", s.authed(s.storagePoolKey))
	s.serverRoutes(mux)
	s.sessionRoutes(mux)
	s.accessKeyRoutes(mux)

	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.authed(s.serveMetrics))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if s.ec2 != nil && ec2.IsQueryRequest(r) {
			// The AWS CLI and SDKs POST signed forms to "/" (docs/ec2.md).
			s.ec2.ServeHTTP(w, r)
			return
		}
		if s.cfg.Console != nil && !apiPath(r.URL.Path) {
			s.cfg.Console.ServeHTTP(w, r)
			return
		}
		s.writeError(w, r, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound,
			Message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path), Hint: "see docs/api.md for the routes"})
	})
}

// apiPath reports whether path belongs to the API rather than the
// console.
func apiPath(path string) bool {
	switch path {
	case "/v1", "/healthz", "/readyz", "/metrics":
		return true
	}
	return strings.HasPrefix(path, "/v1/")
}

type identityKey struct{}

// authed authenticates the bearer token, or else the session cookie, and
// runs h with the identity.
func (s *Server) authed(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := s.authenticate(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if lw, ok := w.(*statusWriter); ok {
			lw.identity = id.String()
		}
		if err := h(w, r, id); err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (s *Server) authenticate(r *http.Request) (*auth.Identity, error) {
	wire, ok := bearer(r)
	if !ok {
		id, _, err := s.authenticateSession(r)
		return id, err
	}
	id, err := s.authn.Authenticate(r.Context(), wire)
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		return nil, unauthorized("the token is not valid or has expired")
	case err != nil:
		return nil, unavailable(fmt.Errorf("authenticate: %w", err))
	}
	return id, nil
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// authorize turns an authorization decision into an error.
func authorize(id *auth.Identity, a auth.Attributes, kind, name string) error {
	switch auth.Authorize(id, a) {
	case auth.Allow:
		return nil
	case auth.DenyNotFound:
		if name == "" {
			name = a.Project
			kind = "Project"
		}
		return api.NotFound(kind, name)
	default:
		return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden,
			Message: fmt.Sprintf("%s may not %s %s", id, a.Verb, a.Resource),
			Hint:    "ask an administrator for a role that allows it"}
	}
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	writeJSON(w, http.StatusOK, id.Whoami())
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var p api.Project
	err := s.store.Get(ctx, api.ProjectKind, "", "default", &p)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.writeError(w, r, unavailable(fmt.Errorf("store: %w", err)))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}
