package apiserver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
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
		if a.IP != "" {
			if _, err := parseAddr4(field+".ip", "give an IPv4 address of the network, or leave it out for a free one", a.IP); err != nil {
				return err
			}
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
	used        map[string]bool // addresses known to be taken
	listed      bool            // used holds every claim of the network
	collisions  int
	ip          netip.Addr
	// fixed is the address spec.networks[i].ip asks for, if any.
	fixed netip.Addr
}

// blindAttempts is how many addresses a create tries on a network
// before it reads the network's claims: in a network with room, a random
// address is almost always free, and reading every claim would make each
// create cost as much as the network is full.
const blindAttempts = 4

// createInstance stores a new instance with an address on each of its
// networks: a free host address, claimed in the create's transaction.
// The search starts at a random place in the network (s.addrOffset), so
// that concurrent creates rarely want the same address. The first tries
// are blind; after blindAttempts taken addresses on a network, the
// network's claims are read and only free addresses are tried, for as
// long as free addresses remain and the request lasts.
//
// The instance is written with st: s.store for API requests, a
// leader-guarded store for controllers (CreateInstance).
func (s *Server) createInstance(ctx context.Context, st store.Interface, in *api.Instance, opts store.CreateOptions) (bool, error) {
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
		al := &ifaceAlloc{net: &n, prefix: p, gateway: gw, claimPrefix: ipClaimPrefix(n.Metadata.UID), used: map[string]bool{}}
		if a.IP != "" {
			fixed, err := fixedAddr(fmt.Sprintf("spec.networks[%d].ip", i), a.IP, &n, p, gw)
			if err != nil {
				return false, err
			}
			al.fixed = fixed
		}
		allocs[i] = al
	}
	probing := -1
	// Every taken claim marks one more address used, and each network's
	// claims are read at most once, so the loop ends.
	for {
		if err := ctx.Err(); err != nil {
			return false, fmt.Errorf("allocate addresses: %w", err)
		}
		opts.Claims = opts.Claims[:0]
		in.Status.Interfaces = in.Status.Interfaces[:0]
		for i, al := range allocs {
			if al.fixed.IsValid() {
				al.ip = al.fixed
				opts.Claims = append(opts.Claims, al.claimPrefix+al.fixed.String())
				in.Status.Interfaces = append(in.Status.Interfaces, api.Interface{Network: al.net.Metadata.Name, MAC: macOf(al.fixed), IP: al.fixed.String()})
				continue
			}
			first, last := al.first(), al.last()
			ip, ok := freeFrom(first, last, s.addrOffset(uint32(hostCount(first, last))), al.used, al.gateway)
			if !ok && !al.listed {
				if err := s.readClaims(ctx, al); err != nil {
					return false, err
				}
				ip, ok = freeFrom(first, last, s.addrOffset(uint32(hostCount(first, last))), al.used, al.gateway)
			}
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
		existed, err := st.Create(ctx, in, opts)
		var ce *store.ClaimError
		if !errors.As(err, &ce) {
			return existed, err
		}
		i := slices.Index(opts.Claims, ce.Claim)
		if i < 0 {
			return false, err
		}
		al := allocs[i]
		if al.fixed.IsValid() {
			return false, addressTaken(fmt.Sprintf("spec.networks[%d].ip", i), al, ce)
		}
		if i == probing {
			return false, noFreeAddress(fmt.Sprintf("spec.networks[%d].network", i), fmt.Sprintf("network %s", al.net.Metadata.Name), len(al.used))
		}
		al.used[al.ip.String()] = true
		if al.collisions++; al.collisions >= blindAttempts && !al.listed {
			if err := s.readClaims(ctx, al); err != nil {
				return false, err
			}
		}
	}
}

// fixedAddr checks an address asked for on network n (prefix p, gateway
// gw): an IPv4 host address of the network other than the gateway.
func fixedAddr(field, s string, n *api.Network, p netip.Prefix, gw netip.Addr) (netip.Addr, error) {
	hint := fmt.Sprintf("give a free address of network %s (%s) other than its gateway %s, or leave it out for a free one", n.Metadata.Name, p, gw)
	ip, err := parseAddr4(field, hint, s)
	if err != nil {
		return netip.Addr{}, err
	}
	switch {
	case !p.Contains(ip):
		return netip.Addr{}, api.Invalid(field, hint, "%s is outside network %s (%s)", ip, n.Metadata.Name, p)
	case ip == p.Masked().Addr():
		return netip.Addr{}, api.Invalid(field, hint, "%s is the network address of %s", ip, p)
	case ip == broadcast(p):
		return netip.Addr{}, api.Invalid(field, hint, "%s is the broadcast address of %s", ip, p)
	case ip == gw:
		return netip.Addr{}, api.Invalid(field, hint, "%s is the gateway of network %s", ip, n.Metadata.Name)
	}
	return ip, nil
}

// addressTaken answers 409 for an address asked for that another object
// holds.
func addressTaken(field string, al *ifaceAlloc, ce *store.ClaimError) error {
	msg := fmt.Sprintf("address %s of network %s is in use", al.fixed, al.net.Metadata.Name)
	if h := ce.HolderName(); h != "" {
		msg += " by " + h
	}
	return &api.Error{Status: http.StatusConflict, Code: codeAddressInUse, Field: field, Message: msg,
		Hint: "ask for another address, or leave ip out for a free one"}
}

// readClaims adds every address claimed on al's network to al.used.
func (s *Server) readClaims(ctx context.Context, al *ifaceAlloc) error {
	claims, err := s.store.ListClaims(ctx, al.claimPrefix)
	if err != nil {
		return fmt.Errorf("list addresses of network %s: %w", al.net.Metadata.Name, err)
	}
	for a := range usedAddrs(claims, al.claimPrefix) {
		al.used[a] = true
	}
	al.listed = true
	return nil
}

// first and last return the range of host addresses of the network.
func (al *ifaceAlloc) first() netip.Addr { return al.prefix.Addr().Next() }
func (al *ifaceAlloc) last() netip.Addr  { return broadcast(al.prefix).Prev() }

// randomOffset picks where an address search starts among n addresses.
func randomOffset(n uint32) uint32 {
	if n == 0 {
		return 0
	}
	return rand.Uint32N(n)
}
