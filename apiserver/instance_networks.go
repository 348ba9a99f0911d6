package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// maxInterfaces bounds the networks of one instance.
const maxInterfaces = 8

// maxGroupsPerInterface bounds the security groups of one interface.
const maxGroupsPerInterface = 16

// validateAttachments defaults an instance's networks (the project's
// default network with the default group; an attachment without groups
// gets default) and checks that every network and group exists.
func (s *Server) validateAttachments(ctx context.Context, in *api.Instance) error {
	spec, project := &in.Spec, in.Metadata.Project
	if len(spec.Networks) == 0 {
		spec.Networks = []api.NetworkAttachment{{Network: defaultNetworkName}}
	}
	if len(spec.Networks) > maxInterfaces {
		return api.Invalid("spec.networks", fmt.Sprintf("use at most %d networks", maxInterfaces), "%d networks given", len(spec.Networks))
	}
	for i := range spec.Networks {
		a := &spec.Networks[i]
		field := fmt.Sprintf("spec.networks[%d]", i)
		if e := api.ValidateName(field+".network", a.Network); e != nil {
			return e
		}
		if slices.ContainsFunc(spec.Networks[:i], func(o api.NetworkAttachment) bool { return o.Network == a.Network }) {
			return api.Invalid(field+".network", "attach each network once", "network %q is given twice", a.Network)
		}
		err := s.store.Get(ctx, api.NetworkKind, project, a.Network, &api.Network{})
		if errors.Is(err, store.ErrNotFound) {
			return api.Invalid(field+".network", "create the network first, or list them with GET /v1/projects/"+project+"/networks",
				"network %q does not exist", a.Network)
		}
		if err != nil {
			return fmt.Errorf("get network: %w", err)
		}
		if len(a.SecurityGroups) == 0 {
			a.SecurityGroups = []string{defaultGroupName}
		}
		if len(a.SecurityGroups) > maxGroupsPerInterface {
			return api.Invalid(field+".securityGroups", fmt.Sprintf("use at most %d groups", maxGroupsPerInterface), "%d groups given", len(a.SecurityGroups))
		}
		for j, g := range a.SecurityGroups {
			gfield := fmt.Sprintf("%s.securityGroups[%d]", field, j)
			if e := api.ValidateName(gfield, g); e != nil {
				return e
			}
			if slices.Contains(a.SecurityGroups[:j], g) {
				return api.Invalid(gfield, "name each group once", "security group %q is given twice", g)
			}
			err := s.store.Get(ctx, api.SecurityGroupKind, project, g, &api.SecurityGroup{})
			if errors.Is(err, store.ErrNotFound) {
				return api.Invalid(gfield, "create the security group first", "security group %q does not exist", g)
			}
			if err != nil {
				return fmt.Errorf("get security group: %w", err)
			}
		}
	}
	return nil
}

// ifaceAlloc is the address search of one interface.
type ifaceAlloc struct {
	net         *api.Network
	prefix      netip.Prefix
	gateway     netip.Addr
	claimPrefix string
	used        map[string]bool
	ip          netip.Addr
}

// createInstance stores a new instance with an address on each of its
// networks: the lowest free host address, claimed in the create's
// transaction. An address taken meanwhile makes it try the next one.
func (s *Server) createInstance(ctx context.Context, in *api.Instance, opts store.CreateOptions) (bool, error) {
	allocs := make([]*ifaceAlloc, len(in.Spec.Networks))
	for i, a := range in.Spec.Networks {
		var n api.Network
		if err := s.store.Get(ctx, api.NetworkKind, in.Metadata.Project, a.Network, &n); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return false, api.Invalid(fmt.Sprintf("spec.networks[%d].network", i), "create the network first", "network %q does not exist", a.Network)
			}
			return false, fmt.Errorf("get network %s: %w", a.Network, err)
		}
		p, err1 := netip.ParsePrefix(n.Spec.CIDR)
		gw, err2 := netip.ParseAddr(n.Spec.Gateway)
		if err1 != nil || err2 != nil {
			return false, fmt.Errorf("network %s/%s has a bad cidr %q or gateway %q", n.Metadata.Project, n.Metadata.Name, n.Spec.CIDR, n.Spec.Gateway)
		}
		prefix := ipClaimPrefix(n.Metadata.UID)
		claims, err := s.store.ListClaims(ctx, prefix)
		if err != nil {
			return false, fmt.Errorf("list addresses of network %s: %w", a.Network, err)
		}
		allocs[i] = &ifaceAlloc{net: &n, prefix: p, gateway: gw, claimPrefix: prefix, used: usedAddrs(claims, prefix)}
	}
	probing := -1
	for range maxClaimAttempts {
		opts.Claims = opts.Claims[:0]
		in.Status.Interfaces = in.Status.Interfaces[:0]
		for i, al := range allocs {
			first, last := al.prefix.Addr().Next(), broadcast(al.prefix).Prev()
			ip, ok := lowestFree(first, last, al.used, al.gateway)
			if !ok && opts.IdempotencyKey != "" && probing < 0 {
				ip, ok = lowestUsed(al.used)
				probing = i
			}
			if !ok {
				return false, noFreeAddress(fmt.Sprintf("spec.networks[%d].network", i), fmt.Sprintf("network %s", al.net.Metadata.Name), len(al.used))
			}
			al.ip = ip
			opts.Claims = append(opts.Claims, al.claimPrefix+ip.String())
			in.Status.Interfaces = append(in.Status.Interfaces, api.Interface{Network: al.net.Metadata.Name, MAC: macOf(ip), IP: ip.String()})
		}
		existed, err := s.store.Create(ctx, in, opts)
		var ce *store.ClaimError
		if !errors.As(err, &ce) {
			return existed, err
		}
		i := slices.Index(opts.Claims, ce.Claim)
		if i < 0 {
			return false, err
		}
		if i == probing {
			al := allocs[i]
			return false, noFreeAddress(fmt.Sprintf("spec.networks[%d].network", i), fmt.Sprintf("network %s", al.net.Metadata.Name), len(al.used))
		}
		allocs[i].used[allocs[i].ip.String()] = true
	}
	return false, api.Conflict("addresses are being allocated too fast; retry")
}
