package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"reflect"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/driver"
)

// NetworkPlane realises the networks of a host. Package netplane
// implements it; Apply is declarative and safe to repeat.
type NetworkPlane interface {
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

// portInfo is what an instance needs from an applied network.
type portInfo struct {
	// netns is the instance's namespace (containers; "" for virtual
	// machines, whose ports are TAP devices).
	netns       string
	nameservers []string
	// routers maps each interface address of the instance to the router
	// namespace of its network, where health probes start.
	routers map[string]string
	// nics are the instance's ports on this host, in the order of the
	// host network's entries.
	nics []driver.NIC
}

// taps reports whether every port is a TAP device a VM can attach to.
func (p portInfo) taps() bool {
	for _, n := range p.nics {
		if n.Tap == "" {
			return false
		}
	}
	return len(p.nics) > 0
}

// netState records which instance ports the last Apply made, and why
// the instances it could not give ports to wait.
type netState struct {
	mu    sync.RWMutex
	ports map[string]portInfo // by instance uid
	// held says, by instance uid, which network of the instance could not
	// be set up and why.
	held map[string]string
}

func (s *netState) port(uid string) (portInfo, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.ports[uid]
	return p, ok
}

// heldBack returns why an instance waits for a network that could not be
// set up, if it does.
func (s *netState) heldBack(uid string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	msg, ok := s.held[uid]
	return msg, ok
}

// set replaces the applied ports and returns the uids whose ports are new
// or changed.
func (s *netState) set(ports map[string]portInfo) []string {
	return s.setHeld(ports, nil)
}

// setHeld replaces the applied ports and the held-back instances and
// returns the uids whose ports, or reasons to wait, are new or changed.
func (s *netState) setHeld(ports map[string]portInfo, held map[string]string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var changed []string
	for uid, p := range ports {
		if old, ok := s.ports[uid]; !ok || !reflect.DeepEqual(old, p) {
			changed = append(changed, uid)
		}
	}
	for uid, msg := range held {
		if old, ok := s.held[uid]; !ok || old != msg {
			changed = append(changed, uid)
		}
	}
	s.ports, s.held = ports, held
	return changed
}

// networkFailure is an Apply failure of one network only, which did not
// stop the others (netplane.NetworkError).
type networkFailure interface {
	error
	NetworkUID() string
}

// splitApplyError separates the failures of single networks, by network
// UID, from the rest of an Apply error (nil when there is no other).
func splitApplyError(err error) (nets map[string]error, rest error) {
	var others []error
	var walk func(error)
	walk = func(err error) {
		var nf networkFailure
		switch u := err.(type) {
		case nil:
		case networkFailure:
			if nets == nil {
				nets = map[string]error{}
			}
			nets[u.NetworkUID()] = errors.Join(nets[u.NetworkUID()], u)
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			if errors.As(err, &nf) {
				walk(u.Unwrap()) // a wrapper of a network failure
				return
			}
			others = append(others, err)
		default:
			others = append(others, err)
		}
	}
	walk(err)
	if len(others) > 0 {
		rest = errors.Join(others...)
	}
	return nets, rest
}

// waitNetwork is the reconcile of an instance whose ports are not applied
// yet: the network loop queues it again once they are. When one of its
// networks could not be set up, the instance says so (reason
// NetworkUnavailable, in its Ready condition too) and an event records
// it, once per new message.
func (r *instanceRun) waitNetwork(ctx context.Context) error {
	msg, held := r.a.net.heldBack(r.inst.Metadata.UID)
	if !held {
		return nil
	}
	wrote, err := r.update(ctx, func(s *api.InstanceStatus) {
		s.Reason, s.Message = api.ReasonNetworkUnavailable, msg
	})
	if err != nil {
		return err
	}
	if wrote {
		r.a.event(ctx, r.inst, api.EventWarning, api.ReasonNetworkUnavailable, msg)
	}
	return nil
}

// needsNetwork reports whether an instance waits for its network ports
// before the driver may run it.
func (a *Agent) needsNetwork(inst *api.Instance) bool {
	return a.cfg.Network != nil && len(inst.Status.Interfaces) > 0
}

// networkFor returns the ports of an instance once they are applied: for
// a container its namespace exists, for a virtual machine its TAP devices.
func (a *Agent) networkFor(inst *api.Instance) (portInfo, bool) {
	p, ok := a.net.port(inst.Metadata.UID)
	if ok && inst.Status.Driver == api.DriverVM && !p.taps() {
		// Applied as a container's veth (a host network computed before
		// the instance's driver was known): wait for the TAP.
		return p, false
	}
	return p, ok
}

// networkLoop keeps the host's networks applied: it watches the host's
// HostNetwork and applies every new generation, retrying failures with
// back-off, and reports the outcome in the object's status.
func (a *Agent) networkLoop(ctx context.Context) {
	if a.cfg.Network == nil {
		return
	}
	defer a.closeMetadata()
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	go a.watchHostNetwork(ctx, poke)
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
		case <-retry.C:
			// A retry, or the periodic pass that repairs what someone
			// changed by hand: apply even an unchanged spec.
			last = ""
		}
		rv, err := a.applyHostNetwork(ctx, last)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("apply host network", "err", err, "retry_in", delay)
			retry.Reset(delay)
			delay = min(2*delay, 30*time.Second)
			continue
		}
		applied, delay = rv, time.Second
		// A periodic re-apply repairs what someone removed by hand.
		retry.Reset(time.Minute)
	}
}

