// Package agent is the Ouroboros host agent. It runs on every host, joins
// the cluster with a join token, reports the host's capacity and presence,
// watches the instances the scheduler placed on the host and converges
// them with the instance drivers, serves instance logs, exec and consoles
// to the servers over mutual TLS, and serves the instance metadata service
// inside each network's router namespace.
//
// Package agent keeps the reconciler, the watch and the heartbeat; its
// other jobs are packages of their own (fence, health, usage, endpoint,
// metaserver, hostnet, credentials, hostinfo), which wire.go connects.
//
// The agent never touches etcd: it only uses the REST API with the host's
// own credentials, kept in its data directory.
//
//	          ┌──────────── API server ────────────┐
//	join ───▶ │ /v1/hosts/join   heartbeat  status │ ◀─── watch ?host=<name>
//	          └────────────────────────────────────┘          │
//	                                                local map by uid
//	                                                           │ keys
//	  exit ticker ─────────────────────────────────────▶ work queue
//	                                                           │
//	                                         reconcile ─▶ driver.Driver
//
// Every step is idempotent and safe if the agent dies at any line. A
// restarted agent adopts running instances: it reports them and never
// restarts or kills them.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ouroboros-cloud/ouro/agent/credentials"
	"github.com/ouroboros-cloud/ouro/agent/endpoint"
	"github.com/ouroboros-cloud/ouro/agent/fence"
	"github.com/ouroboros-cloud/ouro/agent/health"
	"github.com/ouroboros-cloud/ouro/agent/hostinfo"
	"github.com/ouroboros-cloud/ouro/agent/hostnet"
	"github.com/ouroboros-cloud/ouro/agent/metaserver"
	"github.com/ouroboros-cloud/ouro/agent/usage"
	"github.com/ouroboros-cloud/ouro/agent/volumes"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/queue"
	"github.com/ouroboros-cloud/ouro/record/correlate"
	"github.com/ouroboros-cloud/ouro/volume"
)

// Version is the agent version reported to the server; set at link time
// with -ldflags "-X github.com/ouroboros-cloud/ouro/agent.Version=...".
var Version = "dev"

// Defaults of Config.
const (
	DefaultListen            = ":7444"
	DefaultCPUOvercommit     = 16
	DefaultHeartbeatInterval = 2 * time.Second
	DefaultLeaseTTL          = 6 * time.Second
)

// Config configures an Agent.
type Config struct {
	// Server is the API server's base URL, e.g. https://10.0.0.1:7443.
	// It may be empty once the agent has joined (the URL is kept with the
	// credentials).
	Server string
	// CACert is the PEM of the cluster CA used to verify the server when
	// joining; after the join the CA from the server's answer is used.
	CACert []byte
	// JoinToken registers the host when it has no credentials yet, or
	// when its host token is refused.
	JoinToken string
	// DataDir holds the credentials and the agent key pair.
	DataDir string
	// Name is the host name; default os.Hostname (lower-cased, first
	// label), or the name the host joined under.
	Name string
	// AdvertiseAddress is the host's underlay IP; default the IPv4
	// address of the default route's interface.
	AdvertiseAddress string
	// Listen is the address of the agent endpoint; default ":7444".
	Listen string
	// Drivers run the instances.
	Drivers *driver.Registry
	// Network realises the host's networks; nil leaves instances with
	// only loopback.
	Network hostnet.Plane
	// LoadBalancerDir holds the files of the load balancers the host
	// runs (see package lbplane); "" runs none. Needs Network.
	LoadBalancerDir string
	// VolumeDir holds the volumes of local storage pools that live on the
	// host (see package agent/volumes); "" keeps none.
	VolumeDir string
	// CephVolumes opens the backend of a ceph storage pool, given with
	// its key (read from the API for it); it is called for every use, so
	// it should cache by pool name and resourceVersion. Nil leaves ceph
	// volumes to hosts that have one.
	CephVolumes func(pool *api.StoragePool) (volume.Backend, error)
	// Labels and Taints are sent when the host joins.
	Labels map[string]string
	Taints []string
	// CPUOvercommit multiplies the host's CPUs into vCPUs; default 16.
	CPUOvercommit float64
	// HeartbeatInterval is how often presence is renewed; default 2s.
	HeartbeatInterval time.Duration
	// LeaseTTL is the presence lease asked for; default 6s. Group members
	// are fenced (stopped) when no heartbeat succeeded for three quarters
	// of it (docs/healing.md).
	LeaseTTL time.Duration
	// UsageInterval is how often the CPU use of running instances is
	// sampled and reported; default 10s, negative disables.
	UsageInterval time.Duration
	// Logger receives the agent's logs; default slog.Default().
	Logger *slog.Logger
}

