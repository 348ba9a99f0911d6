package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// Network bounds.
const (
	minNetworkBits = 16
	maxNetworkBits = 29
	maxDNSServers  = 4
)

// Names and values of the objects every project gets.
const (
	defaultNetworkName = "default"
	defaultNetworkCIDR = "172.31.0.0/20"
	defaultGroupName   = "default"
)

// validateNetworkSpec checks a network's spec and fills its defaults:
// the gateway (first host address) and NAT (on).
func validateNetworkSpec(spec *api.NetworkSpec) (netip.Prefix, error) {
	p, err := parsePrefix4("spec.cidr", spec.CIDR, minNetworkBits, maxNetworkBits)
	if err != nil {
		return p, err
	}
	if spec.Gateway == "" {
		spec.Gateway = p.Addr().Next().String()
	}
	gwHint := fmt.Sprintf("use a host address of %s, or leave it out for %s", p, p.Addr().Next())
	gw, err := parseAddr4("spec.gateway", gwHint, spec.Gateway)
	if err != nil {
		return p, err
	}
	if !hostAddr(p, gw) {
		return p, api.Invalid("spec.gateway", gwHint, "gateway %s is not a host address of %s", gw, p)
	}
	spec.Gateway = gw.String()
	if len(spec.DNS) > maxDNSServers {
		return p, api.Invalid("spec.dns", fmt.Sprintf("use at most %d servers", maxDNSServers), "%d servers given", len(spec.DNS))
	}
	for i, d := range spec.DNS {
		a, err := parseAddr4(fmt.Sprintf("spec.dns[%d]", i), "use the IPv4 address of a resolver, such as 9.9.9.9", d)
		if err != nil {
			return p, err
		}
		spec.DNS[i] = a.String()
	}
	if spec.NAT == nil {
		on := true
		spec.NAT = &on
	}
	return p, nil
}

// validateNetworkCreate checks a new network and refuses one that
// overlaps another network of its project (networks of different projects
// may overlap: they never share a router).
func (s *Server) validateNetworkCreate(ctx context.Context, n *api.Network) error {
	p, err := validateNetworkSpec(&n.Spec)
	if err != nil {
		return err
	}
	others, _, err := s.store.List(ctx, api.NetworkKind, n.Metadata.Project, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("list networks: %w", err)
	}
	for _, o := range others {
		on := o.(*api.Network)
		if on.Metadata.Name == n.Metadata.Name {
			continue // AlreadyExists, or a retried create, is the store's answer
		}
		if op, err := netip.ParsePrefix(on.Spec.CIDR); err == nil && prefixesOverlap(p, op) {
			return api.Invalid("spec.cidr", "choose a prefix that overlaps no other network of the project",
				"%s overlaps network %q (%s)", p, on.Metadata.Name, on.Spec.CIDR)
		}
	}
	n.Status = api.NetworkStatus{Phase: "Ready"}
	return nil
}

// validateNetworkUpdate allows changing only DNS and NAT.
func validateNetworkUpdate(old, n *api.Network) error {
	if n.Spec.Gateway == "" {
		n.Spec.Gateway = old.Spec.Gateway
	}
	if n.Spec.CIDR != old.Spec.CIDR {
		return immutable("spec.cidr")
	}
	if _, err := validateNetworkSpec(&n.Spec); err != nil {
		return err
	}
	if n.Spec.Gateway != old.Spec.Gateway {
		return immutable("spec.gateway")
	}
	return nil
}

// createNetwork stores a new network with the lowest free VNI, claimed in
// the create's transaction; a VNI taken meanwhile makes it try the next.
func (s *Server) createNetwork(ctx context.Context, n *api.Network, opts store.CreateOptions) (bool, error) {
	claims, err := s.store.ListClaims(ctx, "vni/")
	if err != nil {
		return false, fmt.Errorf("list VNIs: %w", err)
	}
	taken := make(map[string]bool, len(claims))
	for c := range claims {
		taken[c] = true
	}
	vni := firstVNI
	for range maxClaimAttempts {
		for vni <= lastVNI && taken[vniClaim(vni)] {
			vni++
		}
		if vni > lastVNI {
			return false, noFreeAddress("status.vni", "the cluster's VNI range", len(taken))
		}
		n.Status.VNI = vni
		opts.Claims = []string{vniClaim(vni)}
		existed, err := s.store.Create(ctx, n, opts)
		var ce *store.ClaimError
		if errors.As(err, &ce) && ce.Claim == vniClaim(vni) {
			taken[ce.Claim] = true
			continue
		}
		return existed, err
	}
	return false, api.Conflict("VNIs are being allocated too fast; retry")
}

