package admission

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/ipam"
	"github.com/ouroboros-cloud/ouro/store"
)

// VPC bounds, as AWS's.
const (
	minVPCBits = 16
	maxVPCBits = 28
)

// Names and values of the default VPC every project gets.
const (
	// DefaultVPCName names a project's default VPC; its subnet is the
	// project's default network.
	DefaultVPCName = "default"
	// DefaultVPCCIDR is the prefix of a project's default VPC (AWS's).
	DefaultVPCCIDR = "172.31.0.0/16"
)

// vpcStatus is the status the server gives a VPC: its default security
// group, main route table (local, and the outside through NAT) and
// default network ACL (allow all).
func vpcStatus(cidr netip.Prefix, isDefault bool) api.VPCStatus {
	allow := func(egress bool) api.NetworkACLEntry {
		return api.NetworkACLEntry{RuleNumber: 100, Egress: egress, Protocol: "all", CIDR: "0.0.0.0/0", Action: "allow"}
	}
	deny := func(egress bool) api.NetworkACLEntry {
		return api.NetworkACLEntry{RuleNumber: 32767, Egress: egress, Protocol: "all", CIDR: "0.0.0.0/0", Action: "deny"}
	}
	return api.VPCStatus{
		Default:       isDefault,
		SecurityGroup: DefaultGroupName,
		RouteTable: api.RouteTable{Routes: []api.Route{
			{Destination: cidr.String(), Target: api.RouteTargetLocal},
			{Destination: "0.0.0.0/0", Target: api.RouteTargetNAT},
		}},
		NetworkACL: api.NetworkACL{Entries: []api.NetworkACLEntry{allow(false), deny(false), allow(true), deny(true)}},
	}
}

// CheckVPCSpec checks a VPC's spec (the prefix, /16 to /28) and returns
// the prefix.
func CheckVPCSpec(spec *api.VPCSpec) (netip.Prefix, error) {
	p, err := ipam.ParsePrefix4("spec.cidr", spec.CIDR, minVPCBits, maxVPCBits)
	if err != nil {
		return p, err
	}
	spec.CIDR = p.String()
	if spec.EnableDNSSupport != nil && !*spec.EnableDNSSupport {
		return p, api.Invalid("spec.enableDnsSupport", "leave it out, or true",
			"DNS cannot be turned off: each subnet's DNS server always answers for its instances")
	}
	return p, nil
}

// ValidateVPCCreate admits a new VPC and sets its status. Only the
// server makes a default VPC (EnsureProjectNetworking).
func ValidateVPCCreate(v *api.VPC) error {
	p, err := CheckVPCSpec(&v.Spec)
	if err != nil {
		return err
	}
	v.Status = vpcStatus(p, false)
	return nil
}

// ValidateVPCUpdate allows changing only the DNS flags.
func ValidateVPCUpdate(old, v *api.VPC) error {
	if v.Spec.CIDR != old.Spec.CIDR {
		if p, err := netip.ParsePrefix(v.Spec.CIDR); err != nil || p.String() != old.Spec.CIDR {
			return Immutable("spec.cidr")
		}
	}
	_, err := CheckVPCSpec(&v.Spec)
	return err
}

// ValidateVPCStatus refuses status writes: the server sets the status.
func ValidateVPCStatus() error {
	return api.Invalid("status", "the server sets it at create", "the status of a VPC cannot be written")
}

// beforeDeleteVPC refuses deleting a VPC that still has subnets.
func (a *Admitter) beforeDeleteVPC(ctx context.Context, st store.Interface, obj api.Object) error {
	m := obj.Meta()
	subnets, err := list(ctx, st, api.NetworkKind, m.Project, 0, func(o api.Object) bool {
		return o.(*api.Network).Spec.VPC == m.Name
	})
	return refuseUsed("VPC "+m.Name, subnets, err)
}

// subnetClaimRoot is the claim prefix of a VPC's subnets.
func subnetClaimRoot(vpcUID string) string { return "vpcnet/" + vpcUID + "/" }

// subnetKey is the claim of prefix p in a VPC: its network bits, so that
// the keys of the prefixes inside p begin with p's (less the "e" that
// ends every key).
func subnetKey(vpcUID string, p netip.Prefix, bits int) string {
	a := p.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	var b strings.Builder
	b.WriteString(subnetClaimRoot(vpcUID))
	b.WriteByte('b')
	for i := range bits {
		b.WriteByte('0' + byte(v>>(31-i)&1))
	}
	return b.String()
}