// Agent is a running host agent. Build it with New and start it with Run.
type Agent struct {
	started time.Time // reported as the host's agentStartTime
	cfg     Config
	log     *slog.Logger
	cache   *instanceCache
	queue   *queue.Queue[string]
	// events bounds the events posted per instance: repeats are counted,
	// not posted again and again.
	events *correlate.Correlator
	ports  hostnet.Ports // instance ports applied on the host

	// Self-healing (docs/healing.md).
	backoff backoffPolicy
	fetches fetchFailures
	synced  atomic.Bool // the first list of assigned instances succeeded

	// The parts, built by wire (wire.go).
	members  *fence.Record // group members on the host, for fencing
	fence    *fence.Fence
	health   *health.Checker
	usage    *usage.Sampler
	endpoint *endpoint.Server
	meta     *metaserver.Service
	network  *hostnet.Loop // nil without Config.Network
	volumes  *volumes.Loop // nil without Config.VolumeDir
	pools    *volumes.Pools
	cephMu   sync.Mutex
	ceph     map[string]cephPool // opened ceph pools by name

	// Knobs that tests shorten.
	workers           int
	exitCheckInterval time.Duration
	stopTimeout       time.Duration
	relistDelay       time.Duration
	rejoinInterval    time.Duration
	healthTick        time.Duration
	probe             health.ProbeFunc
	// afterReconcile, when set, is called after each reconcile (tests).
	afterReconcile func(key string, err error)

	rejoinMu   sync.Mutex
	lastRejoin time.Time

	sess session // the host's credentials

	mu    sync.RWMutex
	facts hostFacts
}

// hostFacts is what the agent tells the server about its host.
type hostFacts struct {
	name     string
	address  string
	endpoint string
	capacity api.Resources
	arch     string
	drivers  []string
}