// validateNetworkStatus keeps the server-assigned VNI.
func validateNetworkStatus(old, n *api.Network) error {
	if n.Status.VNI != old.Status.VNI {
		return api.Invalid("status.vni", "the VNI is assigned by the server at create", "field is immutable")
	}
	return nil
}

// networkUsers returns the instances of the network's project attached to
// it.
func (s *Server) networkUsers(ctx context.Context, n *api.Network) ([]api.Object, error) {
	users, _, err := s.store.List(ctx, api.InstanceKind, n.Metadata.Project, store.ListOptions{Filter: func(o api.Object) bool {
		in := o.(*api.Instance)
		return slices.ContainsFunc(in.Spec.Networks, func(a api.NetworkAttachment) bool { return a.Network == n.Metadata.Name }) ||
			slices.ContainsFunc(in.Status.Interfaces, func(i api.Interface) bool { return i.Network == n.Metadata.Name })
	}})
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	groups, err := s.templateUsers(ctx, n.Metadata.Project, func(t *api.InstanceTemplate) bool {
		return slices.ContainsFunc(t.Networks, func(a api.NetworkAttachment) bool { return a.Network == n.Metadata.Name })
	})
	if err != nil {
		return nil, err
	}
	return append(users, groups...), nil
}

// templateUsers lists the instance groups of a project whose template uses
// something: a group would fail to make members once it is gone.
func (s *Server) templateUsers(ctx context.Context, project string, uses func(*api.InstanceTemplate) bool) ([]api.Object, error) {
	groups, _, err := s.store.List(ctx, api.InstanceGroupKind, project, store.ListOptions{Filter: func(o api.Object) bool {
		return uses(&o.(*api.InstanceGroup).Spec.Template)
	}})
	if err != nil {
		return nil, fmt.Errorf("list instance groups: %w", err)
	}
	return groups, nil
}

// ensureProjectNetworking creates the network and security group every
// project has, unless they exist. It is idempotent and, as every create is
// one transaction, safe to interrupt and run again.
func (s *Server) ensureProjectNetworking(ctx context.Context, project string) error {
	err := s.store.Get(ctx, api.NetworkKind, project, defaultNetworkName, &api.Network{})
	if errors.Is(err, store.ErrNotFound) {
		n := &api.Network{Metadata: api.ObjectMeta{Name: defaultNetworkName, Project: project},
			Spec: api.NetworkSpec{CIDR: defaultNetworkCIDR}}
		if err := s.validateNetworkCreate(ctx, n); err != nil {
			return fmt.Errorf("default network of project %s: %w", project, err)
		}
		if _, err := s.createNetwork(ctx, n, store.CreateOptions{}); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return fmt.Errorf("create default network of project %s: %w", project, err)
		}
	} else if err != nil {
		return fmt.Errorf("get default network of project %s: %w", project, err)
	}
	err = s.store.Get(ctx, api.SecurityGroupKind, project, defaultGroupName, &api.SecurityGroup{})
	if errors.Is(err, store.ErrNotFound) {
		g := defaultGroup(project)
		if err := s.validateSecurityGroup(ctx, g); err != nil {
			return fmt.Errorf("default security group of project %s: %w", project, err)
		}
		if _, err := s.store.Create(ctx, g, store.CreateOptions{}); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return fmt.Errorf("create default security group of project %s: %w", project, err)
		}
	} else if err != nil {
		return fmt.Errorf("get default security group of project %s: %w", project, err)
	}
	return nil
}

// defaultGroup is the group "default": ingress from its own members, all
// egress (no egress rules), as AWS's default group.
func defaultGroup(project string) *api.SecurityGroup {
	return &api.SecurityGroup{
		Metadata: api.ObjectMeta{Name: defaultGroupName, Project: project},
		Spec: api.SecurityGroupSpec{
			Description: "allows traffic between its members and all egress",
			Rules:       []api.SecurityGroupRule{{Direction: "ingress", Protocol: "all", SourceGroup: defaultGroupName}},
		},
	}
}

