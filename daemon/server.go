package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/apiserver"
	"github.com/ouroboros-cloud/ouro/apivip"
	"github.com/ouroboros-cloud/ouro/blobaccess"
	"github.com/ouroboros-cloud/ouro/blobrepl"
	"github.com/ouroboros-cloud/ouro/blobstore"
	"github.com/ouroboros-cloud/ouro/console"
	"github.com/ouroboros-cloud/ouro/controller"
	"github.com/ouroboros-cloud/ouro/etcdembed"
	"github.com/ouroboros-cloud/ouro/ipam"
	"github.com/ouroboros-cloud/ouro/membership"
	"github.com/ouroboros-cloud/ouro/pki"
	"github.com/ouroboros-cloud/ouro/store"
)

// ServerConfig configures one API server.
type ServerConfig struct {
	// DataDir holds the CA, certificates, the admin token, blobs and (for
	// embedded etcd) the etcd data.
	DataDir string
	// Listen is the HTTPS address of the API, e.g. ":7443".
	Listen string
	// EtcdEndpoints selects an external etcd cluster; empty runs an
	// embedded single-member etcd in DataDir/etcd.
	EtcdEndpoints []string
	// EtcdClientURL and EtcdPeerURL are the embedded etcd's listen URLs.
	EtcdClientURL, EtcdPeerURL string
	// Name identifies this server in leader election (default: hostname).
	Name string
	// CertHosts are extra names and addresses for the server certificate.
	CertHosts []string
	// MaxBlobBytes bounds one uploaded blob (image layer, disk, kernel);
	// 0 means apiserver.DefaultMaxBlobBytes.
	MaxBlobBytes int64
	// APIVIP is the servers' virtual API address, ADDR/PREFIX; the ready
	// server that wins its election holds it (package apivip).
	APIVIP string
	// APIVIPInterface is the interface for APIVIP; empty picks the one
	// whose subnet holds it.
	APIVIPInterface string
	// Join is a server join token: the server joins the cluster of the
	// server that issued it (once; later starts find their etcd data).
	Join   string
	Logger *slog.Logger
}

// Server is a running API server.
type Server struct {
	// URL is the https address of this server.
	URL string
	// APIURL is the address clients should use: the API VIP's when set,
	// else URL.
	APIURL string
	// CACert is the cluster CA in PEM.
	CACert []byte
	// AdminToken is the bootstrap admin's bearer token.
	AdminToken string

	done chan error
}

// Wait blocks until the server stopped and returns why.
func (s *Server) Wait() error { return <-s.done }

