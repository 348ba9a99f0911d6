package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// maxConflictRetries bounds read-modify-write loops.
const maxConflictRetries = 16

// mutate reads an object, lets fn change it and writes it back, again from
// the read while the write conflicts. fn returns false if nothing changed.
func (s *Server) mutate(r *http.Request, k *api.Kind, project, name string, fn func(api.Object) (bool, error)) (api.Object, error) {
	for range maxConflictRetries {
		obj, err := s.getObject(r, k, project, name)
		if err != nil {
			return nil, err
		}
		changed, err := fn(obj)
		if err != nil || !changed {
			return obj, err
		}
		err = s.store.Update(r.Context(), obj)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("update %s %s: %w", k, name, err)
		}
		return obj, nil
	}
	return nil, api.Conflict("%s %q changes too fast", k, name)
}

// instanceAction serves start, stop and reboot.
func (s *Server) instanceAction(verb auth.Verb) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
		project, name, err := pathNames(api.InstanceKind, r)
		if err != nil {
			return err
		}
		in, err := s.InstanceAction(r.Context(), id, verb, project, name)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, prepareOut(in))
		return nil
	}
}

// InstanceAction starts (auth.VerbStart), stops or reboots an instance
// for id, as POST .../start, .../stop and .../reboot do, and returns the
// instance as written (or as it was, when nothing had to change).
func (s *Server) InstanceAction(ctx context.Context, id *auth.Identity, verb auth.Verb, project, name string) (*api.Instance, error) {
	cur, err := s.readObject(ctx, api.InstanceKind, project, name)
	if err != nil {
		return nil, err
	}
	if err := authorize(id, objectAttrs(verb, cur), "Instance", name); err != nil {
		return nil, err
	}
	for range maxConflictRetries {
		o, err := s.readObject(ctx, api.InstanceKind, project, name)
		if err != nil {
			return nil, err
		}
		in := o.(*api.Instance)
		changed, err := powerChange(in, verb)
		if err != nil || !changed {
			return in, err
		}
		in.Metadata.Generation++
		err = s.store.Update(ctx, in)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("update instance %s: %w", name, err)
		}
		return in, nil
	}
	return nil, api.Conflict("instance %q changes too fast", name)
}

// powerChange applies a start, stop or reboot to in's spec; false when
// nothing has to change.
func powerChange(in *api.Instance, verb auth.Verb) (bool, error) {
	name := in.Metadata.Name
	if in.Metadata.DeletionTimestamp != nil {
		return false, &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
			Message: fmt.Sprintf("instance %q is being deleted", name)}
	}
	switch verb {
	case auth.VerbStart:
		if in.WantsRunning() {
			if in.Status.Phase != api.PhaseStopped && in.Status.Phase != api.PhaseFailed {
				return false, nil
			}
			in.Spec.RebootRequests++
		}
		in.Spec.PowerState = api.PowerOn
	case auth.VerbStop:
		if in.Spec.PowerState == api.PowerOff {
			return false, nil
		}
		in.Spec.PowerState = api.PowerOff
	case auth.VerbReboot:
		if !in.WantsRunning() {
			return false, &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
				Message: fmt.Sprintf("instance %q is not running", name), Hint: "start it instead"}
		}
		in.Spec.RebootRequests++
	}
	return true, nil
}

// deleteInstance removes an instance that was never placed (200), or marks
// a placed one for the agent to tear down (202). The removal is
// conditional on the version read, so an instance placed meanwhile is
// marked instead. It returns the status to answer with and the instance
// as deleted or marked.
func deleteInstance(_ *Server, ctx context.Context, st store.Interface, obj api.Object, rv string) (int, api.Object, error) {
	in := obj.(*api.Instance)
	for range maxConflictRetries {
		m := &in.Metadata
		if in.Status.Host == "" {
			err := st.Delete(ctx, api.InstanceKind, m.Project, m.Name, m.ResourceVersion)
			if err == nil {
				return http.StatusOK, in, nil
			}
			if !errors.Is(err, store.ErrConflict) || rv != "" {
				return 0, nil, fmt.Errorf("delete instance %s: %w", m.Name, err)
			}
		} else {
			if m.DeletionTimestamp != nil && (in.Status.Phase == api.PhaseTerminating || in.Status.Phase == api.PhaseTerminated) {
				return http.StatusAccepted, in, nil
			}
			if m.DeletionTimestamp == nil {
				now := time.Now().UTC()
				m.DeletionTimestamp = &now
			}
			if in.Status.Phase != api.PhaseTerminated {
				in.Status.Phase = api.PhaseTerminating
			}
			err := st.Update(ctx, in)
			if err == nil {
				return http.StatusAccepted, in, nil
			}
			if !errors.Is(err, store.ErrConflict) || rv != "" {
				return 0, nil, fmt.Errorf("mark instance %s for deletion: %w", m.Name, err)
			}
		}
		var next api.Instance
		if err := st.Get(ctx, api.InstanceKind, m.Project, m.Name, &next); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return 0, nil, api.NotFound(api.InstanceKind.Name, m.Name)
			}
			return 0, nil, fmt.Errorf("get instance %s/%s: %w", m.Project, m.Name, err)
		}
		in = &next
	}
	return 0, nil, api.Conflict("instance %q changes too fast", in.Metadata.Name)
}