// validatePool checks a floating IP pool. old is nil on create.
func (s *Server) validatePool(ctx context.Context, p *api.FloatingIPPool, old *api.FloatingIPPool) error {
	prefix, err := parsePrefix4("spec.cidr", p.Spec.CIDR, 8, 32)
	if err != nil {
		return err
	}
	if old != nil && p.Spec.CIDR != old.Spec.CIDR {
		return immutable("spec.cidr")
	}
	hint := fmt.Sprintf("use addresses of %s", prefix)
	if prefix.Bits() <= 30 {
		hint = fmt.Sprintf("use host addresses of %s (not its network or broadcast address)", prefix)
	}
	inside := func(a netip.Addr) bool { return prefix.Bits() > 30 && prefix.Contains(a) || hostAddr(prefix, a) }
	start, err := parseAddr4("spec.start", hint, p.Spec.Start)
	if err != nil {
		return err
	}
	end, err := parseAddr4("spec.end", hint, p.Spec.End)
	if err != nil {
		return err
	}
	switch {
	case !inside(start):
		return api.Invalid("spec.start", hint, "%s is not a usable address of %s", start, prefix)
	case !inside(end):
		return api.Invalid("spec.end", hint, "%s is not a usable address of %s", end, prefix)
	case end.Less(start):
		return api.Invalid("spec.end", "end must not come before start", "range %s-%s is empty", start, end)
	}
	p.Spec.Start, p.Spec.End = start.String(), end.String()
	pools, _, err := s.store.List(ctx, api.FloatingIPPoolKind, "", store.ListOptions{})
	if err != nil {
		return fmt.Errorf("list pools: %w", err)
	}
	for _, o := range pools {
		op := o.(*api.FloatingIPPool)
		if op.Metadata.Name == p.Metadata.Name {
			continue
		}
		os, err1 := netip.ParseAddr(op.Spec.Start)
		oe, err2 := netip.ParseAddr(op.Spec.End)
		if err1 == nil && err2 == nil && !(end.Less(os) || oe.Less(start)) {
			return api.Invalid("spec.start", "choose a range no other pool uses",
				"range %s-%s overlaps pool %q (%s-%s)", start, end, op.Metadata.Name, os, oe)
		}
	}
	if old == nil {
		p.Status = api.FloatingIPPoolStatus{}
		return nil
	}
	// Allocated addresses must stay inside a changed range.
	claims, err := s.store.ListClaims(ctx, fipClaimPrefix(p.Metadata.Name))
	if err != nil {
		return fmt.Errorf("list floating IPs of pool: %w", err)
	}
	for c := range usedAddrs(claims, fipClaimPrefix(p.Metadata.Name)) {
		if a, err := netip.ParseAddr(c); err == nil && (a.Less(start) || end.Less(a)) {
			return api.Invalid("spec.start", "keep every allocated address inside the range", "allocated address %s would fall outside %s-%s", a, start, end)
		}
	}
	return nil
}

// poolUsers returns the names of the floating IPs allocated from a pool.
func (s *Server) poolUsers(ctx context.Context, pool string) ([]api.Object, error) {
	claims, err := s.store.ListClaims(ctx, fipClaimPrefix(pool))
	if err != nil {
		return nil, fmt.Errorf("list floating IPs of pool %s: %w", pool, err)
	}
	var users []api.Object
	for _, holder := range claims {
		project, name := holderName(holder)
		users = append(users, &api.FloatingIP{Metadata: api.ObjectMeta{Project: project, Name: name}})
	}
	slices.SortFunc(users, func(a, b api.Object) int {
		return strings.Compare(a.Meta().Project+"/"+a.Meta().Name, b.Meta().Project+"/"+b.Meta().Name)
	})
	return users, nil
}

// holderName returns the project and name of the object whose store key
// holds a claim: /ouro/v1/<plural>/[<project>/]<name>.
func holderName(holder string) (project, name string) {
	parts := strings.Split(holder, "/")
	name = parts[len(parts)-1]
	if len(parts) == 6 {
		project = parts[4]
	}
	return project, name
}
