// Package hostnet keeps a host's networks applied for its agent: it
// watches the host's HostNetwork, has the network Plane apply every new
// generation (and again every minute, to repair what was changed by
// hand), then has the LoadBalancers run the spec's load balancers,
// reports the outcome and the load balancers' statuses in the object's
// status (again whenever those change), and records which instance ports
// are applied (Ports), which the agent waits for before it runs an
// instance and from where it probes instances' health. The ports of new
// containers are applied alone first when the Plane can (PortPlane), so
// that they start before the rest of the pass is done.
package hostnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/driver"
)

// Plane realises the networks of a host. Package netplane implements it;
// Apply is declarative and safe to repeat.
type Plane interface {
	// Apply makes the host's networks, instance namespaces, DNS/DHCP and
	// rules match spec, removing what spec no longer has.
	Apply(ctx context.Context, spec api.HostNetworkSpec) error
	// NetNSPath is the network namespace an instance's process joins.
	NetNSPath(instanceUID string) string
	// RouterNSPath is the namespace holding the bridge of the network
	// with a VNI, where virtual machines' TAP devices are.
	RouterNSPath(vni int) string
	// PortDevice names an instance's device on a network's bridge: the
	// TAP a virtual machine attaches to.
	PortDevice(instanceUID string) string
}

// PortPlane is a Plane that can set up a new instance's ports alone,
// before the Apply of the whole spec (netplane.Plane.ApplyPorts): the
// instance may start that much sooner. An error means the ports are not
// (all) there; Apply still follows.
type PortPlane interface {
	ApplyPorts(ctx context.Context, spec api.HostNetworkSpec, uids []string) error
}

// API reaches the API server with the host's current credentials.
type API interface {
	Client() *client.Client
}

// Metadata is told every spec applied, and closed when the loop ends
// (metaserver.Service).
type Metadata interface {
	Sync(spec api.HostNetworkSpec)
	Close()
}

// Queue hears of the instances whose ports are new or changed.
type Queue interface {
	PortsChanged(uids []string)
}

// LoadBalancers runs the load balancers of the host in the namespaces of
// their "lb" ports (package lbplane).
type LoadBalancers interface {
	// Apply makes the host run exactly lbs and returns their statuses.
	Apply(ctx context.Context, lbs []api.HostLoadBalancer) ([]api.HostLBStatus, error)
	// Statuses are the statuses of the last refresh, and Changed
	// receives when they change.
	Statuses() []api.HostLBStatus
	Changed() <-chan struct{}
	// Run refreshes the statuses and repairs processes until ctx ends.
	Run(ctx context.Context)
}

// Config configures a Loop.
type Config struct {
	Plane Plane
	// Host is the host's name, which its HostNetwork has.
	Host     string
	API      API
	Ports    *Ports
	Metadata Metadata
	Queue    Queue
	// LoadBalancers may be nil: the host runs none.
	LoadBalancers LoadBalancers
	// RetryDelay is the first delay before a broken watch is started
	// again; default one second.
	RetryDelay time.Duration
	Logger     *slog.Logger
}

// Loop keeps the host's networks applied. Build it with New and run it
// with Run.
type Loop struct {
	cfg Config
	// reported is the status last computed from an Apply, without the
	// load balancers' (nil before the first); only Run's goroutine uses
	// it.
	reported *api.HostNetworkStatus
	// portsSet says an Apply set the ports (Ports.Set) once: from then on
	// a new instance's ports may be applied alone (applyNewPorts).
	portsSet bool
}

// New returns a Loop; it applies nothing until Run.
func New(cfg Config) *Loop {
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Loop{cfg: cfg}
}

// Run keeps the host's networks applied: it watches the host's
// HostNetwork and applies every new generation, retrying failures with
// back-off, and reports the outcome in the object's status, until ctx
// ends.
func (l *Loop) Run(ctx context.Context) {
	defer l.cfg.Metadata.Close()
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	go l.watch(ctx, poke)
	var lbChanged <-chan struct{}
	if lbs := l.cfg.LoadBalancers; lbs != nil {
		lbChanged = lbs.Changed()
		done := make(chan struct{})
		go func() { defer close(done); lbs.Run(ctx) }()
		defer func() { <-done }()
	}
	retry := time.NewTimer(0)
	defer retry.Stop()
	delay := time.Second
	var applied string // uid/generation of the spec applied last
	for {
		last := applied
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-lbChanged:
			// Health, sessions or the VIP's holder changed: report
			// without applying.
			l.reportLoadBalancers(ctx)
			continue
		case <-retry.C:
			// A retry, or the periodic pass that repairs what someone
			// changed by hand: apply even an unchanged spec.
			last = ""
		}
		rv, err := l.apply(ctx, last)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.cfg.Logger.Warn("apply host network", "err", err, "retry_in", delay)
			retry.Reset(delay)
			delay = min(2*delay, 30*time.Second)
			continue
		}
		applied, delay = rv, time.Second
		// A periodic re-apply repairs what someone removed by hand.
		retry.Reset(time.Minute)
	}
}

