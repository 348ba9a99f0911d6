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

// netState records which instance ports the last successful Apply made.
type netState struct {
	mu    sync.RWMutex
	ports map[string]portInfo // by instance uid
}

func (s *netState) port(uid string) (portInfo, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.ports[uid]
	return p, ok
}

// ProbeTarget returns where to probe inst from (health.Targets): the
// router namespace of its first interface's network, and the interface
// address.
func (s *netState) ProbeTarget(inst *api.Instance) (nsPath, ip string, ok bool) {
	if len(inst.Status.Interfaces) == 0 {
		return "", "", false
	}
	ip = inst.Status.Interfaces[0].IP
	p, found := s.port(inst.Metadata.UID)
	if !found {
		return "", "", false
	}
	nsPath, ok = p.routers[ip]
	return nsPath, ip, ok
}

// set replaces the applied ports and returns the uids whose ports are new
// or changed.
func (s *netState) set(ports map[string]portInfo) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var changed []string
	for uid, p := range ports {
		if old, ok := s.ports[uid]; !ok || !reflect.DeepEqual(old, p) {
			changed = append(changed, uid)
		}
	}
	s.ports = ports
	return changed
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
	defer a.meta.Close()
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
	a.meta.Sync(hn.Spec)
	if applyErr == nil {
		ports := map[string]portInfo{}
		for _, n := range hn.Spec.Networks {
			for _, p := range n.Ports {
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
		for _, uid := range a.net.set(ports) {
			if inst, ok := a.cache.ByUID(uid); ok {
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
		st.Message = applyErr.Error()
		if len(st.Message) > 1000 {
			st.Message = st.Message[:1000]
		}
	}
	if hn.Status == st {
		return
	}
	hn.Status = st
	if err := a.client().UpdateStatus(ctx, hn); err != nil && ctx.Err() == nil {
		a.log.Debug("report host network status", "err", err)
	}
}
