// Package lbplane is the load balancer data plane of a host: for every
// api.HostLoadBalancer the host runs, HAProxy (package haproxy) and, with
// a peer, keepalived (package keepalived) in the load balancer's network
// namespace, which netplane makes with the port's eth0.
//
// Manager.Apply is declarative: it starts, reloads, re-configures and
// removes processes so that they match the given load balancers, adopting
// the ones an earlier agent started (their pid files are checked against
// the command line and namespace of the process). Manager.Run refreshes
// the reported statuses (member health and sessions, draining, which host
// holds the VIP) and restarts killed processes.
//
// Files of a load balancer live in <Dir>/<LB UID>/.
package lbplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/lbplane/haproxy"
	"github.com/ouroboros-cloud/ouro/lbplane/keepalived"
	"github.com/ouroboros-cloud/ouro/netplane/netns"
	"github.com/ouroboros-cloud/ouro/netplane/process"
)

// Announcer is told whether this host holds a load balancer's VIP, on
// every change (netplane announces the floating IP only while it does).
type Announcer interface {
	SetLBActive(lbUID string, active bool) error
}

// Config configures a Manager.
type Config struct {
	// Dir holds one directory per load balancer; everything in it
	// belongs to the manager (a directory no load balancer of the spec
	// owns is removed with its processes).
	Dir string
	// NetNSPath returns the path of a load balancer's network namespace.
	NetNSPath func(lbUID string) string
	// Announcer may be nil.
	Announcer Announcer
	// Interval between status refreshes; default 500ms.
	Interval time.Duration
	Logger   *slog.Logger
}

// Manager runs the load balancers of a host. Build it with New.
type Manager struct {
	cfg     Config
	changed chan struct{}
	kick    chan struct{}

	mu        sync.Mutex
	specs     map[string]api.HostLoadBalancer
	errs      map[string]error
	watching  map[string]chan struct{} // keepalived FIFO readers, by UID
	announced map[string]bool
	statuses  []api.HostLBStatus
	// retryAt spaces out repairs of a load balancer that failed.
	retryAt map[string]time.Time

	// vrrp is the last state keepalived wrote to its FIFO, by UID, and
	// settling until when keepalived may not have checked a HAProxy
	// (re)started then.
	vrrpMu   sync.Mutex
	vrrp     map[string]string
	settling map[string]time.Time
}

