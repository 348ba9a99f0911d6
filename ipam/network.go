package ipam

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

// CreateNetwork stores a new network, writing with st, with the lowest
// free VNI in status.vni, claimed in the create's transaction; a VNI taken
// meanwhile makes it try the next.
func (a *Allocator) CreateNetwork(ctx context.Context, st store.Interface, n *api.Network, opts store.CreateOptions) (bool, error) {
	claims, err := a.st.ListClaims(ctx, "vni/")
	if err != nil {
		return false, fmt.Errorf("list VNIs: %w", err)
	}
	taken := make(map[string]bool, len(claims))
	for c := range claims {
		taken[c] = true
	}
	vni := FirstVNI
	base := opts.Claims
	for range maxClaimAttempts {
		for vni <= LastVNI && taken[vniClaim(vni)] {
			vni++
		}
		if vni > LastVNI {
			return false, noFreeAddress("status.vni", "the cluster's VNI range", len(taken))
		}
		n.Status.VNI = vni
		opts.Claims = append(slices.Clone(base), vniClaim(vni))
		existed, err := st.Create(ctx, n, opts)
		var ce *store.ClaimError
		if errors.As(err, &ce) && ce.Claim == vniClaim(vni) {
			taken[ce.Claim] = true
			continue
		}
		return existed, err
	}
	return false, api.Conflict("VNIs are being allocated too fast; retry")
}

// PoolAddresses returns the addresses allocated from a floating IP pool,
// mapped to the store key of the floating IP holding each.
func (a *Allocator) PoolAddresses(ctx context.Context, pool string) (map[netip.Addr]string, error) {
	prefix := fipClaimPrefix(pool)
	claims, err := a.st.ListClaims(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list floating IPs of pool %s: %w", pool, err)
	}
	out := make(map[netip.Addr]string, len(claims))
	for c, holder := range claims {
		if addr, err := netip.ParseAddr(strings.TrimPrefix(c, prefix)); err == nil {
			out[addr] = holder
		}
	}
	return out, nil
}

// CreateFloatingIP stores a new floating IP, writing with st, with the
// lowest free address of its pool in status.address, claimed in the
// create's transaction together with the association (one floating IP per
// instance).
func (a *Allocator) CreateFloatingIP(ctx context.Context, st store.Interface, f *api.FloatingIP, opts store.CreateOptions) (bool, error) {
	var pool api.FloatingIPPool
	if err := a.st.Get(ctx, api.FloatingIPPoolKind, "", f.Spec.Pool, &pool); err != nil {
		return false, fmt.Errorf("get pool %s: %w", f.Spec.Pool, err)
	}
	start, err1 := netip.ParseAddr(pool.Spec.Start)
	end, err2 := netip.ParseAddr(pool.Spec.End)
	if err1 != nil || err2 != nil {
		return false, fmt.Errorf("pool %s has a bad range %s-%s", pool.Metadata.Name, pool.Spec.Start, pool.Spec.End)
	}
	prefix := fipClaimPrefix(pool.Metadata.Name)
	claims, err := a.st.ListClaims(ctx, prefix)
	if err != nil {
		return false, fmt.Errorf("list floating IPs of pool: %w", err)
	}
	used := usedAddrs(claims, prefix)
	probing := false
	// Every taken claim marks one more address used, so the search ends
	// within the pool's free addresses.
	attempts := max(0, hostCount(start, end)-len(used)) + 2
	for range attempts {
		if err := ctx.Err(); err != nil {
			return false, fmt.Errorf("allocate a floating IP: %w", err)
		}
		addr, ok := lowestFree(start, end, used)
		if !ok && opts.IdempotencyKey != "" && !probing {
			addr, ok = lowestUsed(used)
			probing = true
		} else if probing {
			ok = false
		}
		if !ok {
			return false, noFreeAddress("spec.pool", fmt.Sprintf("pool %s", pool.Metadata.Name), len(used))
		}
		f.Status.Address = addr.String()
		opts.Claims = []string{prefix + addr.String()}
		if f.Spec.Instance != "" {
			opts.Claims = append(opts.Claims, fipInstanceClaim(f.Metadata.Project, f.Spec.Instance))
		}
		existed, err := st.Create(ctx, f, opts)
		var ce *store.ClaimError
		switch {
		case !errors.As(err, &ce):
			return existed, err
		case ce.Claim == opts.Claims[0]:
			used[addr.String()] = true
		default:
			return false, associationTaken(f.Spec.Instance, ce)
		}
	}
	return false, api.Conflict("addresses of pool %s are being allocated too fast; retry", pool.Metadata.Name)
}

// UpdateFloatingIP stores, with st, a floating IP whose association may
// have changed from old's, moving the association claim in the same
// transaction.
func (a *Allocator) UpdateFloatingIP(ctx context.Context, st store.Interface, old, f *api.FloatingIP) error {
	var add, release []string
	if f.Spec.Instance != "" {
		add = []string{fipInstanceClaim(f.Metadata.Project, f.Spec.Instance)}
	}
	if old.Spec.Instance != "" && old.Spec.Instance != f.Spec.Instance {
		release = []string{fipInstanceClaim(old.Metadata.Project, old.Spec.Instance)}
	}
	err := st.UpdateClaims(ctx, f, add, release)
	var ce *store.ClaimError
	if errors.As(err, &ce) {
		return associationTaken(f.Spec.Instance, ce)
	}
	return err
}
