package hostnet

import (
	"errors"
	"reflect"
	"sync"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
)

// Port is what an instance needs from an applied network.
type Port struct {
	// NetNS is the instance's namespace (containers; "" for virtual
	// machines, whose ports are TAP devices).
	NetNS       string
	Nameservers []string
	// Routers maps each interface address of the instance to the router
	// namespace of its network, where health probes start.
	Routers map[string]string
	// NICs are the instance's ports on this host, in the order of the
	// host network's entries.
	NICs []driver.NIC
}

// taps reports whether every port is a TAP device a VM can attach to.
func (p Port) taps() bool {
	for _, n := range p.NICs {
		if n.Tap == "" {
			return false
		}
	}
	return len(p.NICs) > 0
}

// Ports records which instance ports the last Apply made, and why the
// instances it could not give ports to wait. The zero value records none.
type Ports struct {
	mu    sync.RWMutex
	byUID map[string]Port
	// held says, by instance uid, which network of the instance could not
	// be set up and why.
	held map[string]string
	// planned are ports being set up (Plan): known, not there yet.
	planned map[string]Port
}

// HeldBack returns why an instance waits for a network that could not be
// set up, if it does.
func (s *Ports) HeldBack(uid string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	msg, ok := s.held[uid]
	return msg, ok
}

// Get returns the applied port of the instance with uid.
func (s *Ports) Get(uid string) (Port, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.byUID[uid]
	return p, ok
}

// Plan records ports being set up: an instance may be prepared with
// them (Planned) but not run before they are applied (Ready). It returns
// the uids newly planned. Add or Set ends the plan.
func (s *Ports) Plan(ports map[string]Port) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var uids []string
	for uid, p := range ports {
		if _, ok := s.byUID[uid]; ok {
			continue
		}
		if s.planned == nil {
			s.planned = map[string]Port{}
		}
		s.planned[uid] = p
		uids = append(uids, uid)
	}
	return uids
}

// Planned returns the ports of an instance that are applied or being
// set up (Plan), for preparing it (a container's spec names its
// namespace) while its network is not there yet.
func (s *Ports) Planned(inst *api.Instance) (Port, bool) {
	if p, ok := s.Ready(inst); ok {
		return p, true
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.planned[inst.Metadata.UID]
	return p, ok && inst.Status.Driver != api.DriverVM
}

// Add records ports applied on their own (PortPlane), next to those of
// the last Set, and returns the uids whose ports are new or changed.
func (s *Ports) Add(ports map[string]Port) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var changed []string
	for uid, p := range ports {
		if old, ok := s.byUID[uid]; !ok || !reflect.DeepEqual(old, p) {
			changed = append(changed, uid)
		}
		if s.byUID == nil {
			s.byUID = map[string]Port{}
		}
		s.byUID[uid] = p
		delete(s.planned, uid)
	}
	return changed
}

// has reports whether uid has applied ports or waits for a network that
// could not be set up.
func (s *Ports) has(uid string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, applied := s.byUID[uid]
	_, held := s.held[uid]
	return applied || held
}

// Set replaces the applied ports and the held-back instances (by uid,
// why each waits) and returns the uids whose ports, or reasons to wait,
// are new or changed. It ends every plan.
func (s *Ports) Set(ports map[string]Port, held map[string]string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.planned = nil
	var changed []string
	for uid, p := range ports {
		if old, ok := s.byUID[uid]; !ok || !reflect.DeepEqual(old, p) {
			changed = append(changed, uid)
		}
	}
	for uid, msg := range held {
		if old, ok := s.held[uid]; !ok || old != msg {
			changed = append(changed, uid)
		}
	}
	s.byUID, s.held = ports, held
	return changed
}

// networkFailure is an Apply failure of one network only, which did not
// stop the others (netplane.NetworkError).
type networkFailure interface {
	error
	NetworkUID() string
}

// SplitApplyError separates the failures of single networks, by network
// UID, from the rest of an Apply error (nil when there is no other).
func SplitApplyError(err error) (nets map[string]error, rest error) {
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

// Ready returns the ports of an instance once they are applied: for a
// container its namespace exists, for a virtual machine its TAP devices.
func (s *Ports) Ready(inst *api.Instance) (Port, bool) {
	p, ok := s.Get(inst.Metadata.UID)
	if ok && inst.Status.Driver == api.DriverVM && !p.taps() {
		// Applied as a container's veth (a host network computed before
		// the instance's driver was known): wait for the TAP.
		return p, false
	}
	return p, ok
}

// ProbeTarget returns where to probe inst from (health.Targets): the
// router namespace of its first interface's network, and the interface
// address.
func (s *Ports) ProbeTarget(inst *api.Instance) (nsPath, ip string, ok bool) {
	if len(inst.Status.Interfaces) == 0 {
		return "", "", false
	}
	ip = inst.Status.Interfaces[0].IP
	p, found := s.Get(inst.Metadata.UID)
	if !found {
		return "", "", false
	}
	nsPath, ok = p.Routers[ip]
	return nsPath, ip, ok
}