// watch pokes on every change of this host's HostNetwork.
func (l *Loop) watch(ctx context.Context, poke func()) {
	delay := l.cfg.RetryDelay
	for ctx.Err() == nil {
		err := client.Watch(ctx, l.cfg.API.Client(), api.HostNetworkKind, "", client.WatchOptions{},
			func(ev api.WatchEvent[api.HostNetwork]) error {
				if ev.Object.Metadata.Name == l.cfg.Host || ev.Type == api.Bookmark {
					poke()
				}
				return nil
			})
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			l.cfg.Logger.Debug("host network watch broke", "err", err)
			sleepCtx(ctx, delay)
			delay = min(2*delay, 30*time.Second)
			continue
		}
		delay = l.cfg.RetryDelay
		poke()
	}
}

// apply reads the host's HostNetwork and, unless its spec
// (uid and generation: status writes do not count) was applied already,
// applies it. It returns what is now applied.
func (l *Loop) apply(ctx context.Context, last string) (string, error) {
	var hn api.HostNetwork
	err := l.cfg.API.Client().Get(ctx, api.HostNetworkKind, "", l.cfg.Host, &hn)
	var apiErr *api.Error
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
		// No instance of this host has a network interface (yet).
		hn = api.HostNetwork{}
	} else if err != nil {
		return last, err
	}
	rv := hn.Metadata.ResourceVersion
	applied := fmt.Sprintf("%s/%d", hn.Metadata.UID, hn.Metadata.Generation)
	if rv != "" && applied == last {
		return last, nil
	}
	if rv != "" && l.portsSet {
		l.applyNewPorts(ctx, hn.Spec)
	}
	applyErr := l.cfg.Plane.Apply(ctx, hn.Spec)
	l.cfg.Metadata.Sync(hn.Spec)
	var lbErr error
	if l.cfg.LoadBalancers != nil {
		// After the plane: it makes the load balancers' namespaces. A
		// load balancer that cannot run says why in its own status; an
		// error here (one that left the spec could not be removed) holds
		// back no instance port, but is reported and retried.
		if _, err := l.cfg.LoadBalancers.Apply(ctx, hn.Spec.LoadBalancers); err != nil {
			lbErr = fmt.Errorf("load balancers: %w", err)
		}
	}
	failed, rest := SplitApplyError(applyErr)
	if rest == nil {
		ports, held := l.portsOf(hn.Spec, failed)
		if changed := l.cfg.Ports.Set(ports, held); len(changed) > 0 {
			l.cfg.Queue.PortsChanged(changed)
		}
		l.portsSet = true
		l.cfg.Logger.Debug("host network applied", "resourceVersion", rv, "networks", len(hn.Spec.Networks), "ports", len(ports))
	}
	applyErr = errors.Join(applyErr, lbErr)
	if rv != "" {
		l.report(ctx, &hn, applyErr)
	}
	if applyErr != nil {
		return last, applyErr
	}
	if rv == "" {
		return "", nil
	}
	return applied, nil
}

// portsOf computes the instance ports of spec once applied, but for the
// networks that failed (by network UID): their instances wait, and held
// says why.
func (l *Loop) portsOf(spec api.HostNetworkSpec, failed map[string]error) (ports map[string]Port, held map[string]string) {
	// Every network but the failed ones is applied: their instances get
	// their ports; an instance with a port on a failed network waits,
	// and says why.
	held = map[string]string{}
	for _, n := range spec.Networks {
		if err, ok := failed[n.UID]; ok {
			for _, p := range n.Ports {
				held[p.Instance] = fmt.Sprintf("host %s could not set up %v", l.cfg.Host, err)
			}
		}
	}
	ports = map[string]Port{}
	for _, n := range spec.Networks {
		if _, ok := failed[n.UID]; ok {
			continue
		}
		for _, p := range n.Ports {
			if _, ok := held[p.Instance]; ok || p.Driver == driverLB {
				continue
			}
			pi, seen := ports[p.Instance]
			if !seen { // the first (primary) network gives DNS
				pi.Nameservers = []string{n.Gateway}
				if p.Driver != api.DriverVM {
					pi.NetNS = l.cfg.Plane.NetNSPath(p.Instance)
				}
			}
			router := l.cfg.Plane.RouterNSPath(n.VNI)
			if p.IP != "" && router != "" {
				if pi.Routers == nil {
					pi.Routers = map[string]string{}
				}
				pi.Routers[p.IP] = router
			}
			nic := driver.NIC{MAC: p.MAC, IP: p.IP, Gateway: n.Gateway}
			if pfx, err := netip.ParsePrefix(n.CIDR); err == nil {
				nic.PrefixLen = pfx.Bits()
			}
			if p.Driver == api.DriverVM {
				nic.RouterNetNS, nic.Tap = router, l.cfg.Plane.PortDevice(p.Instance)
			}
			pi.NICs = append(pi.NICs, nic)
			ports[p.Instance] = pi
		}
	}
	return ports, held
}

