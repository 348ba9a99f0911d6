package ipam

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// Config configures an Allocator.
type Config struct {
	// Store is read for networks, pools and the claims taken so far.
	Store store.Interface
	// Offset picks where the search for a free instance address starts
	// among n addresses; the default is random. LowestFirst hands out the
	// lowest free address first (tests).
	Offset func(n uint32) uint32
}

// Allocator picks addresses and VNIs and claims them as their holders are
// created. It keeps no state: the claims are in the store.
type Allocator struct {
	st     store.Interface
	offset func(n uint32) uint32
}

// New returns an Allocator over cfg.Store.
func New(cfg Config) *Allocator {
	if cfg.Offset == nil {
		cfg.Offset = randomOffset
	}
	return &Allocator{st: cfg.Store, offset: cfg.Offset}
}

// LowestFirst is an Offset that starts every search at the network's
// first address.
func LowestFirst(uint32) uint32 { return 0 }

// randomOffset picks where an address search starts among n addresses.
func randomOffset(n uint32) uint32 {
	if n == 0 {
		return 0
	}
	return rand.Uint32N(n)
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

// first and last return the range of host addresses of the network.
func (al *ifaceAlloc) first() netip.Addr { return al.prefix.Addr().Next() }
func (al *ifaceAlloc) last() netip.Addr  { return broadcast(al.prefix).Prev() }

// blindAttempts is how many addresses a create tries on a network
// before it reads the network's claims: in a network with room, a random
// address is almost always free, and reading every claim would make each
// create cost as much as the network is full.
const blindAttempts = 4

// CreateInstance stores a new instance with an address on each network
// of spec.networks, and sets status.interfaces to them: the address the
// attachment asks for, else a free host address, claimed in the create's
// transaction. The search starts at a place in the network chosen by the
// Offset (random by default), so that concurrent creates rarely want the
// same address. The first tries are blind; after a few taken addresses on
// a network, the network's claims are read and only free addresses are
// tried, for as long as free addresses remain and ctx lasts.
//
// The instance is written with st: the plain store for API requests, a
// leader-guarded store for controllers.
func (a *Allocator) CreateInstance(ctx context.Context, st store.Interface, in *api.Instance, opts store.CreateOptions) (bool, error) {
	allocs := make([]*ifaceAlloc, len(in.Spec.Networks))
	for i, att := range in.Spec.Networks {
		var n api.Network
		if err := a.st.Get(ctx, api.NetworkKind, in.Metadata.Project, att.Network, &n); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return false, api.Invalid(fmt.Sprintf("spec.networks[%d].network", i), "create the network first", "network %q does not exist", att.Network)
			}
			return false, fmt.Errorf("get network %s: %w", att.Network, err)
		}
		p, err1 := netip.ParsePrefix(n.Spec.CIDR)
		gw, err2 := netip.ParseAddr(n.Spec.Gateway)
		if err1 != nil || err2 != nil {
			return false, fmt.Errorf("network %s/%s has a bad cidr %q or gateway %q", n.Metadata.Project, n.Metadata.Name, n.Spec.CIDR, n.Spec.Gateway)
		}
		al := &ifaceAlloc{net: &n, prefix: p, gateway: gw, claimPrefix: ipClaimPrefix(n.Metadata.UID), used: map[string]bool{}}
		if att.IP != "" {
			fixed, err := fixedAddr(fmt.Sprintf("spec.networks[%d].ip", i), att.IP, &n, p, gw)
			if err != nil {
				return false, err
			}
			al.fixed = fixed
		}
		allocs[i] = al
	}
	probing := -1
	// Claims the caller passed (volumes) are kept ahead of the addresses.
	base := opts.Claims
	// Every taken claim marks one more address used, and each network's
	// claims are read at most once, so the loop ends.
	for {
		if err := ctx.Err(); err != nil {
			return false, fmt.Errorf("allocate addresses: %w", err)
		}
		opts.Claims = append(opts.Claims[:0:0], base...)
		in.Status.Interfaces = in.Status.Interfaces[:0]
		for i, al := range allocs {
			if al.fixed.IsValid() {
				al.ip = al.fixed
				opts.Claims = append(opts.Claims, al.claimPrefix+al.fixed.String())
				in.Status.Interfaces = append(in.Status.Interfaces, api.Interface{Network: al.net.Metadata.Name, MAC: macOf(al.fixed), IP: al.fixed.String()})
				continue
			}
			first, last := al.first(), al.last()
			ip, ok := freeFrom(first, last, a.offset(uint32(hostCount(first, last))), al.used, al.gateway)
			if !ok && !al.listed {
				if err := a.readClaims(ctx, al); err != nil {
					return false, err
				}
				ip, ok = freeFrom(first, last, a.offset(uint32(hostCount(first, last))), al.used, al.gateway)
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
		i := slices.Index(opts.Claims[len(base):], ce.Claim)
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
			if err := a.readClaims(ctx, al); err != nil {
				return false, err
			}
		}
	}
}

// fixedAddr checks an address asked for on network n (prefix p, gateway
// gw): an IPv4 host address of the network other than the gateway.
func fixedAddr(field, s string, n *api.Network, p netip.Prefix, gw netip.Addr) (netip.Addr, error) {
	hint := fmt.Sprintf("give a free address of network %s (%s) other than its gateway %s, or leave it out for a free one", n.Metadata.Name, p, gw)
	ip, err := ParseAddr4(field, hint, s)
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

// readClaims adds every address claimed on al's network to al.used.
func (a *Allocator) readClaims(ctx context.Context, al *ifaceAlloc) error {
	claims, err := a.st.ListClaims(ctx, al.claimPrefix)
	if err != nil {
		return fmt.Errorf("list addresses of network %s: %w", al.net.Metadata.Name, err)
	}
	for addr := range usedAddrs(claims, al.claimPrefix) {
		al.used[addr] = true
	}
	al.listed = true
	return nil
}
