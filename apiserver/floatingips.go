package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// associateRequest is the body of POST .../floatingips/{name}/associate.
type associateRequest struct {
	Instance string `json:"instance"`
}

// validateFloatingIPCreate resolves the pool (default: the only one) and
// checks the instance to associate, if any.
func (s *Server) validateFloatingIPCreate(ctx context.Context, f *api.FloatingIP) error {
	if f.Spec.Pool == "" {
		pools, _, err := s.store.List(ctx, api.FloatingIPPoolKind, "", store.ListOptions{})
		if err != nil {
			return fmt.Errorf("list pools: %w", err)
		}
		switch len(pools) {
		case 0:
			return api.Invalid("spec.pool", "ask a cluster admin to create a floating IP pool", "there is no floating IP pool")
		case 1:
			f.Spec.Pool = pools[0].Meta().Name
		default:
			names := make([]string, len(pools))
			for i, p := range pools {
				names[i] = p.Meta().Name
			}
			return api.Invalid("spec.pool", "name one of them", "there are several pools: %s", strings.Join(names, ", "))
		}
	} else {
		if e := api.ValidateName("spec.pool", f.Spec.Pool); e != nil {
			return e
		}
		err := s.store.Get(ctx, api.FloatingIPPoolKind, "", f.Spec.Pool, &api.FloatingIPPool{})
		if errors.Is(err, store.ErrNotFound) {
			return api.Invalid("spec.pool", "list the pools with GET /v1/floatingippools", "pool %q does not exist", f.Spec.Pool)
		}
		if err != nil {
			return fmt.Errorf("get pool: %w", err)
		}
	}
	f.Status = api.FloatingIPStatus{}
	return s.checkAssociation(ctx, f.Metadata.Project, f.Spec.Instance)
}

// checkAssociation checks that instance (if not empty) exists in project
// and has an interface to send the floating IP's traffic to.
func (s *Server) checkAssociation(ctx context.Context, project, instance string) error {
	if instance == "" {
		return nil
	}
	if e := api.ValidateName("spec.instance", instance); e != nil {
		return e
	}
	var in api.Instance
	err := s.store.Get(ctx, api.InstanceKind, project, instance, &in)
	if errors.Is(err, store.ErrNotFound) {
		return api.Invalid("spec.instance", "name an instance of this project", "instance %q does not exist", instance)
	}
	if err != nil {
		return fmt.Errorf("get instance: %w", err)
	}
	if len(in.Status.Interfaces) == 0 {
		return api.Invalid("spec.instance", "associate an instance attached to a network", "instance %q has no network interface", instance)
	}
	return nil
}

// validateFloatingIPUpdate keeps the pool and checks a new association.
func (s *Server) validateFloatingIPUpdate(ctx context.Context, old, f *api.FloatingIP) error {
	if f.Spec.Pool != old.Spec.Pool {
		return immutable("spec.pool")
	}
	if f.Spec.Instance != old.Spec.Instance {
		f.Status.Host, f.Status.InstanceIP = "", ""
		return s.checkAssociation(ctx, f.Metadata.Project, f.Spec.Instance)
	}
	return nil
}

// validateFloatingIPStatus keeps the allocated address.
func validateFloatingIPStatus(old, f *api.FloatingIP) error {
	if f.Status.Address != old.Status.Address {
		return api.Invalid("status.address", "the address is allocated at create", "field is immutable")
	}
	return nil
}

// associationTaken answers 409 for an instance that has a floating IP.
func associationTaken(instance string, ce *store.ClaimError) error {
	return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict, Field: "spec.instance",
		Message: fmt.Sprintf("instance %q already has floating IP %q", instance, ce.HolderName()),
		Hint:    "disassociate that floating IP first"}
}

// createFloatingIP stores a new floating IP with the lowest free address
// of its pool, claimed in the create's transaction together with the
// association (one floating IP per instance).
func (s *Server) createFloatingIP(ctx context.Context, f *api.FloatingIP, opts store.CreateOptions) (bool, error) {
	var pool api.FloatingIPPool
	if err := s.store.Get(ctx, api.FloatingIPPoolKind, "", f.Spec.Pool, &pool); err != nil {
		return false, fmt.Errorf("get pool %s: %w", f.Spec.Pool, err)
	}
	start, err1 := netip.ParseAddr(pool.Spec.Start)
	end, err2 := netip.ParseAddr(pool.Spec.End)
	if err1 != nil || err2 != nil {
		return false, fmt.Errorf("pool %s has a bad range %s-%s", pool.Metadata.Name, pool.Spec.Start, pool.Spec.End)
	}
	prefix := fipClaimPrefix(pool.Metadata.Name)
	claims, err := s.store.ListClaims(ctx, prefix)
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
		existed, err := s.store.Create(ctx, f, opts)
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

// updateFloatingIP stores a floating IP whose association may have
// changed, moving the association claim in the same transaction.
func (s *Server) updateFloatingIP(ctx context.Context, old, f *api.FloatingIP) error {
	var add, release []string
	if f.Spec.Instance != "" {
		add = []string{fipInstanceClaim(f.Metadata.Project, f.Spec.Instance)}
	}
	if old.Spec.Instance != "" && old.Spec.Instance != f.Spec.Instance {
		release = []string{fipInstanceClaim(old.Metadata.Project, old.Spec.Instance)}
	}
	err := s.store.UpdateClaims(ctx, f, add, release)
	var ce *store.ClaimError
	if errors.As(err, &ce) {
		return associationTaken(f.Spec.Instance, ce)
	}
	return err
}

// associate serves POST .../floatingips/{name}/associate (body
// {"instance": "x"}) and .../disassociate (no body).
func (s *Server) associate(disassociate bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
		project, name, err := pathNames(api.FloatingIPKind, r)
		if err != nil {
			return err
		}
		var req associateRequest
		if !disassociate {
			if err := decodeJSON(w, r, &req); err != nil {
				return err
			}
			if req.Instance == "" {
				return api.Invalid("instance", "name the instance to associate; POST .../disassociate to remove", "instance is required")
			}
		}
		for range maxConflictRetries {
			cur, err := s.getObject(r, api.FloatingIPKind, project, name)
			if err != nil {
				return err
			}
			if err := authorize(id, objectAttrs(auth.VerbUpdate, cur), "FloatingIP", name); err != nil {
				return err
			}
			old := cur.(*api.FloatingIP)
			if old.Spec.Instance == req.Instance {
				writeJSON(w, http.StatusOK, prepareOut(old))
				return nil
			}
			f := cloneObject(old).(*api.FloatingIP)
			f.Spec.Instance = req.Instance
			if err := s.validateFloatingIPUpdate(r.Context(), old, f); err != nil {
				if e, ok := err.(*api.Error); ok && e.Field == "spec.instance" {
					e.Field = "instance"
				}
				return err
			}
			f.Metadata.Generation++
			err = s.updateFloatingIP(r.Context(), old, f)
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			if err != nil {
				return err
			}
			writeJSON(w, http.StatusOK, prepareOut(f))
			return nil
		}
		return api.Conflict("floating IP %q changes too fast", name)
	}
}
