// Package etcdembed runs an etcd member inside the ouro process, tuned for
// small machines, and connects to external etcd clusters.
//
// The embedded member starts a cluster of its own, or joins an existing
// one (Config.InitialCluster and ClusterState "existing", after the
// cluster added it with MemberAdd): several servers then each run a
// member of one cluster ("stacked" etcd) and talk to their own. Peer
// traffic is TLS with client certificates from the cluster CA when the
// peer URL is https (Config.PeerTLS).
//
// The embedded server keeps its data in one directory: starting again on
// the same directory resumes with all keys intact, and the membership
// flags are then ignored.
package etcdembed

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Defaults for Config.
const (
	DefaultName      = "ouro"
	DefaultClientURL = "http://127.0.0.1:2379"
	DefaultPeerURL   = "http://127.0.0.1:2380"
)

// Tuning of the embedded server for small machines.
const (
	// snapshotCount is how many applied entries trigger a raft snapshot;
	// etcd's default (100,000) keeps far more log in memory than we need.
	snapshotCount = 10000
	// compactionRetention keeps at least this much history so that
	// watches (and their clients) can resume after a short outage.
	compactionRetention = "5m"
	// quotaBackendBytes is the size at which etcd raises a NOSPACE alarm.
	quotaBackendBytes = 2 << 30
	// readyTimeout bounds how long Start waits for the server to serve.
	readyTimeout = 60 * time.Second
	// dialTimeout bounds how long a client waits for a first connection.
	dialTimeout = 5 * time.Second
)

// Config says where an embedded etcd keeps data and listens.
type Config struct {
	// Name is the member name (default "ouro").
	Name string
	// DataDir holds the write-ahead log and database. Required.
	DataDir string
	// ClientURL is where clients connect (default http://127.0.0.1:2379).
	ClientURL string
	// PeerURL is the raft peer address (default http://127.0.0.1:2380).
	PeerURL string
	// InitialCluster is the members at first start, "name=peerURL,...";
	// empty means this member alone.
	InitialCluster string
	// ClusterState is "new" (default: start a cluster) or "existing"
	// (join the cluster of InitialCluster, which already added this
	// member).
	ClusterState string
	// PeerTLS secures peer traffic; required when PeerURL is https.
	PeerTLS *PeerTLS
	// Logger receives etcd's errors (default slog.Default()).
	Logger *slog.Logger
}

// PeerTLS names the files of a member's peer certificate: it serves and
// dials peers with it, and accepts only peers presenting a certificate
// signed by the CA.
type PeerTLS struct {
	CertFile, KeyFile, CAFile string
}

// Cluster states of Config.ClusterState.
const (
	ClusterNew      = "new"
	ClusterExisting = "existing"
)

