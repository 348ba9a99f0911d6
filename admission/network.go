package admission

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/ipam"
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
	// DefaultNetworkName names the network instances attach to when they
	// name none.
	DefaultNetworkName = "default"
	// DefaultNetworkCIDR is the prefix of a project's default network.
	DefaultNetworkCIDR = "172.31.0.0/20"
	// DefaultGroupName names the security group of an attachment that
	// names none.
	DefaultGroupName = "default"
)

// validateNetworkSpec checks a network's spec and fills its defaults:
// the gateway (first host address) and NAT (on).
func validateNetworkSpec(spec *api.NetworkSpec) (netip.Prefix, error) {
	p, err := ipam.ParsePrefix4("spec.cidr", spec.CIDR, minNetworkBits, maxNetworkBits)
	if err != nil {
		return p, err
	}
	if spec.Gateway == "" {
		spec.Gateway = p.Addr().Next().String()
	}
	gwHint := fmt.Sprintf("use a host address of %s, or leave it out for %s", p, p.Addr().Next())
	gw, err := ipam.ParseAddr4("spec.gateway", gwHint, spec.Gateway)
	if err != nil {
		return p, err
	}
	if !ipam.HostAddr(p, gw) {
		return p, api.Invalid("spec.gateway", gwHint, "gateway %s is not a host address of %s", gw, p)
	}
	spec.Gateway = gw.String()
	if len(spec.DNS) > maxDNSServers {
		return p, api.Invalid("spec.dns", fmt.Sprintf("use at most %d servers", maxDNSServers), "%d servers given", len(spec.DNS))
	}
	for i, d := range spec.DNS {
		a, err := ipam.ParseAddr4(fmt.Sprintf("spec.dns[%d]", i), "use the IPv4 address of a resolver, such as 9.9.9.9", d)
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

// CheckNetworkSpec makes the checks of ValidateNetworkCreate that need no
// store (the prefix and its bounds, the gateway, the DNS servers) on a
// copy of spec.
func CheckNetworkSpec(spec api.NetworkSpec) error {
	spec.DNS = slices.Clone(spec.DNS)
	_, err := validateNetworkSpec(&spec)
	return err
}

// ValidateNetworkCreate admits a new network with its defaults (the
// gateway is the first host address, NAT is on) and refuses one that
// overlaps another network of its project (networks of different projects
// may overlap: they never share a router). StoreNetwork stores it.
func (a *Admitter) ValidateNetworkCreate(ctx context.Context, n *api.Network) error {
	p, err := validateNetworkSpec(&n.Spec)
	if err != nil {
		return err
	}
	if n.Spec.VPC != "" {
		if _, err := a.checkSubnet(ctx, n, p); err != nil {
			return err
		}
	}
	others, _, err := a.st.List(ctx, api.NetworkKind, n.Metadata.Project, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("list networks: %w", err)
	}
	for _, o := range others {
		on := o.(*api.Network)
		if on.Metadata.Name == n.Metadata.Name {
			continue // AlreadyExists, or a retried create, is the store's answer
		}
		if op, err := netip.ParsePrefix(on.Spec.CIDR); err == nil && p.Overlaps(op) {
			return api.Invalid("spec.cidr", "choose a prefix that overlaps no other network of the project",
				"%s overlaps network %q (%s)", p, on.Metadata.Name, on.Spec.CIDR)
		}
	}
	n.Status = api.NetworkStatus{Phase: "Ready"}
	return nil
}

// ValidateNetworkUpdate allows changing only DNS and NAT.
func ValidateNetworkUpdate(old, n *api.Network) error {
	if n.Spec.Gateway == "" {
		n.Spec.Gateway = old.Spec.Gateway
	}
	if n.Spec.CIDR != old.Spec.CIDR {
		return Immutable("spec.cidr")
	}
	if n.Spec.VPC != old.Spec.VPC {
		return Immutable("spec.vpc")
	}
	if _, err := validateNetworkSpec(&n.Spec); err != nil {
		return err
	}
	if n.Spec.Gateway != old.Spec.Gateway {
		return Immutable("spec.gateway")
	}
	return nil
}

// ValidateNetworkStatus keeps the server-assigned VNI.
func ValidateNetworkStatus(old, n *api.Network) error {
	if n.Status.VNI != old.Status.VNI {
		return api.Invalid("status.vni", "the VNI is assigned by the server at create", "field is immutable")
	}
	if n.Status.VPCUID != old.Status.VPCUID {
		return api.Invalid("status.vpcUID", "the VPC's UID is set by the server at create", "field is immutable")
	}
	return nil
}

// EnsureProjectNetworking creates, writing with st, the default VPC,
// network (the VPC's subnet) and security group every project has, unless
// they exist; a default network made before VPCs becomes the default
// VPC's subnet. It is idempotent and, as every write is one transaction,
// safe to interrupt and run again.
func (a *Admitter) EnsureProjectNetworking(ctx context.Context, st store.Interface, project string) error {
	vpc, err := a.ensureDefaultVPC(ctx, st, project)
	if err != nil {
		return err
	}
	var dn api.Network
	err = a.st.Get(ctx, api.NetworkKind, project, DefaultNetworkName, &dn)
	if err == nil && dn.Spec.VPC == "" {
		if err := a.adoptDefaultNetwork(ctx, st, vpc, &dn); err != nil {
			return fmt.Errorf("default network of project %s: %w", project, err)
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		n := &api.Network{Metadata: api.ObjectMeta{Name: DefaultNetworkName, Project: project},
			Spec: api.NetworkSpec{CIDR: DefaultNetworkCIDR, VPC: DefaultVPCName}}
		if err := a.ValidateNetworkCreate(ctx, n); err != nil {
			return fmt.Errorf("default network of project %s: %w", project, err)
		}
		if _, err := a.StoreNetwork(ctx, st, n, store.CreateOptions{}); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return fmt.Errorf("create default network of project %s: %w", project, err)
		}
	} else if err != nil {
		return fmt.Errorf("get default network of project %s: %w", project, err)
	}
	err = a.st.Get(ctx, api.SecurityGroupKind, project, DefaultGroupName, &api.SecurityGroup{})
	if errors.Is(err, store.ErrNotFound) {
		g := DefaultGroup(project)
		if err := a.ValidateSecurityGroup(ctx, g); err != nil {
			return fmt.Errorf("default security group of project %s: %w", project, err)
		}
		if _, err := st.Create(ctx, g, store.CreateOptions{}); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return fmt.Errorf("create default security group of project %s: %w", project, err)
		}
	} else if err != nil {
		return fmt.Errorf("get default security group of project %s: %w", project, err)
	}
	return nil
}

// DefaultGroup is a project's security group "default": ingress from its
// own members, all egress (no egress rules), as AWS's default group.
func DefaultGroup(project string) *api.SecurityGroup {
	return &api.SecurityGroup{
		Metadata: api.ObjectMeta{Name: DefaultGroupName, Project: project},
		Spec: api.SecurityGroupSpec{
			Description: "allows traffic between its members and all egress",
			Rules:       []api.SecurityGroupRule{{Direction: "ingress", Protocol: "all", SourceGroup: DefaultGroupName}},
		},
	}
}

// ValidatePool admits a floating IP pool on create (old == nil) and
// update: a range of usable addresses of its prefix that overlaps no other
// pool and, on update, still holds every allocated address.
func (a *Admitter) ValidatePool(ctx context.Context, p *api.FloatingIPPool, old *api.FloatingIPPool) error {
	prefix, err := ipam.ParsePrefix4("spec.cidr", p.Spec.CIDR, 8, 32)
	if err != nil {
		return err
	}
	if old != nil && p.Spec.CIDR != old.Spec.CIDR {
		return Immutable("spec.cidr")
	}
	hint := fmt.Sprintf("use addresses of %s", prefix)
	if prefix.Bits() <= 30 {
		hint = fmt.Sprintf("use host addresses of %s (not its network or broadcast address)", prefix)
	}
	inside := func(addr netip.Addr) bool {
		return prefix.Bits() > 30 && prefix.Contains(addr) || ipam.HostAddr(prefix, addr)
	}
	start, err := ipam.ParseAddr4("spec.start", hint, p.Spec.Start)
	if err != nil {
		return err
	}
	end, err := ipam.ParseAddr4("spec.end", hint, p.Spec.End)
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
	pools, _, err := a.st.List(ctx, api.FloatingIPPoolKind, "", store.ListOptions{})
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
	allocated, err := a.addrs.PoolAddresses(ctx, p.Metadata.Name)
	if err != nil {
		return err
	}
	for addr := range allocated {
		if addr.Less(start) || end.Less(addr) {
			return api.Invalid("spec.start", "keep every allocated address inside the range", "allocated address %s would fall outside %s-%s", addr, start, end)
		}
	}
	return nil
}

// StoreNetwork stores a network admitted by ValidateNetworkCreate,
// writing with st, with a VNI claimed in the same transaction and, for a
// VPC's subnet, the claims that keep the VPC's subnets apart.
func (a *Admitter) StoreNetwork(ctx context.Context, st store.Interface, n *api.Network, opts store.CreateOptions) (bool, error) {
	if n.Spec.VPC == "" {
		return a.addrs.CreateNetwork(ctx, st, n, opts)
	}
	p, err := netip.ParsePrefix(n.Spec.CIDR)
	if err != nil {
		return false, api.Invalid("spec.cidr", "use an IPv4 prefix", "%q is not a prefix", n.Spec.CIDR)
	}
	v, err := a.checkSubnet(ctx, n, p)
	if err != nil {
		return false, err
	}
	vp, _ := netip.ParsePrefix(v.Spec.CIDR)
	opts.Claims, opts.FreeClaimPrefixes = subnetClaims(v.Metadata.UID, vp.Bits(), p.Masked())
	n.Status.VPCUID = v.Metadata.UID
	existed, err := a.addrs.CreateNetwork(ctx, st, n, opts)
	var ce *store.ClaimError
	if errors.As(err, &ce) && strings.HasPrefix(ce.Claim, subnetClaimRoot(v.Metadata.UID)) {
		return false, subnetOverlap(n, ce)
	}
	return existed, err
}