// New returns a Manager; it touches nothing until Apply.
func New(cfg Config) *Manager {
	if cfg.Interval <= 0 {
		cfg.Interval = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Manager{
		cfg:       cfg,
		changed:   make(chan struct{}, 1),
		kick:      make(chan struct{}, 1),
		specs:     map[string]api.HostLoadBalancer{},
		errs:      map[string]error{},
		watching:  map[string]chan struct{}{},
		announced: map[string]bool{},
		retryAt:   map[string]time.Time{},
		vrrp:      map[string]string{},
	}
}

func (m *Manager) dir(uid string) string { return filepath.Join(m.cfg.Dir, uid) }

func (m *Manager) proxy(uid string) haproxy.Proxy {
	return haproxy.Proxy{Dir: m.dir(uid), NetNS: m.cfg.NetNSPath(uid)}
}

func (m *Manager) keepalived(uid string) keepalived.Daemon {
	return keepalived.Daemon{Dir: m.dir(uid), NetNS: m.cfg.NetNSPath(uid)}
}

// Apply makes the host run exactly lbs and returns their statuses. A load
// balancer that cannot be set up is reported not ready with the reason;
// the error is for failures of the whole (removing a gone one).
func (m *Manager) Apply(ctx context.Context, lbs []api.HostLoadBalancer) ([]api.HostLBStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	want := map[string]api.HostLoadBalancer{}
	for _, lb := range lbs {
		want[lb.UID] = lb
	}
	err := m.removeExcept(want)
	m.specs, m.errs = want, map[string]error{}
	for _, lb := range lbs {
		if ctx.Err() != nil {
			return cloneStatuses(m.statuses), ctx.Err()
		}
		if e := m.ensure(lb); e != nil {
			m.errs[lb.UID] = e
			m.cfg.Logger.Warn("load balancer", "lb", lb.Project+"/"+lb.Name, "uid", lb.UID, "err", e)
		}
	}
	m.refresh(false)
	return cloneStatuses(m.statuses), err
}

// ensure makes one load balancer's processes run with its spec.
func (m *Manager) ensure(lb api.HostLoadBalancer) error {
	ns := m.cfg.NetNSPath(lb.UID)
	if !netns.IsNamespace(ns) {
		return fmt.Errorf("namespace %s is not set up", ns)
	}
	// The backup host binds the VIP it does not hold (yet).
	if err := netns.WriteSysctl(ns, "net.ipv4.ip_nonlocal_bind", "1"); err != nil {
		return err
	}
	layout, err := haproxy.NewLayout(lb, m.dir(lb.UID))
	if err != nil {
		return err
	}
	members := map[string][]haproxy.Member{}
	for _, p := range lb.Pools {
		members[p.Name] = haproxy.Members(p)
	}
	hp := m.proxy(lb.UID)
	res, err := hp.Ensure(layout, members)
	if err != nil {
		return err
	}
	if res.Started || res.Reloaded {
		m.cfg.Logger.Info("haproxy", "lb", lb.Project+"/"+lb.Name, "started", res.Started, "reloaded", res.Reloaded)
	}
	if res.Started && lb.Peer != "" {
		m.settle(lb.UID)
	}
	ka := m.keepalived(lb.UID)
	if lb.Peer == "" {
		m.unwatch(lb.UID)
		if err := ka.Stop(); err != nil {
			return err
		}
		return keepalived.AddVIP(ns, lb.VIP, lb.Prefix)
	}
	started, err := ka.Ensure(keepalived.Config{
		Name: lb.Name, Address: lb.Address, Peer: lb.Peer, VIP: lb.VIP, Prefix: lb.Prefix,
		VRID: lb.VRID, Priority: lb.Priority, Track: filepath.Join(m.dir(lb.UID), haproxy.PidFile),
	})
	if err != nil {
		return err
	}
	if started {
		m.cfg.Logger.Info("keepalived started", "lb", lb.Project+"/"+lb.Name)
	}
	if _, ok := m.watching[lb.UID]; !ok {
		done := make(chan struct{})
		uid := lb.UID
		if err := ka.Watch(done, func(state string) { m.setVRRP(uid, state); m.poke() }); err != nil {
			return err
		}
		m.watching[lb.UID] = done
	}
	return nil
}

func (m *Manager) unwatch(uid string) {
	if done, ok := m.watching[uid]; ok {
		close(done)
		delete(m.watching, uid)
	}
	m.setVRRP(uid, "")
}

// settle records that HAProxy of uid was just (re)started: keepalived,
// possibly in FAULT since the old one died, has yet to check it, so this
// host cannot take the VIP over until keepalived.CheckSettle has passed.
func (m *Manager) settle(uid string) {
	m.vrrpMu.Lock()
	defer m.vrrpMu.Unlock()
	if m.settling == nil {
		m.settling = map[string]time.Time{}
	}
	m.settling[uid] = time.Now().Add(keepalived.CheckSettle)
}

// settled says whether keepalived has had time to check the HAProxy of
// uid since it was last (re)started.
func (m *Manager) settled(uid string) bool {
	m.vrrpMu.Lock()
	defer m.vrrpMu.Unlock()
	until, ok := m.settling[uid]
	if ok && !time.Now().Before(until) {
		delete(m.settling, uid)
	}
	return !ok || !time.Now().Before(until)
}

// setVRRP records keepalived's state ("" forgets it).
func (m *Manager) setVRRP(uid, state string) {
	m.vrrpMu.Lock()
	defer m.vrrpMu.Unlock()
	if state == "" {
		delete(m.vrrp, uid)
	} else {
		m.vrrp[uid] = state
	}
}

// vrrpState returns keepalived's last reported state, "" if unknown.
func (m *Manager) vrrpState(uid string) string {
	m.vrrpMu.Lock()
	defer m.vrrpMu.Unlock()
	return m.vrrp[uid]
}

// poke asks Run for a refresh now.
func (m *Manager) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// removeExcept stops the processes and removes the files of every load
// balancer directory not in want, including leftovers of an earlier
// agent.
func (m *Manager) removeExcept(want map[string]api.HostLoadBalancer) error {
	entries, err := os.ReadDir(m.cfg.Dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("load balancer dir: %w", err)
	}
	var errs []error
	for _, e := range entries {
		uid := e.Name()
		if _, ok := want[uid]; ok || !e.IsDir() {
			continue
		}
		m.unwatch(uid)
		if err := m.keepalived(uid).Stop(); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := m.proxy(uid).Stop(); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.RemoveAll(m.dir(uid)); err != nil {
			errs = append(errs, fmt.Errorf("remove load balancer %s: %w", uid, err))
			continue
		}
		if m.announced[uid] {
			m.announce(uid, false)
		}
		delete(m.announced, uid)
		m.cfg.Logger.Info("load balancer removed", "uid", uid)
	}
	// Processes whose directory was removed under them.
	for _, prog := range []string{haproxy.Binary, keepalived.Binary} {
		for _, pid := range process.Scan(prog, m.cfg.Dir+string(filepath.Separator)) {
			if uid := m.owner(pid); uid != "" {
				if _, ok := want[uid]; !ok {
					m.cfg.Logger.Info("stopping a leftover load balancer process", "uid", uid, "pid", pid)
					errs = append(errs, process.Stop(pid, 2*time.Second))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// owner returns the load balancer whose directory a process's command
// line names ("" if none).
func (m *Manager) owner(pid int) string {
	prefix := filepath.Clean(m.cfg.Dir) + string(filepath.Separator)
	for _, a := range process.Cmdline(pid) {
		if rest, ok := strings.CutPrefix(a, prefix); ok {
			if uid, _, ok := strings.Cut(rest, string(filepath.Separator)); ok && uid != "" {
				return uid
			}
		}
	}
	return ""
}

func (m *Manager) announce(uid string, active bool) {
	if m.cfg.Announcer == nil {
		return
	}
	if err := m.cfg.Announcer.SetLBActive(uid, active); err != nil {
		m.cfg.Logger.Warn("announce load balancer", "uid", uid, "active", active, "err", err)
	}
}

// Statuses returns the statuses of the last refresh.
func (m *Manager) Statuses() []api.HostLBStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return cloneStatuses(m.statuses)
}

// cloneStatuses copies statuses deeply: callers decode into what they get.
func cloneStatuses(in []api.HostLBStatus) []api.HostLBStatus {
	if in == nil {
		return nil
	}
	out := make([]api.HostLBStatus, len(in))
	for i, st := range in {
		st.Members = slices.Clone(st.Members)
		out[i] = st
	}
	return out
}

// Changed receives a value when the statuses changed.
func (m *Manager) Changed() <-chan struct{} { return m.changed }

// Run refreshes the statuses every Interval, and at once when keepalived
// reports a state change, restarting killed processes, until ctx ends.
// It stops no process: they outlive the agent.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.mu.Lock()
			for uid := range m.watching {
				m.unwatch(uid)
			}
			m.mu.Unlock()
			return
		case <-t.C:
		case <-m.kick:
		}
		m.mu.Lock()
		m.refresh(true)
		m.mu.Unlock()
	}
}

// refresh recomputes the statuses; with repair it first restarts the
// processes of load balancers that lost one.
func (m *Manager) refresh(repair bool) {
	var out []api.HostLBStatus
	uids := make([]string, 0, len(m.specs))
	for uid := range m.specs {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	for _, uid := range uids {
		lb := m.specs[uid]
		if repair && time.Now().After(m.retryAt[uid]) && !m.healthy(lb) {
			m.cfg.Logger.Warn("load balancer process gone: restarting", "lb", lb.Project+"/"+lb.Name)
			if lb.Peer != "" {
				// Never two holders: a killed keepalived leaves the VIP.
				if _, ok := m.keepalived(uid).Running(); !ok {
					_ = keepalived.DelVIP(m.cfg.NetNSPath(uid), lb.VIP, lb.Prefix)
				}
			}
			m.errs[uid] = m.ensure(lb)
			if m.errs[uid] != nil {
				m.retryAt[uid] = time.Now().Add(5 * time.Second)
			}
		}
		st := m.status(lb, m.errs[uid])
		if prev, ok := m.announced[uid]; !ok || prev != st.Active {
			m.announce(uid, st.Active)
			m.announced[uid] = st.Active
		}
		out = append(out, st)
	}
	if !reflect.DeepEqual(out, m.statuses) {
		m.statuses = out
		select {
		case m.changed <- struct{}{}:
		default:
		}
	}
}

// healthy reports whether every process of lb runs.
func (m *Manager) healthy(lb api.HostLoadBalancer) bool {
	if _, ok := m.proxy(lb.UID).Running(); !ok {
		return false
	}
	if lb.Peer != "" {
		if _, ok := m.keepalived(lb.UID).Running(); !ok {
			return false
		}
	}
	return true
}
