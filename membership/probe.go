package membership

import (
	"context"
	"errors"
	"net"
	"net/url"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// addressesFor is how long the probe trusts the API addresses it read.
const addressesFor = 10 * time.Second

// Prober tells whether a server's process is certainly gone, for the
// controller election's leader probe (election.WithLeaderProbe): the API
// address the server announced refuses TCP connections, which happens
// when its machine is up but no process listens there any more (killed,
// crashed). A timeout, an unknown server or an address that cannot be
// read proves nothing: a power cut or a partition is left to the
// election's lease.
type Prober struct {
	cli *clientv3.Client

	mu      sync.Mutex
	addrs   map[string]string // server name → host:port of its API
	read    time.Time         // when addrs was read
	reading bool              // a read is under way
}

// NewProber returns a Prober reading the servers' presence through cli.
func NewProber(cli *clientv3.Client) *Prober { return &Prober{cli: cli} }

// Gone implements election.Probe.
func (p *Prober) Gone(ctx context.Context, name string) bool {
	addr := p.address(ctx, name)
	if addr == "" {
		return false
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// address returns the API address of server name. Addresses older than
// addressesFor are read again in the background meanwhile, so that a probe
// does not wait on etcd while etcd has no leader (the gone server's member
// may have led it): the probe is ready the moment etcd is.
func (p *Prober) address(ctx context.Context, name string) string {
	p.mu.Lock()
	addr, known, stale := p.addrs[name], p.addrs != nil, time.Since(p.read) >= addressesFor
	if known && stale && !p.reading {
		p.reading = true
		go func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), addressesFor)
			defer cancel()
			p.refresh(rctx)
		}()
	}
	p.mu.Unlock()
	if known {
		return addr
	}
	p.refresh(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrs[name]
}

// refresh reads the announced API addresses. A server no longer announced
// keeps its last address: its presence goes when it dies, and that is when
// it must be probed.
func (p *Prober) refresh(ctx context.Context) {
	urls, err := Present(ctx, p.cli)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reading = false
	if err != nil {
		return
	}
	addrs := make(map[string]string, len(urls))
	for n, u := range urls {
		if a := hostPort(u); a != "" {
			addrs[n] = a
		}
	}
	for n, a := range p.addrs {
		if _, ok := addrs[n]; !ok {
			addrs[n] = a
		}
	}
	p.addrs, p.read = addrs, time.Now()
}

// hostPort returns the host:port of an https URL, or "".
func hostPort(u string) string {
	pu, err := url.Parse(u)
	if err != nil || pu.Host == "" {
		return ""
	}
	if pu.Port() == "" {
		return net.JoinHostPort(pu.Hostname(), "443")
	}
	return pu.Host
}
