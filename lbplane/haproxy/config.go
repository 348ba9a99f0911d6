// Package haproxy runs one HAProxy per load balancer in its network
// namespace: it renders the configuration from an api.HostLoadBalancer,
// starts HAProxy in master-worker mode, reloads it hitlessly through the
// master CLI when listeners or pools change, and changes members (add,
// remove, weight, address, drain) through the runtime API without a
// reload.
package haproxy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
)

// Files of a load balancer's HAProxy in its directory.
const (
	ConfigFile = "haproxy.cfg"
	PidFile    = "haproxy.pid"
	SocketFile = "haproxy.sock" // runtime API, admin level
	MasterFile = "master.sock"  // master CLI
	StateFile  = "servers.state"
	CertDir    = "certs"
)

// Timeouts of every proxy, chosen for a cloud load balancer: idle
// connections live a minute (like AWS ELB's default idle timeout), a
// member that does not accept within 5 s is given up and the connection
// retried on another one.
const (
	timeoutConnect = "5s"
	timeoutIdle    = "60s"
	timeoutQueue   = "30s"
	timeoutRequest = "10s" // http: headers of a request
	timeoutTunnel  = "1h"  // http: upgraded connections (websockets)
	retries        = 3
)

// Backend is one HAProxy backend: a pool in one mode (a pool used by tcp
// and http listeners has one backend per mode).
type Backend struct {
	Name string
	Pool string
	Mode string // tcp or http
	// Balance, Check and the rest are rendered into the backend's
	// section; members are rendered as servers.
	Balance    string
	Monitor    api.HealthMonitor
	ServerOpts string
}

// Layout is the structure of a load balancer's configuration: what needs
// a reload to change. Members are not part of it.
type Layout struct {
	Dir      string
	VIP      string
	Backends []Backend
	// Frontends, rendered as text (they hold no members).
	frontends []string
	// Certs maps a pem file name under CertDir to its content.
	Certs map[string]string
	// HardStopAfter bounds how long an old worker keeps its
	// connections after a reload.
	HardStopAfter int
}

// BackendName names the backend of pool in mode.
func BackendName(pool, mode string) string { return "p-" + safe(pool) + "-" + mode }

// ServerName names a member's server.
func ServerName(member string) string { return "m-" + safe(member) }

// safe keeps the characters HAProxy accepts in names.
func safe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

