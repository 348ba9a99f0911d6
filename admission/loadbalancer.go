package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/ipam"
	"github.com/ouroboros-cloud/ouro/store"
)

// Bounds and defaults of load balancers.
const (
	// DefaultDrainTimeoutSeconds is how long a leaving member keeps its
	// connections when spec.drainTimeoutSeconds is left out.
	DefaultDrainTimeoutSeconds = 30
	maxDrainTimeoutSeconds     = 3600
	maxLBHosts                 = 2
	maxListeners               = 64
	maxPools                   = 64
	maxRules                   = 64
	maxPoolInstances           = 256
	maxWeight                  = 256
)

// ValidateLoadBalancerCreate admits, for id, a new load balancer with its
// defaults: its network exists in the project, a VIP asked for is a host
// address of it, the floating IP pool (default: the only one) exists,
// and the listeners and pools are valid (validateLoadBalancerSpec). The
// metadata must have been checked and the status cleared. Nothing is
// written: StoreLoadBalancer claims the addresses and stores it.
func (a *Admitter) ValidateLoadBalancerCreate(ctx context.Context, id *auth.Identity, lb *api.LoadBalancer) error {
	if err := checkIdentity(id); err != nil {
		return err
	}
	spec := &lb.Spec
	n, err := a.lbNetwork(ctx, lb)
	if err != nil {
		return err
	}
	if spec.VIP != "" {
		vip, err := ipam.FixedAddr("spec.vip", spec.VIP, n)
		if err != nil {
			return err
		}
		spec.VIP = vip.String()
	}
	if spec.Hosts == 0 {
		spec.Hosts = 1
	}
	if spec.Hosts < 1 || spec.Hosts > maxLBHosts {
		return api.Invalid("spec.hosts", "use 1, or 2 for active/standby on two hosts", "%d hosts is not valid", spec.Hosts)
	}
	if err := a.resolveFloatingIPPool(ctx, spec); err != nil {
		return err
	}
	if err := a.validateLoadBalancerSpec(ctx, lb, n); err != nil {
		return err
	}
	lb.Status = api.LoadBalancerStatus{Phase: api.LBPending}
	return nil
}

// ValidateLoadBalancerUpdate admits, for id, the update of load balancer
// old to lb, whose status and server-owned metadata are old's: the
// network, VIP, floating IP, its pool and the number of hosts cannot
// change (left out, they are kept); listeners, pools and the drain
// timeout can. An https listener sent back without its key (responses
// never carry keys) keeps the stored key while its certificate is the
// same.
func (a *Admitter) ValidateLoadBalancerUpdate(ctx context.Context, id *auth.Identity, old, lb *api.LoadBalancer) error {
	if err := checkIdentity(id); err != nil {
		return err
	}
	o, spec := &old.Spec, &lb.Spec
	if spec.VIP == "" || spec.VIP == old.Status.VIP {
		spec.VIP = o.VIP
	}
	if spec.FloatingIPPool == "" {
		spec.FloatingIPPool = o.FloatingIPPool
	}
	if spec.Hosts == 0 {
		spec.Hosts = o.Hosts
	}
	switch {
	case spec.Network != o.Network:
		return Immutable("spec.network")
	case spec.VIP != o.VIP:
		return Immutable("spec.vip")
	case spec.FloatingIP != o.FloatingIP:
		return Immutable("spec.floatingIP")
	case spec.FloatingIPPool != o.FloatingIPPool:
		return Immutable("spec.floatingIPPool")
	case spec.Hosts != o.Hosts:
		return Immutable("spec.hosts")
	}
	for i := range spec.Listeners {
		l := &spec.Listeners[i]
		if l.Key != "" || l.Certificate == "" {
			continue
		}
		j := slices.IndexFunc(o.Listeners, func(ol api.Listener) bool {
			return ol.Name == l.Name && ol.Certificate == l.Certificate
		})
		if j >= 0 {
			l.Key = o.Listeners[j].Key
		}
	}
	n, err := a.lbNetwork(ctx, lb)
	if err != nil {
		return err
	}
	return a.validateLoadBalancerSpec(ctx, lb, n)
}