// StartServer starts a server and returns once it accepts requests. It
// stops when ctx ends; Wait tells when it has.
func StartServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.DataDir == "" {
		return nil, errors.New("server: --data-dir is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = ":7443"
	}
	if cfg.Name == "" {
		cfg.Name, _ = os.Hostname()
	}
	// A parent made here (/var/lib/ouro) is searchable by others, so that
	// an agent beside the server can keep its containers' root file
	// systems below it; the server's own directory is 0700.
	if err := os.MkdirAll(filepath.Dir(cfg.DataDir), 0o711); err != nil {
		return nil, fmt.Errorf("server: data dir: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("server: data dir: %w", err)
	}

	// The CA and the server certificate come first: the embedded etcd's
	// peers authenticate with them.
	initial, state, err := etcdMembership(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	ca, err := pki.LoadOrCreateCA(filepath.Join(cfg.DataDir, "pki"))
	if err != nil {
		return nil, fmt.Errorf("server: CA: %w", err)
	}
	cert, err := pki.LoadOrCreateServerCert(filepath.Join(cfg.DataDir, "pki"), ca, certHosts(cfg))
	if err != nil {
		return nil, fmt.Errorf("server: certificate: %w", err)
	}
	// The chain ends with the CA, so that a joining server can check it
	// against the pin in its token.
	served := cert
	served.Certificate = append(append([][]byte(nil), cert.Certificate...), ca.Certificate().Raw)
	var vip *apivip.LinkAddress
	if cfg.APIVIP != "" {
		if vip, err = apivip.NewLinkAddress(cfg.APIVIP, cfg.APIVIPInterface); err != nil {
			return nil, fmt.Errorf("server: --api-vip: %w", err)
		}
	}

	var (
		cli     *clientv3.Client
		closeDB func()
	)
	stacked := len(cfg.EtcdEndpoints) == 0
	if !stacked {
		c, err := etcdembed.Connect(ctx, cfg.EtcdEndpoints, nil)
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		cli, closeDB = c, func() { c.Close() }
		log.Info("using external etcd", "endpoints", cfg.EtcdEndpoints)
	} else {
		e, err := etcdembed.Start(ctx, etcdembed.Config{
			Name: cfg.Name, DataDir: filepath.Join(cfg.DataDir, "etcd"),
			ClientURL: cfg.EtcdClientURL, PeerURL: cfg.EtcdPeerURL, Logger: log,
			InitialCluster: initial, ClusterState: state, PeerTLS: peerTLS(cfg),
		})
		if err != nil {
			return nil, fmt.Errorf("server: embedded etcd: %w", err)
		}
		cli, closeDB = e.Client(), func() { e.Close() }
	}
	fail := func(err error) (*Server, error) {
		closeDB()
		return nil, err
	}

	st := store.NewEtcd(cli)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fail(fmt.Errorf("server: listen on %s: %w", cfg.Listen, err))
	}
	self := ownURL(ln.Addr(), cfg.EtcdPeerURL)
	apiURL := self
	if vip != nil {
		apiURL = vipURL(cfg.APIVIP, ln.Addr())
	}
	mcfg := membership.Config{Client: cli, CA: ca, Name: cfg.Name, APIURL: self, Stacked: stacked,
		VIPElection: apivip.ElectionName, ControllerElection: controller.DefaultElectionName, Logger: log}
	if vip != nil {
		mcfg.APIVIP, mcfg.VIPURL = cfg.APIVIP, apiURL
	}
	servers := membership.New(mcfg)
	// One allocator and one admitter serve the API and the controllers:
	// a group's members are admitted exactly as API creates.
	addrs := ipam.New(ipam.Config{Store: st})
	adm := admission.New(admission.Config{Store: st, IPAM: addrs})
	// Blobs are copied between the ready servers (package blobrepl): an
	// upload is answered once another server holds it too.
	blobs := blobstore.New(filepath.Join(cfg.DataDir, "blobs", "sha256"), log)
	access := blobaccess.New(blobaccess.Config{Store: st, UploadTTL: apiserver.UnreferencedBlobAge})
	repl := blobrepl.New(blobrepl.Config{Name: cfg.Name, Store: blobs, Access: access, CA: ca, Cert: &cert, Logger: log,
		Peers: func(ctx context.Context) (map[string]string, error) { return membership.Present(ctx, cli) }})
	api, err := apiserver.New(apiserver.Config{Store: st, DataDir: cfg.DataDir, CA: ca, ClientCert: &cert, Logger: log,
		CheckPool:    checkCephPool,
		MaxBlobBytes: cfg.MaxBlobBytes, IPAM: addrs, Admission: adm, Servers: servers,
		Blobs: blobs, BlobAccess: access, Replicator: repl,
		Console: console.Handler(console.Config{})})
	if err != nil {
		ln.Close()
		return fail(fmt.Errorf("server: %w", err))
	}
	admin, err := api.Bootstrap(ctx)
	if err != nil {
		ln.Close()
		return fail(fmt.Errorf("server: bootstrap: %w", err))
	}

	// A client certificate of the cluster CA is asked for, not required
	// nor checked here: tokens authenticate the API's callers, and the
	// internal routes between servers check the certificate themselves.
	hs := &http.Server{
		Handler: api.Handler(),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{served}, MinVersion: tls.VersionTLS12,
			ClientAuth: tls.RequestClientCert, ClientCAs: ca.Pool()},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// A killed agent's connection closing shortens its host's
		// presence (apiserver.SuspectTTL).
		ConnContext: api.ConnContext,
		ConnState:   api.ConnState,
	}

	runCtx, cancel := context.WithCancel(ctx)
	ctrlDone := make(chan error, 1)
	// A gone controller leader is fenced by the others at once: its API
	// address refuses connections. (With an API VIP, the first write
	// after the VIP moved could meet etcd's "raft proposal dropped" while
	// etcd changed leaders, with or without this probe; such transient
	// refusals answer 503 now and clients retry them.)
	leaderProbe := membership.NewProber(cli).Gone
	go func() {
		ctrlDone <- controller.Run(runCtx, controller.Config{Client: cli, Store: st, Identity: cfg.Name, Logger: log,
			InstanceCreator: adm, StackWriter: api, LeaderProbe: leaderProbe,
			Fencer: cephFencer{dir: filepath.Join(cfg.DataDir, "ceph")}})
	}()
	go sweepBlobs(runCtx, api, log)

	srvDone := make(chan error, 1)
	go func() { srvDone <- hs.ServeTLS(ln, "", "") }()

	// The VIP holder and the presence run until runCtx ends and are
	// waited for before the API and etcd stop: the holder resigns and
	// removes the address first.
	ready := readiness(ca, dialAddress(ln.Addr()))
	var side sync.WaitGroup
	side.Go(func() { servers.Announce(runCtx, ready) })
	side.Go(func() { repl.Run(runCtx) })
	if vip != nil {
		h, err := apivip.New(apivip.Config{Client: cli, Identity: cfg.Name, Address: vip, Ready: ready,
			HandOffEtcdLeader: stacked, Logger: log})
		if err != nil {
			cancel()
			side.Wait()
			hs.Close()
			return fail(fmt.Errorf("server: %w", err))
		}
		side.Go(func() { h.Run(runCtx) })
		log.Info("API VIP", "address", cfg.APIVIP, "interface", vip.Interface(), "url", apiURL)
	}

	s := &Server{URL: "https://" + dialAddress(ln.Addr()), APIURL: apiURL, CACert: ca.CertPEM(), AdminToken: admin, done: make(chan error, 1)}
	go func() {
		var err error
		select {
		case <-ctx.Done():
		case err = <-srvDone:
			err = fmt.Errorf("server: https: %w", err)
		case err = <-ctrlDone:
			if err != nil {
				err = fmt.Errorf("server: controllers: %w", err)
			}
		}
		cancel()
		side.Wait()
		shutCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		hs.Shutdown(shutCtx)
		stop()
		closeDB()
		s.done <- err
	}()
	log.Info("API server listening", "url", s.URL, "name", cfg.Name)
	return s, nil
}

// sweepBlobs removes unreferenced blobs and crash leftovers now and then.
func sweepBlobs(ctx context.Context, api *apiserver.Server, log *slog.Logger) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := api.SweepBlobs(ctx); err != nil && ctx.Err() == nil {
				log.Warn("blob sweep failed", "err", err)
			}
		}
	}
}

// dialAddress turns a listen address into one a client can dial: an
// unspecified IP becomes loopback.
func dialAddress(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	ip := tcp.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port))
}

// localAddresses lists the host name and every address of the machine's
// interfaces, for the server certificate.
func localAddresses() []string {
	var out []string
	if h, err := os.Hostname(); err == nil {
		out = append(out, h)
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out = append(out, n.IP.String())
		}
	}
	return out
}
