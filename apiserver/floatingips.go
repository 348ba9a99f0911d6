package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ouroboros-cloud/ouro/admission"
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
func validateFloatingIPCreate(ctx context.Context, st store.Interface, f *api.FloatingIP) error {
	if f.Spec.Pool == "" {
		pools, _, err := st.List(ctx, api.FloatingIPPoolKind, "", store.ListOptions{})
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
		err := st.Get(ctx, api.FloatingIPPoolKind, "", f.Spec.Pool, &api.FloatingIPPool{})
		if errors.Is(err, store.ErrNotFound) {
			return api.Invalid("spec.pool", "list the pools with GET /v1/floatingippools", "pool %q does not exist", f.Spec.Pool)
		}
		if err != nil {
			return fmt.Errorf("get pool: %w", err)
		}
	}
	f.Status = api.FloatingIPStatus{}
	return checkAssociation(ctx, st, f.Metadata.Project, f.Spec.Instance)
}

// checkAssociation checks that instance (if not empty) exists in project
// and has an interface to send the floating IP's traffic to.
func checkAssociation(ctx context.Context, st store.Interface, project, instance string) error {
	if instance == "" {
		return nil
	}
	if e := api.ValidateName("spec.instance", instance); e != nil {
		return e
	}
	var in api.Instance
	err := st.Get(ctx, api.InstanceKind, project, instance, &in)
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
func validateFloatingIPUpdate(ctx context.Context, st store.Interface, old, f *api.FloatingIP) error {
	if f.Spec.Pool != old.Spec.Pool {
		return admission.Immutable("spec.pool")
	}
	if f.Spec.Instance != old.Spec.Instance {
		f.Status.Host, f.Status.InstanceIP = "", ""
		return checkAssociation(ctx, st, f.Metadata.Project, f.Spec.Instance)
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
			if err := validateFloatingIPUpdate(r.Context(), s.store, old, f); err != nil {
				if e, ok := err.(*api.Error); ok && e.Field == "spec.instance" {
					e.Field = "instance"
				}
				return err
			}
			f.Metadata.Generation++
			err = s.addrs.UpdateFloatingIP(r.Context(), s.store, old, f)
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