// Server is a running embedded etcd with a client connected to it.
type Server struct {
	etcd      *embed.Etcd
	client    *clientv3.Client
	endpoints []string
	log       *slog.Logger
	closing   *atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

// Start starts an embedded etcd and waits until it serves clients or ctx
// ends (at most a minute).
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("etcdembed: DataDir is required")
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.ClientURL == "" {
		cfg.ClientURL = DefaultClientURL
	}
	if cfg.PeerURL == "" {
		cfg.PeerURL = DefaultPeerURL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	curl, err := url.Parse(cfg.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("etcdembed: client URL %q: %w", cfg.ClientURL, err)
	}
	purl, err := url.Parse(cfg.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("etcdembed: peer URL %q: %w", cfg.PeerURL, err)
	}
	switch cfg.ClusterState {
	case "":
		cfg.ClusterState = ClusterNew
	case ClusterNew, ClusterExisting:
	default:
		return nil, fmt.Errorf("etcdembed: cluster state %q: want new or existing", cfg.ClusterState)
	}
	if purl.Scheme == "https" && cfg.PeerTLS == nil {
		return nil, fmt.Errorf("etcdembed: peer URL %s is https but no peer certificate is given", cfg.PeerURL)
	}
	closing := new(atomic.Bool)
	zl := newZapLogger(cfg.Logger.With("component", "etcd"), closing)

	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.DataDir
	ec.ListenClientUrls = []url.URL{*curl}
	ec.AdvertiseClientUrls = []url.URL{*curl}
	ec.ListenPeerUrls = []url.URL{*purl}
	ec.AdvertisePeerUrls = []url.URL{*purl}
	ec.InitialCluster = cfg.InitialCluster
	if ec.InitialCluster == "" {
		ec.InitialCluster = ec.InitialClusterFromName(cfg.Name)
	}
	ec.ClusterState = cfg.ClusterState
	ec.InitialClusterToken = "ouro-" + cfg.Name
	if t := cfg.PeerTLS; t != nil && purl.Scheme == "https" {
		ec.PeerTLSInfo.CertFile, ec.PeerTLSInfo.KeyFile = t.CertFile, t.KeyFile
		ec.PeerTLSInfo.TrustedCAFile = t.CAFile
		ec.PeerTLSInfo.ClientCertAuth = true
	}
	ec.SnapshotCount = snapshotCount
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = compactionRetention
	ec.QuotaBackendBytes = quotaBackendBytes
	ec.Logger = "zap"
	ec.LogLevel = "error"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zl)

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("etcdembed: start etcd in %s: %w", cfg.DataDir, err)
	}
	abort := func() {
		closing.Store(true)
		e.Close()
	}
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		abort()
		return nil, fmt.Errorf("etcdembed: etcd failed while starting: %w", err)
	case <-timer.C:
		abort()
		return nil, fmt.Errorf("etcdembed: etcd not ready after %s", readyTimeout)
	case <-ctx.Done():
		abort()
		return nil, fmt.Errorf("etcdembed: waiting for etcd: %w", ctx.Err())
	}

	endpoints := []string{curl.String()}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: dialTimeout,
		Logger:      zl,
		Context:     context.WithoutCancel(ctx),
	})
	if err != nil {
		abort()
		return nil, fmt.Errorf("etcdembed: connect to embedded etcd: %w", err)
	}
	s := &Server{etcd: e, client: cli, endpoints: endpoints, log: cfg.Logger, closing: closing}
	go s.watchErrors()
	if err := s.waitPromoted(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.advertisePeerURL(ctx, purl.String()); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// promoteTimeout bounds how long a learner waits to be promoted.
const promoteTimeout = 2 * time.Minute

// waitPromoted waits, for a member that joined as a learner, until the
// cluster made it a voting member: a learner serves no client requests.
func (s *Server) waitPromoted(ctx context.Context) error {
	if !s.etcd.Server.IsLearner() {
		return nil
	}
	s.log.Info("etcd member joined as a learner; waiting for the cluster to promote it")
	deadline := time.NewTimer(promoteTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for s.etcd.Server.IsLearner() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcdembed: waiting to be promoted: %w", ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("etcdembed: still a learner after %v: is a server of the cluster ready to promote it?", promoteTimeout)
		case <-tick.C:
		}
	}
	s.log.Info("etcd member promoted to a voting member")
	return nil
}

// advertisePeerURL makes the member's peer URL in the membership the one
// configured: a member restarted with a new peer URL (a single server
// moved from http on loopback to https on its address, so that others
// can join) records it, as `etcdctl member update` would.
func (s *Server) advertisePeerURL(ctx context.Context, peerURL string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	id := uint64(s.etcd.Server.MemberID())
	resp, err := s.client.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("etcdembed: list members: %w", err)
	}
	for _, m := range resp.Members {
		if m.ID != id {
			continue
		}
		if len(m.PeerURLs) == 1 && m.PeerURLs[0] == peerURL {
			return nil
		}
		if _, err := s.client.MemberUpdate(ctx, id, []string{peerURL}); err != nil {
			return fmt.Errorf("etcdembed: record peer URL %s: %w", peerURL, err)
		}
		s.log.Info("etcd member's peer URL changed", "from", m.PeerURLs, "to", peerURL)
		return nil
	}
	return nil
}

// MemberID returns the member's id in the cluster.
func (s *Server) MemberID() uint64 { return uint64(s.etcd.Server.MemberID()) }

// watchErrors logs fatal errors the server reports after start.
func (s *Server) watchErrors() {
	for err := range s.etcd.Err() {
		if err != nil && !s.closing.Load() {
			s.log.Error("embedded etcd failed", "err", err)
		}
	}
}

// Client returns a client connected to the server. It is closed by Close.
func (s *Server) Client() *clientv3.Client { return s.client }

// Endpoints returns the client URLs of the server.
func (s *Server) Endpoints() []string { return append([]string(nil), s.endpoints...) }

// Close closes the client, then stops the server and waits for it. It is
// safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		if err := s.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
			s.closeErr = fmt.Errorf("etcdembed: close client: %w", err)
		}
		s.etcd.Close()
		<-s.etcd.Server.StopNotify()
	})
	return s.closeErr
}

// Connect returns a client of an external etcd cluster after checking that
// it answers. tlsConfig may be nil for plain HTTP endpoints.
func Connect(ctx context.Context, endpoints []string, tlsConfig *tls.Config) (*clientv3.Client, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("etcdembed: no etcd endpoints given")
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: dialTimeout,
		TLS:         tlsConfig,
		Logger:      zap.NewNop(),
		Context:     context.WithoutCancel(ctx),
	})
	if err != nil {
		return nil, fmt.Errorf("etcdembed: connect to %v: %w", endpoints, err)
	}
	cctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if _, err := cli.Get(cctx, "/ouro/health", clientv3.WithCountOnly()); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcdembed: etcd at %v does not answer: %w", endpoints, err)
	}
	return cli, nil
}
