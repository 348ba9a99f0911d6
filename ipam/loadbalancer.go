package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// FixedAddr checks an address asked for on network n: an IPv4 host
// address of the network other than its gateway. Its errors name field.
func FixedAddr(field, s string, n *api.Network) (netip.Addr, error) {
	p, gw, err := networkRange(n)
	if err != nil {
		return netip.Addr{}, err
	}
	return fixedAddr(field, s, n, p, gw)
}

// networkRange parses a stored network's prefix and gateway.
func networkRange(n *api.Network) (netip.Prefix, netip.Addr, error) {
	p, err1 := netip.ParsePrefix(n.Spec.CIDR)
	gw, err2 := netip.ParseAddr(n.Spec.Gateway)
	if err1 != nil || err2 != nil {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("network %s/%s has a bad cidr %q or gateway %q", n.Metadata.Project, n.Metadata.Name, n.Spec.CIDR, n.Spec.Gateway)
	}
	return p, gw, nil
}

// poolAlloc is the address search of a floating IP pool.
type poolAlloc struct {
	name       string
	start, end netip.Addr
	prefix     string
	used       map[string]bool
	probing    bool
}

// CreateLoadBalancer stores a new load balancer, writing with st, with
// its addresses claimed in the create's transaction, as instances' are:
// the VIP (spec.vip, else a free host address of spec.network), one port
// address per LB host (spec.hosts, default 1) on the same network and,
// with spec.floatingIP, the lowest free address of spec.floatingIPPool.
// It sets status.networkUID, vip, portAddresses, floatingIP and
// floatingIPPool. The load balancer must have been admitted (its network
// exists, spec.floatingIPPool is resolved). Deleting the load balancer
// releases every claim in the delete's transaction.
func (a *Allocator) CreateLoadBalancer(ctx context.Context, st store.Interface, lb *api.LoadBalancer, opts store.CreateOptions) (bool, error) {
	spec := &lb.Spec
	var n api.Network
	if err := a.st.Get(ctx, api.NetworkKind, lb.Metadata.Project, spec.Network, &n); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return false, api.Invalid("spec.network", "create the network first", "network %q does not exist", spec.Network)
		}
		return false, fmt.Errorf("get network %s: %w", spec.Network, err)
	}
	p, gw, err := networkRange(&n)
	if err != nil {
		return false, err
	}
	al := &ifaceAlloc{net: &n, prefix: p, gateway: gw, claimPrefix: ipClaimPrefix(n.Metadata.UID), used: map[string]bool{}}
	if spec.VIP != "" {
		if al.fixed, err = fixedAddr("spec.vip", spec.VIP, &n, p, gw); err != nil {
			return false, err
		}
	}
	var pool *poolAlloc
	if spec.FloatingIP {
		if pool, err = a.poolAlloc(ctx, spec.FloatingIPPool); err != nil {
			return false, err
		}
	}
	want := 1 + max(spec.Hosts, 1)
	probing := -1
	base := opts.Claims
	// Every taken claim marks one more address used, and the network's
	// claims are read at most once, so the loop ends.
	for {
		if err := ctx.Err(); err != nil {
			return false, fmt.Errorf("allocate load balancer addresses: %w", err)
		}
		addrs := make([]netip.Addr, 0, want)
		skip := []netip.Addr{gw}
		if al.fixed.IsValid() {
			addrs = append(addrs, al.fixed)
			skip = append(skip, al.fixed)
		}
		first, last := al.first(), al.last()
		for len(addrs) < want {
			ip, ok := freeFrom(first, last, a.offset(uint32(hostCount(first, last))), al.used, skip...)
			if !ok && !al.listed {
				if err := a.readClaims(ctx, al); err != nil {
					return false, err
				}
				ip, ok = freeFrom(first, last, a.offset(uint32(hostCount(first, last))), al.used, skip...)
			}
			if !ok && opts.IdempotencyKey != "" && probing < 0 {
				ip, ok = lowestUsed(al.used)
				probing = len(addrs)
			}
			if !ok {
				return false, noFreeAddress("spec.network", fmt.Sprintf("network %s (a load balancer needs %d addresses)", n.Metadata.Name, want), len(al.used))
			}
			addrs = append(addrs, ip)
			skip = append(skip, ip)
		}
		claims := slices.Clone(base)
		for _, ip := range addrs {
			claims = append(claims, al.claimPrefix+ip.String())
		}
		lb.Status.NetworkUID = n.Metadata.UID
		lb.Status.VIP = addrs[0].String()
		lb.Status.DNSName = api.LoadBalancerDNSName(lb.Metadata.Name)
		lb.Status.PortAddresses = make([]string, 0, len(addrs)-1)
		for _, ip := range addrs[1:] {
			lb.Status.PortAddresses = append(lb.Status.PortAddresses, ip.String())
		}
		lb.Status.FloatingIP, lb.Status.FloatingIPPool = "", ""
		var fip netip.Addr
		if pool != nil {
			var ok bool
			fip, ok = lowestFree(pool.start, pool.end, pool.used)
			if !ok && opts.IdempotencyKey != "" && !pool.probing {
				fip, ok = lowestUsed(pool.used)
				pool.probing = true
			} else if pool.probing {
				ok = false
			}
			if !ok {
				return false, noFreeAddress("spec.floatingIPPool", "pool "+pool.name, len(pool.used))
			}
			claims = append(claims, pool.prefix+fip.String())
			lb.Status.FloatingIP, lb.Status.FloatingIPPool = fip.String(), pool.name
		}
		opts.Claims = claims
		existed, err := st.Create(ctx, lb, opts)
		var ce *store.ClaimError
		if !errors.As(err, &ce) {
			return existed, err
		}
		i := slices.Index(claims, ce.Claim) - len(base)
		switch {
		case i < 0:
			return false, err
		case i == len(addrs):
			pool.used[fip.String()] = true
		case i == 0 && al.fixed.IsValid():
			return false, addressTaken("spec.vip", al, ce)
		case i == probing:
			return false, noFreeAddress("spec.network", "network "+n.Metadata.Name, len(al.used))
		default:
			al.used[addrs[i].String()] = true
			if al.collisions++; al.collisions >= blindAttempts && !al.listed {
				if err := a.readClaims(ctx, al); err != nil {
					return false, err
				}
			}
		}
	}
}

// poolAlloc reads a floating IP pool and the addresses taken from it.
func (a *Allocator) poolAlloc(ctx context.Context, name string) (*poolAlloc, error) {
	var pool api.FloatingIPPool
	if err := a.st.Get(ctx, api.FloatingIPPoolKind, "", name, &pool); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, api.Invalid("spec.floatingIPPool", "list the pools with GET /v1/floatingippools", "pool %q does not exist", name)
		}
		return nil, fmt.Errorf("get pool %s: %w", name, err)
	}
	start, err1 := netip.ParseAddr(pool.Spec.Start)
	end, err2 := netip.ParseAddr(pool.Spec.End)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pool %s has a bad range %s-%s", pool.Metadata.Name, pool.Spec.Start, pool.Spec.End)
	}
	prefix := fipClaimPrefix(pool.Metadata.Name)
	claims, err := a.st.ListClaims(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list floating IPs of pool %s: %w", name, err)
	}
	return &poolAlloc{name: pool.Metadata.Name, start: start, end: end, prefix: prefix, used: usedAddrs(claims, prefix)}, nil
}
