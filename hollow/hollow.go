// Package hollow runs simulated hosts ("hollow hosts", after Kubernetes'
// kubemark) to load-test the control plane at scale.
//
// A hollow host is a real API client: it joins with a join token, gets
// its own host credentials, heartbeats, watches the instances placed on it
// and reports their phases through the same status route a real agent
// uses. It starts nothing: an instance goes Provisioning → Running by
// status writes alone. Every hollow host carries the label
// ouro.dev/hollow=true and the taint ouro.dev/hollow, so only instances
// that tolerate the taint are placed on it, and listings show it for what
// it is.
//
//	Run ─▶ for each host (bounded): load credentials or join ─┐
//	      ┌──────────────────────────────────────────────────┘
//	      ├─▶ heartbeat every HeartbeatInterval (lease LeaseTTL; not
//	      │   bounded by Concurrency, as each real agent heartbeats alone)
//	      └─▶ watch ?host=NAME ─▶ decide ─▶ status write (resourceVersion,
//	                                         conflict retry) ─▶ decide …
//
// Hollow hosts keep their credentials in DataDir, one file per host, so a
// restart reuses the same hosts instead of making new ones.
package hollow

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// Drivers are the drivers a hollow host reports, so that instances of
// every kind can be placed on it.
var Drivers = []string{"container", "vm"}

// Defaults of Config.
const (
	DefaultNamePrefix        = "hollow"
	DefaultHeartbeatInterval = 2 * time.Second
	DefaultLeaseTTL          = 6 * time.Second
	DefaultConcurrency       = 32
)

// DefaultCapacity is what a hollow host offers unless Config says
// otherwise: 8 vCPUs, 16 GiB of memory, 100 GiB of disk.
var DefaultCapacity = api.Resources{VCPUs: 8, MemoryMiB: 16 * 1024, DiskGiB: 100}

// Config configures a set of hollow hosts.
type Config struct {
	// Server is the API base URL, e.g. https://127.0.0.1:7443.
	Server string
	// CACert is the cluster CA (PEM); nil means the system roots.
	CACert []byte
	// JoinToken registers hosts that have no credentials in DataDir yet,
	// and hosts whose credentials the server refuses.
	JoinToken string
	// DataDir keeps one credentials file per host.
	DataDir string
	// Count is how many hosts to run.
	Count int
	// NamePrefix names the hosts PREFIX-0 … PREFIX-(Count-1); default
	// "hollow".
	NamePrefix string
	// Capacity is what each host offers; default DefaultCapacity.
	Capacity api.Resources
	// HeartbeatInterval is how often each host heartbeats; default 2s.
	HeartbeatInterval time.Duration
	// LeaseTTL is the presence lease each heartbeat asks for; default 6s.
	LeaseTTL time.Duration
	// Concurrency bounds the API calls in flight across all hosts (joins,
	// status writes); default 32. Watches and heartbeats are not counted:
	// each host heartbeats on its own, as real agents do.
	Concurrency int
	Logger      *slog.Logger
}

// withDefaults fills in the defaults and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.Server == "" {
		return c, errors.New("hollow: no server URL")
	}
	if c.DataDir == "" {
		return c, errors.New("hollow: no data dir")
	}
	if c.Count <= 0 {
		return c, fmt.Errorf("hollow: count %d: want at least one host", c.Count)
	}
	if c.NamePrefix == "" {
		c.NamePrefix = DefaultNamePrefix
	}
	if e := api.ValidateName("namePrefix", HostName(c.NamePrefix, c.Count-1)); e != nil {
		return c, fmt.Errorf("hollow: host names: %w", e)
	}
	if c.Capacity == (api.Resources{}) {
		c.Capacity = DefaultCapacity
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.LeaseTTL <= c.HeartbeatInterval {
		return c, fmt.Errorf("hollow: lease TTL %v must be longer than the heartbeat interval %v", c.LeaseTTL, c.HeartbeatInterval)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// HostName returns the name of hollow host i.
func HostName(prefix string, i int) string { return fmt.Sprintf("%s-%d", prefix, i) }

// Run registers cfg.Count hollow hosts (or takes back those registered
// before in cfg.DataDir) and runs them until ctx ends; then it returns nil.
// It returns an error at once when the configuration is unusable or a
// host can neither use its stored credentials nor join.
func Run(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	dir := filepath.Join(cfg.DataDir, credentialsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("hollow: data dir: %w", err)
	}
	hc, err := newHTTPClient(cfg.CACert)
	if err != nil {
		return fmt.Errorf("hollow: %w", err)
	}
	defer hc.CloseIdleConnections()
	f := &fleet{cfg: cfg, dir: dir, hc: hc, slots: make(chan struct{}, cfg.Concurrency), log: cfg.Logger}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		started sync.WaitGroup
	)
	started.Add(cfg.Count)
	for i := range cfg.Count {
		wg.Go(func() {
			h, err := f.start(ctx, HostName(cfg.NamePrefix, i))
			started.Done()
			if err != nil {
				if ctx.Err() == nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					cancel()
				}
				return
			}
			var loops sync.WaitGroup
			loops.Go(func() { h.heartbeatLoop(ctx) })
			h.watchLoop(ctx)
			loops.Wait()
		})
	}
	go func() {
		started.Wait()
		if ctx.Err() == nil {
			f.log.Info("hollow hosts running", "count", cfg.Count, "prefix", cfg.NamePrefix, "server", cfg.Server)
		}
	}()
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("hollow: %w", errors.Join(errs...))
	}
	return nil
}

// fleet is what the hosts of one Run share.
type fleet struct {
	cfg Config
	// dir holds the credentials files.
	dir string
	// hc is one HTTP/2 client for all hosts: their requests share
	// connections instead of opening one each.
	hc *http.Client
	// slots bounds the API calls in flight.
	slots chan struct{}
	log   *slog.Logger
}

// call runs fn holding one of the fleet's slots.
func (f *fleet) call(ctx context.Context, fn func(ctx context.Context) error) error {
	select {
	case f.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-f.slots }()
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return fn(ctx)
}

// callTimeout bounds one API call (the shared HTTP client has no timeout
// of its own, because watches must not have one).
const callTimeout = 30 * time.Second

// newHTTPClient returns an HTTP/2 client trusting caPEM (or the system
// roots when it is empty).
func newHTTPClient(caPEM []byte) (*http.Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("CA certificate: no PEM certificate found")
		}
		tlsCfg.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	return &http.Client{Transport: tr}, nil
}