// New checks cfg and returns an agent. It has no side effects: nothing
// is read from or written to the host until Run.
func New(cfg Config) (*Agent, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("agent: Config.DataDir is required")
	}
	if cfg.Drivers == nil {
		return nil, errors.New("agent: Config.Drivers is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return nil, fmt.Errorf("agent: listen address %q: %w", cfg.Listen, err)
	}
	if cfg.AdvertiseAddress != "" && net.ParseIP(cfg.AdvertiseAddress) == nil {
		return nil, fmt.Errorf("agent: advertise address %q is not an IP address", cfg.AdvertiseAddress)
	}
	if cfg.Name != "" {
		if err := api.ValidateName("name", cfg.Name); err != nil {
			return nil, fmt.Errorf("agent: host name: %w", err)
		}
	}
	if cfg.CPUOvercommit == 0 {
		cfg.CPUOvercommit = DefaultCPUOvercommit
	}
	if cfg.CPUOvercommit < 0 {
		return nil, fmt.Errorf("agent: CPU overcommit %v must be positive", cfg.CPUOvercommit)
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.UsageInterval == 0 {
		cfg.UsageInterval = usage.DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &Agent{
		started: time.Now().UTC(),
		cfg:     cfg,
		log:     cfg.Logger.With("component", "agent"),
		cache:   newInstanceCache(),
		events:  correlate.New(0, 0, 0),
		// Stops wait out a grace period (up to stopTimeout), so a few slow
		// teardowns must not hold up new instances: workers are cheap.
		workers:           32,
		exitCheckInterval: 2 * time.Second,
		stopTimeout:       10 * time.Second,
		relistDelay:       time.Second,
		rejoinInterval:    10 * time.Second,
		healthTick:        health.DefaultTick,
		backoff:           defaultBackoff,
	}
	a.queue = queue.New("instances", a.reconcileKey, a.log).WithBackoff(time.Second, 5*time.Minute)
	return a, nil
}

// Run joins (or loads credentials), serves the agent endpoint and
// reconciles the host's instances until ctx ends. It returns nil after a
// clean shutdown and an error if the agent cannot start.
func (a *Agent) Run(ctx context.Context) error {
	if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("agent: data dir: %w", err)
	}
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("agent: listen: %w", err)
	}
	defer ln.Close()
	id, err := credentials.Load(a.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	facts, err := a.gatherFacts(ctx, id, ln.Addr())
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.mu.Lock()
	a.facts = facts
	a.mu.Unlock()
	a.log = a.log.With("host", facts.name)
	a.wire()
	if err := a.members.Load(); err != nil {
		a.log.Error("group member record unusable: until the first list of instances, fencing knows no members", "err", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// Fencing needs no API: it starts before anything waits on the server,
	// which may be unreachable (docs/healing.md).
	a.fence.Beat(time.Now()) // the fencing deadline counts from the start
	wg.Go(func() { a.fence.Run(ctx) })
	if err := a.ensureIdentity(ctx, id); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.log.Info("agent starting", "endpoint", facts.endpoint, "drivers", facts.drivers,
		"capacity", fmt.Sprintf("%d vCPU, %d MiB, %d GiB", facts.capacity.VCPUs, facts.capacity.MemoryMiB, facts.capacity.DiskGiB),
		"recorded_group_members", len(a.members.List()))

	serveErr := make(chan error, 1)
	go func() { serveErr <- a.endpoint.Serve(ctx, ln) }()

	wg.Go(func() { a.hostLoop(ctx) })
	wg.Go(func() { a.heartbeatLoop(ctx) })
	if a.network != nil {
		wg.Go(func() { a.network.Run(ctx) })
	}
	if a.volumes != nil {
		wg.Go(func() { a.volumes.Run(ctx) })
	}
	if rv, ok := a.initialSync(ctx); ok {
		wg.Go(func() { a.queue.Run(ctx, a.workers) })
		wg.Go(func() { a.exitLoop(ctx) })
		wg.Go(func() { a.watchLoop(ctx, rv) })
		wg.Go(func() { a.health.Run(ctx) })
		wg.Go(func() { a.usage.Run(ctx) })
	}
	// The endpoint returns when ctx ends (nil, after shutting down) or
	// when it fails; either way the agent stops.
	var runErr error
	if err := <-serveErr; err != nil {
		runErr = fmt.Errorf("agent: %w", err)
	}
	cancel()
	wg.Wait()
	a.log.Info("agent stopped")
	return runErr
}

// gatherFacts resolves the host name and address, fingerprints the
// drivers and measures capacity.
func (a *Agent) gatherFacts(ctx context.Context, id *credentials.Identity, listen net.Addr) (hostFacts, error) {
	f := hostFacts{name: a.cfg.Name, address: a.cfg.AdvertiseAddress, arch: runtime.GOARCH}
	if f.name == "" && id != nil {
		f.name = id.Creds.Host
	}
	if f.name == "" {
		h, err := os.Hostname()
		if err != nil {
			return f, fmt.Errorf("host name: %w", err)
		}
		f.name, _, _ = strings.Cut(strings.ToLower(h), ".")
		if err := api.ValidateName("name", f.name); err != nil {
			return f, fmt.Errorf("host name from os.Hostname: %w (set the agent's name)", err)
		}
	}
	if f.address == "" {
		addr, err := hostinfo.DefaultRouteAddress()
		if err != nil {
			return f, err
		}
		f.address = addr
	}
	_, port, err := net.SplitHostPort(listen.String())
	if err != nil {
		return f, fmt.Errorf("listen address %s: %w", listen, err)
	}
	f.endpoint = "https://" + net.JoinHostPort(f.address, port)
	f.capacity, err = hostinfo.Capacity(a.cfg.DataDir, a.cfg.CPUOvercommit)
	if err != nil {
		return f, err
	}
	for _, name := range a.cfg.Drivers.Names() {
		info := a.cfg.Drivers.Get(name).Fingerprint(ctx)
		if info.Available {
			f.drivers = append(f.drivers, name)
		} else {
			a.log.Warn("driver unavailable", "driver", name, "detail", info.Detail)
		}
	}
	return f, nil
}

// ensureIdentity makes the agent's credentials usable: the ones on disk if
// the server accepts them, else those of a new join.
func (a *Agent) ensureIdentity(ctx context.Context, id *credentials.Identity) error {
	facts := a.hostFacts()
	if id != nil && id.Creds.Host != facts.name {
		a.log.Warn("credentials are for another host name; joining again", "credentials", id.Creds.Host, "name", facts.name)
		id = nil
	}
	if id != nil {
		if err := a.sess.set(id, a.cfg.Server); err != nil {
			return err
		}
		_, err := a.sess.Client().Whoami(ctx)
		switch {
		case err == nil:
			return nil
		case api.StatusOf(err) == http.StatusUnauthorized && a.cfg.JoinToken != "":
			a.log.Warn("host token refused; joining again", "err", err)
		case api.StatusOf(err) == http.StatusUnauthorized:
			return fmt.Errorf("the server refuses the host token in %s and no join token is configured: %w", a.cfg.DataDir, err)
		default:
			// The server may be down; the loops retry.
			a.log.Warn("cannot check credentials with the server", "err", err)
			return nil
		}
	}
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		id, err := a.join(ctx, facts)
		if err == nil {
			return a.sess.set(id, a.cfg.Server)
		}
		if a.cfg.JoinToken == "" || api.StatusOf(err) < 500 || ctx.Err() != nil {
			return err
		}
		a.log.Warn("join failed; retrying", "err", err, "in", delay)
		if !sleepCtx(ctx, delay) {
			return ctx.Err()
		}
	}
}

// rejoin joins again after the server refused the host token. Attempts
// are spaced by rejoinInterval.
func (a *Agent) rejoin(ctx context.Context) {
	if a.cfg.JoinToken == "" {
		a.log.Error("the server refuses the host token and no join token is configured")
		return
	}
	a.rejoinMu.Lock()
	defer a.rejoinMu.Unlock()
	if time.Since(a.lastRejoin) < a.rejoinInterval {
		return
	}
	a.lastRejoin = time.Now()
	id, err := a.join(ctx, a.hostFacts())
	if err == nil {
		err = a.sess.set(id, a.cfg.Server)
	}
	if err != nil {
		a.log.Error("join again failed", "err", err)
		return
	}
	if err := a.reportHost(ctx); err != nil {
		a.log.Warn("report host status", "err", err)
	}
}

func (a *Agent) hostFacts() hostFacts {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.facts
}

// name returns the host name.
func (a *Agent) name() string { return a.hostFacts().name }

// zone returns the host's availability zone: its zone label, or the
// default zone.
func (a *Agent) zone() string {
	if z := a.cfg.Labels[api.LabelZone]; z != "" {
		return z
	}
	return api.ZoneDefault
}

func userAgent() string { return "ouro-agent/" + Version }

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// parseRV parses a resourceVersion; it returns -1 when it is not a number.
func parseRV(rv string) int64 {
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil {
		return -1
	}
	return n
}