// NewLayout derives the configuration layout of lb, with its files in
// dir.
func NewLayout(lb api.HostLoadBalancer, dir string) (*Layout, error) {
	l := &Layout{Dir: dir, VIP: lb.VIP, Certs: map[string]string{}, HardStopAfter: lb.DrainTimeoutSeconds}
	if l.HardStopAfter <= 0 {
		l.HardStopAfter = 30
	}
	pools := map[string]api.HostLBPool{}
	for _, p := range lb.Pools {
		pools[p.Name] = p
	}
	modes := map[string]map[string]bool{} // pool → modes used
	use := func(pool, mode string) (string, error) {
		if _, ok := pools[pool]; !ok {
			return "", fmt.Errorf("unknown pool %q", pool)
		}
		if modes[pool] == nil {
			modes[pool] = map[string]bool{}
		}
		modes[pool][mode] = true
		return BackendName(pool, mode), nil
	}
	for _, ln := range lb.Listeners {
		name := ln.Name
		if name == "" {
			name = fmt.Sprintf("%s-%d", ln.Protocol, ln.Port)
		}
		mode := "http"
		if ln.Protocol == api.ListenerTCP || ln.Protocol == "" {
			mode = "tcp"
		}
		var b strings.Builder
		fmt.Fprintf(&b, "frontend l-%s\n    mode %s\n", safe(name), mode)
		bind := fmt.Sprintf("    bind %s:%d", lb.VIP, ln.Port)
		if ln.Protocol == api.ListenerHTTPS {
			pem := safe(name) + ".pem"
			l.Certs[pem] = strings.TrimSpace(ln.Certificate) + "\n" + strings.TrimSpace(ln.Key) + "\n"
			bind += " ssl crt " + filepath.Join(dir, CertDir, pem)
		}
		b.WriteString(bind + "\n")
		if mode == "http" {
			b.WriteString("    option forwardfor\n")
			for i, r := range ln.Rules {
				be, err := use(r.Pool, mode)
				if err != nil {
					return nil, fmt.Errorf("listener %s rule %d: %w", name, i, err)
				}
				var conds []string
				if r.Host != "" {
					fmt.Fprintf(&b, "    acl r%d_host req.hdr(host),field(1,:) -i %s\n", i, quote(r.Host))
					conds = append(conds, fmt.Sprintf("r%d_host", i))
				}
				if r.PathPrefix != "" {
					fmt.Fprintf(&b, "    acl r%d_path path_beg %s\n", i, quote(r.PathPrefix))
					conds = append(conds, fmt.Sprintf("r%d_path", i))
				}
				if len(conds) == 0 {
					continue
				}
				fmt.Fprintf(&b, "    use_backend %s if %s\n", be, strings.Join(conds, " "))
			}
		}
		be, err := use(ln.DefaultPool, mode)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", name, err)
		}
		fmt.Fprintf(&b, "    default_backend %s\n", be)
		l.frontends = append(l.frontends, b.String())
	}
	for _, p := range lb.Pools {
		var ms []string
		for m := range modes[p.Name] {
			ms = append(ms, m)
		}
		slices.Sort(ms)
		for _, mode := range ms {
			be, err := newBackend(p, mode)
			if err != nil {
				return nil, err
			}
			l.Backends = append(l.Backends, be)
		}
	}
	return l, nil
}

// newBackend renders the settings of pool p in mode.
func newBackend(p api.HostLBPool, mode string) (Backend, error) {
	be := Backend{Name: BackendName(p.Name, mode), Pool: p.Name, Mode: mode, Monitor: withDefaults(p.HealthMonitor)}
	switch p.Algorithm {
	case api.AlgorithmRoundRobin, "":
		be.Balance = "roundrobin"
	case api.AlgorithmLeastConnections:
		be.Balance = "leastconn"
	case api.AlgorithmSourceHash:
		be.Balance = "source"
	default:
		return be, fmt.Errorf("pool %s: unknown algorithm %q", p.Name, p.Algorithm)
	}
	m := be.Monitor
	// Dynamic servers take no default-server settings: every server,
	// static or added at run time, carries the same options.
	be.ServerOpts = fmt.Sprintf("check inter %d fall %d rise %d", m.IntervalMillis, m.Fall, m.Rise)
	return be, nil
}

// withDefaults fills a health monitor's defaults (see api.HealthMonitor).
func withDefaults(m api.HealthMonitor) api.HealthMonitor {
	if m.Type == "" {
		m.Type = api.MonitorTCP
	}
	if m.Type == api.MonitorHTTP {
		if m.Path == "" {
			m.Path = "/"
		}
		if m.ExpectedStatus == "" {
			m.ExpectedStatus = "200-399"
		}
	}
	if m.IntervalMillis <= 0 {
		m.IntervalMillis = 1000
	}
	if m.TimeoutMillis <= 0 || m.TimeoutMillis > m.IntervalMillis {
		m.TimeoutMillis = min(1000, m.IntervalMillis)
	}
	if m.Rise <= 0 {
		m.Rise = 2
	}
	if m.Fall <= 0 {
		m.Fall = 2
	}
	return m
}

// Member is a server of a backend.
type Member struct {
	Name    string // server name (ServerName of the member's name)
	Address string
	Port    int
	Weight  int
	Drain   bool
}