// ValidateLoadBalancerStatus admits the status lb written by id over
// old's: only the server's controllers write it, and the addresses
// claimed at create are kept.
func ValidateLoadBalancerStatus(id *auth.Identity, old, lb *api.LoadBalancer) error {
	if !id.IsSystem() {
		return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden,
			Message: fmt.Sprintf("%s may not write the status of a load balancer", id),
			Hint:    "the load balancer controller writes it"}
	}
	switch lb.Status.Phase {
	case "", api.LBPending, api.LBActive, api.LBDegraded:
	default:
		return api.Invalid("status.phase", "use Pending, Active or Degraded", "phase %q is not valid", truncate(lb.Status.Phase, 80))
	}
	s, os := &lb.Status, &old.Status
	s.NetworkUID, s.VIP, s.PortAddresses = os.NetworkUID, os.VIP, os.PortAddresses
	s.FloatingIP, s.FloatingIPPool = os.FloatingIP, os.FloatingIPPool
	return nil
}

// StoreLoadBalancer stores a load balancer admitted by
// ValidateLoadBalancerCreate, writing with st, with its VIP, port
// addresses and floating IP claimed in the same transaction.
func (a *Admitter) StoreLoadBalancer(ctx context.Context, st store.Interface, lb *api.LoadBalancer, opts store.CreateOptions) (bool, error) {
	return a.addrs.CreateLoadBalancer(ctx, st, lb, opts)
}

// lbNetwork reads the load balancer's network of its project.
func (a *Admitter) lbNetwork(ctx context.Context, lb *api.LoadBalancer) (*api.Network, error) {
	name := lb.Spec.Network
	if name == "" {
		return nil, api.Invalid("spec.network", "name the project's network the load balancer serves", "network is required")
	}
	if e := api.ValidateName("spec.network", name); e != nil {
		return nil, e
	}
	var n api.Network
	err := a.st.Get(ctx, api.NetworkKind, lb.Metadata.Project, name, &n)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.Invalid("spec.network", "name a network of this project", "network %q does not exist", name)
	}
	if err != nil {
		return nil, fmt.Errorf("get network %s: %w", name, err)
	}
	return &n, nil
}

// resolveFloatingIPPool checks spec.floatingIPPool, defaulting it to the
// only pool when a floating IP is asked for.
func (a *Admitter) resolveFloatingIPPool(ctx context.Context, spec *api.LoadBalancerSpec) error {
	const field = "spec.floatingIPPool"
	if !spec.FloatingIP {
		if spec.FloatingIPPool != "" {
			return api.Invalid(field, "set floatingIP to true as well, or leave the pool out", "a pool is given but no floating IP is asked for")
		}
		return nil
	}
	if spec.FloatingIPPool != "" {
		if e := api.ValidateName(field, spec.FloatingIPPool); e != nil {
			return e
		}
		err := a.st.Get(ctx, api.FloatingIPPoolKind, "", spec.FloatingIPPool, &api.FloatingIPPool{})
		if errors.Is(err, store.ErrNotFound) {
			return api.Invalid(field, "list the pools with GET /v1/floatingippools", "pool %q does not exist", spec.FloatingIPPool)
		}
		if err != nil {
			return fmt.Errorf("get pool: %w", err)
		}
		return nil
	}
	pools, _, err := a.st.List(ctx, api.FloatingIPPoolKind, "", store.ListOptions{})
	if err != nil {
		return fmt.Errorf("list pools: %w", err)
	}
	switch len(pools) {
	case 0:
		return api.Invalid(field, "ask a cluster admin to create a floating IP pool", "there is no floating IP pool")
	case 1:
		spec.FloatingIPPool = pools[0].Meta().Name
		return nil
	}
	names := make([]string, len(pools))
	for i, p := range pools {
		names[i] = p.Meta().Name
	}
	return api.Invalid(field, "name one of them", "there are several pools: %s", strings.Join(names, ", "))
}

// validateLoadBalancerSpec checks and defaults what may change after
// create: the drain timeout, the listeners and the pools
// (checkLoadBalancerSpec), whose groups and instances must exist in the
// load balancer's project and be attached to its network n.
func (a *Admitter) validateLoadBalancerSpec(ctx context.Context, lb *api.LoadBalancer, n *api.Network) error {
	spec := &lb.Spec
	if spec.DrainTimeoutSeconds == 0 {
		spec.DrainTimeoutSeconds = DefaultDrainTimeoutSeconds
	}
	return checkLoadBalancerSpec(spec, func(f string, p *api.Pool) error {
		return a.checkPoolMembers(ctx, f, lb.Metadata.Project, n, p)
	})
}