// applyNewPorts sets up the ports of the containers that spec brings to
// the host (none applied or held back yet) alone, when the Plane can
// (PortPlane), before the whole spec is applied: the instances learn of
// their ports as soon as they are there. Meanwhile the ports are
// planned, so that the agent prepares the instances (Ports.Planned) but
// runs none of them before its namespace and its network's rules, its
// security groups among them, are in place.
func (l *Loop) applyNewPorts(ctx context.Context, spec api.HostNetworkSpec) {
	pp, ok := l.cfg.Plane.(PortPlane)
	if !ok {
		return
	}
	all, _ := l.portsOf(spec, nil)
	news := map[string]Port{}
	for uid, p := range all {
		if p.NetNS != "" && !l.cfg.Ports.has(uid) {
			news[uid] = p
		}
	}
	if len(news) == 0 {
		return
	}
	if planned := l.cfg.Ports.Plan(news); len(planned) > 0 {
		l.cfg.Queue.PortsChanged(planned)
	}
	uids := slices.Sorted(maps.Keys(news))
	if err := pp.ApplyPorts(ctx, spec, uids); err != nil {
		l.cfg.Logger.Debug("new ports wait for the full apply", "instances", len(uids), "err", err)
		return
	}
	if changed := l.cfg.Ports.Add(news); len(changed) > 0 {
		l.cfg.Queue.PortsChanged(changed)
	}
	l.cfg.Logger.Debug("new ports applied", "instances", len(uids))
}

// report writes the outcome of an Apply into the object's
// status; a failure to report is only logged.
func (l *Loop) report(ctx context.Context, hn *api.HostNetwork, applyErr error) {
	st := api.HostNetworkStatus{ObservedGeneration: hn.Metadata.Generation, Applied: applyErr == nil}
	if applyErr != nil {
		st.Message = truncate(applyErr.Error(), 1000)
	}
	failed, _ := SplitApplyError(applyErr)
	for _, n := range hn.Spec.Networks {
		if err, ok := failed[n.UID]; ok {
			st.Failed = append(st.Failed, api.NetworkFailure{UID: n.UID, Name: n.Name, Message: truncate(err.Error(), 500)})
		}
	}
	l.reported = &st
	l.write(ctx, hn)
}

// reportLoadBalancers writes the load balancers' current statuses into
// the HostNetwork's status, next to the outcome of the last Apply.
func (l *Loop) reportLoadBalancers(ctx context.Context) {
	if l.reported == nil {
		return // the first Apply reports them
	}
	var hn api.HostNetwork
	if err := l.cfg.API.Client().Get(ctx, api.HostNetworkKind, "", l.cfg.Host, &hn); err != nil {
		if ctx.Err() == nil {
			l.cfg.Logger.Debug("report load balancers", "err", err)
		}
		return
	}
	l.write(ctx, &hn)
}

// write updates hn's status to the last reported one with the load
// balancers' current statuses, unless it holds that already.
func (l *Loop) write(ctx context.Context, hn *api.HostNetwork) {
	st := *l.reported
	if l.cfg.LoadBalancers != nil {
		// A copy of its own: the status update decodes the answer into
		// hn.
		for _, lb := range l.cfg.LoadBalancers.Statuses() {
			lb.Members = slices.Clone(lb.Members)
			st.LoadBalancers = append(st.LoadBalancers, lb)
		}
	}
	if reflect.DeepEqual(hn.Status, st) {
		return
	}
	hn.Status = st
	if err := l.cfg.API.Client().UpdateStatus(ctx, hn); err != nil && ctx.Err() == nil {
		l.cfg.Logger.Debug("report host network status", "err", err)
	}
}

// driverLB is the driver of a load balancer's port: not an instance's.
const driverLB = "lb"

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// truncate shortens s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