// Members returns the servers every backend of pool should have.
func Members(p api.HostLBPool) []Member {
	var out []Member
	for _, m := range p.Members {
		w := m.Weight
		if w <= 0 {
			w = 1
		}
		out = append(out, Member{Name: ServerName(m.Name), Address: m.Address, Port: m.Port, Weight: min(w, 256), Drain: m.Draining})
	}
	return out
}

// Hash identifies the layout: a running HAProxy whose layout hash differs
// needs a reload.
func (l *Layout) Hash() string {
	sum := sha256.Sum256([]byte(l.Render(nil)))
	return hex.EncodeToString(sum[:])
}

// Render returns the configuration file with members (by pool name) as
// servers.
func (l *Layout) Render(members map[string][]Member) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    master-worker
    stats socket %s mode 600 level admin expose-fd listeners
    stats timeout 30s
    server-state-file %s
    hard-stop-after %ds
    maxconn 8000

defaults
    mode tcp
    timeout connect %s
    timeout client %s
    timeout server %s
    timeout queue %s
    timeout http-request %s
    timeout http-keep-alive %s
    timeout tunnel %s
    option redispatch
    retries %d
    load-server-state-from-file global
`, filepath.Join(l.Dir, SocketFile), filepath.Join(l.Dir, StateFile), l.HardStopAfter,
		timeoutConnect, timeoutIdle, timeoutIdle, timeoutQueue, timeoutRequest, timeoutRequest, timeoutTunnel, retries)
	for _, f := range l.frontends {
		b.WriteString("\n" + f)
	}
	for _, be := range l.Backends {
		fmt.Fprintf(&b, "\nbackend %s\n    mode %s\n    balance %s\n", be.Name, be.Mode, be.Balance)
		if be.Balance == "source" {
			b.WriteString("    hash-type consistent\n")
		}
		m := be.Monitor
		fmt.Fprintf(&b, "    timeout check %dms\n", m.TimeoutMillis)
		if m.Type == api.MonitorHTTP {
			fmt.Fprintf(&b, "    option httpchk GET %s\n", quote(m.Path))
			expect, err := expectStatus(m.ExpectedStatus)
			if err != nil {
				expect = "status 200"
			}
			fmt.Fprintf(&b, "    http-check expect %s\n", expect)
		}
		for _, s := range members[be.Pool] {
			fmt.Fprintf(&b, "    server %s %s %s\n", s.Name, hostPort(s), ServerArgs(be, s))
		}
	}
	return b.String()
}

// ServerArgs are the options of server s in backend be.
func ServerArgs(be Backend, s Member) string {
	return fmt.Sprintf("weight %d %s", s.Weight, be.ServerOpts)
}

func hostPort(s Member) string { return s.Address + ":" + strconv.Itoa(s.Port) }

// quote keeps a user's string one HAProxy word.
func quote(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r == '"' || r == '\'' || r == '\\' || r == '#' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// expectStatus turns "200" or "200-399" into an http-check expect rule.
func expectStatus(s string) (string, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.Atoi(strings.TrimSpace(lo))
	if err != nil || a < 100 || a > 599 {
		return "", fmt.Errorf("bad expected status %q", s)
	}
	if !isRange {
		return "status " + strconv.Itoa(a), nil
	}
	z, err := strconv.Atoi(strings.TrimSpace(hi))
	if err != nil || z < a || z > 599 {
		return "", fmt.Errorf("bad expected status %q", s)
	}
	return "rstatus " + StatusRegexp(a, z), nil
}

// StatusRegexp matches the three-digit codes from a to z, decade by
// decade ("^(20[0-9]|21[0-4])$").
func StatusRegexp(a, z int) string {
	var alts []string
	for d := a / 10; d <= z/10; d++ {
		lo, hi := max(a, d*10)%10, min(z, d*10+9)%10
		if lo == hi {
			alts = append(alts, fmt.Sprintf("%d%d", d, lo))
		} else {
			alts = append(alts, fmt.Sprintf("%d[%d-%d]", d, lo, hi))
		}
	}
	return "^(" + strings.Join(alts, "|") + ")$"
}