// watchHostNetwork pokes on every change of this host's HostNetwork.
func (a *Agent) watchHostNetwork(ctx context.Context, poke func()) {
	delay := a.relistDelay
	for ctx.Err() == nil {
		err := client.Watch(ctx, a.client(), api.HostNetworkKind, "", client.WatchOptions{},
			func(ev api.WatchEvent[api.HostNetwork]) error {
				if ev.Object.Metadata.Name == a.name() || ev.Type == api.Bookmark {
					poke()
				}
				return nil
			})
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			a.log.Debug("host network watch broke", "err", err)
			sleepCtx(ctx, delay)
			delay = min(2*delay, 30*time.Second)
			continue
		}
		delay = a.relistDelay
		poke()
	}
}

// applyHostNetwork reads the host's HostNetwork and, unless its spec
// (uid and generation: status writes do not count) was applied already,
// applies it. It returns what is now applied.
func (a *Agent) applyHostNetwork(ctx context.Context, last string) (string, error) {
	var hn api.HostNetwork
	err := a.client().Get(ctx, api.HostNetworkKind, "", a.name(), &hn)
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
	applyErr := a.cfg.Network.Apply(ctx, hn.Spec)
	a.syncMetadata(hn.Spec)
	failed, rest := splitApplyError(applyErr)
	if rest == nil {
		// Every network but the failed ones is applied: their instances
		// get their ports; an instance with a port on a failed network
		// waits, and says why.
		held := map[string]string{}
		for _, n := range hn.Spec.Networks {
			if err, ok := failed[n.UID]; ok {
				for _, p := range n.Ports {
					held[p.Instance] = fmt.Sprintf("host %s could not set up %v", a.name(), err)
				}
			}
		}
		ports := map[string]portInfo{}
		for _, n := range hn.Spec.Networks {
			if _, ok := failed[n.UID]; ok {
				continue
			}
			for _, p := range n.Ports {
				if _, ok := held[p.Instance]; ok {
					continue
				}
				pi, seen := ports[p.Instance]
				if !seen { // the first (primary) network gives DNS
					pi.nameservers = []string{n.Gateway}
					if p.Driver != api.DriverVM {
						pi.netns = a.cfg.Network.NetNSPath(p.Instance)
					}
				}
				router := a.cfg.Network.RouterNSPath(n.VNI)
				if p.IP != "" && router != "" {
					if pi.routers == nil {
						pi.routers = map[string]string{}
					}
					pi.routers[p.IP] = router
				}
				nic := driver.NIC{MAC: p.MAC, IP: p.IP, Gateway: n.Gateway}
				if pfx, err := netip.ParsePrefix(n.CIDR); err == nil {
					nic.PrefixLen = pfx.Bits()
				}
				if p.Driver == api.DriverVM {
					nic.RouterNetNS, nic.Tap = router, a.cfg.Network.PortDevice(p.Instance)
				}
				pi.nics = append(pi.nics, nic)
				ports[p.Instance] = pi
			}
		}
		for _, uid := range a.net.setHeld(ports, held) {
			if inst, ok := a.cache.byUIDCopy(uid); ok {
				a.queue.Add(instanceKey(inst))
			}
		}
		a.log.Debug("host network applied", "resourceVersion", rv, "networks", len(hn.Spec.Networks), "ports", len(ports))
	}
	if rv != "" {
		a.reportHostNetwork(ctx, &hn, applyErr)
	}
	if applyErr != nil {
		return last, applyErr
	}
	if rv == "" {
		return "", nil
	}
	return applied, nil
}

// reportHostNetwork writes the outcome of an Apply into the object's
// status; a failure to report is only logged.
func (a *Agent) reportHostNetwork(ctx context.Context, hn *api.HostNetwork, applyErr error) {
	st := api.HostNetworkStatus{ObservedGeneration: hn.Metadata.Generation, Applied: applyErr == nil}
	if applyErr != nil {
		st.Message = truncate(applyErr.Error(), 1000)
	}
	failed, _ := splitApplyError(applyErr)
	for _, n := range hn.Spec.Networks {
		if err, ok := failed[n.UID]; ok {
			st.Failed = append(st.Failed, api.NetworkFailure{UID: n.UID, Name: n.Name, Message: truncate(err.Error(), 500)})
		}
	}
	if reflect.DeepEqual(hn.Status, st) {
		return
	}
	hn.Status = st
	if err := a.client().UpdateStatus(ctx, hn); err != nil && ctx.Err() == nil {
		a.log.Debug("report host network status", "err", err)
	}
}

// truncate shortens s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