// subnetClaims returns what a subnet p of a VPC of vpcBits takes and
// what must be free when it is created, in one transaction: its own key;
// no key of a prefix inside it; no key of a prefix it lies inside. Two
// overlapping subnets can therefore never both be stored, whatever the
// concurrency.
func subnetClaims(vpcUID string, vpcBits int, p netip.Prefix) (claims, free []string) {
	claims = []string{subnetKey(vpcUID, p, p.Bits()) + "e"}
	free = []string{subnetKey(vpcUID, p, p.Bits())}
	for k := vpcBits; k < p.Bits(); k++ {
		free = append(free, subnetKey(vpcUID, p, k)+"e")
	}
	return claims, free
}

// checkSubnet admits network n as a subnet of its VPC: the VPC exists in
// its project, and n's prefix lies inside the VPC's and overlaps no other
// subnet of it. It returns the VPC.
func (a *Admitter) checkSubnet(ctx context.Context, n *api.Network, p netip.Prefix) (*api.VPC, error) {
	if err := api.ValidateName("spec.vpc", n.Spec.VPC); err != nil {
		return nil, err
	}
	var v api.VPC
	err := a.st.Get(ctx, api.VPCKind, n.Metadata.Project, n.Spec.VPC, &v)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound(api.VPCKind.Name, n.Spec.VPC)
	}
	if err != nil {
		return nil, fmt.Errorf("get VPC: %w", err)
	}
	vp, err := netip.ParsePrefix(v.Spec.CIDR)
	if err != nil {
		return nil, fmt.Errorf("VPC %s: %w", v.Metadata.Name, err)
	}
	if p.Bits() < vp.Bits() || !vp.Contains(p.Addr()) || p.Bits() > maxVPCBits {
		return nil, api.Invalid("spec.cidr", fmt.Sprintf("use a prefix of /%d to /%d inside the VPC's %s", vp.Bits(), maxVPCBits, vp),
			"%s is not a subnet of VPC %q (%s)", p, v.Metadata.Name, vp)
	}
	return &v, nil
}

// subnetOverlap answers a create refused by the claims of a VPC's
// subnets, naming the subnet in the way.
func subnetOverlap(n *api.Network, ce *store.ClaimError) error {
	return api.Invalid("spec.cidr", "choose a prefix that overlaps no other subnet of the VPC",
		"%s overlaps subnet %q of VPC %q", n.Spec.CIDR, ce.HolderName(), n.Spec.VPC)
}

// adoptDefaultNetwork makes an existing default network made before VPCs
// the default VPC's subnet, when its prefix lies inside the VPC's: it
// takes the subnet's claim in the same write.
func (a *Admitter) adoptDefaultNetwork(ctx context.Context, st store.Interface, v *api.VPC, n *api.Network) error {
	vp, err1 := netip.ParsePrefix(v.Spec.CIDR)
	p, err2 := netip.ParsePrefix(n.Spec.CIDR)
	if err1 != nil || err2 != nil || p.Bits() < vp.Bits() || !vp.Contains(p.Addr()) || p.Bits() > maxVPCBits {
		return nil // it stays a network on its own
	}
	claims, _ := subnetClaims(v.Metadata.UID, vp.Bits(), p.Masked())
	n.Spec.VPC, n.Status.VPCUID = v.Metadata.Name, v.Metadata.UID
	if err := st.UpdateClaims(ctx, n, claims, nil); err != nil {
		return fmt.Errorf("make network %s a subnet of VPC %s: %w", n.Metadata.Name, v.Metadata.Name, err)
	}
	return nil
}

// ensureDefaultVPC creates a project's default VPC unless it exists, and
// returns it.
func (a *Admitter) ensureDefaultVPC(ctx context.Context, st store.Interface, project string) (*api.VPC, error) {
	var v api.VPC
	err := a.st.Get(ctx, api.VPCKind, project, DefaultVPCName, &v)
	if err == nil {
		return &v, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("get default VPC of project %s: %w", project, err)
	}
	v = api.VPC{Metadata: api.ObjectMeta{Name: DefaultVPCName, Project: project}, Spec: api.VPCSpec{CIDR: DefaultVPCCIDR}}
	p, err := CheckVPCSpec(&v.Spec)
	if err != nil {
		return nil, err
	}
	v.Status = vpcStatus(p, true)
	if _, err := st.Create(ctx, &v, store.CreateOptions{}); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return nil, fmt.Errorf("create default VPC of project %s: %w", project, err)
	}
	if err := a.st.Get(ctx, api.VPCKind, project, DefaultVPCName, &v); err != nil {
		return nil, fmt.Errorf("get default VPC of project %s: %w", project, err)
	}
	return &v, nil
}
