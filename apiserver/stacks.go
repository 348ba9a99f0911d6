package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/stack"
	"github.com/ouroboros-cloud/ouro/store"
)

// Stacks are checked with the static checks of package stack (the CLI
// makes the same before sending), with the project's existing objects as
// targets of references. The server sets spec.appliedBy to the caller of
// every create and update: the stack controller acts with that user's
// rights. A stack is created with FinalizerStack, so that its delete
// marks it and the controller deletes what it owns before it goes.

// stackHooks are the hooks of the Stack kind.
var stackHooks = kindHooks{
	create: func(s *Server, ctx context.Context, id *auth.Identity, o api.Object) error {
		st := o.(*api.Stack)
		st.Spec.AppliedBy = id.User
		if err := s.validateStack(ctx, st); err != nil {
			return err
		}
		if !slices.Contains(st.Metadata.Finalizers, api.FinalizerStack) {
			st.Metadata.Finalizers = append(st.Metadata.Finalizers, api.FinalizerStack)
		}
		return nil
	},
	update: func(s *Server, ctx context.Context, id *auth.Identity, old, o api.Object) error {
		st := o.(*api.Stack)
		if id.IsSystem() {
			st.Spec.AppliedBy = old.(*api.Stack).Spec.AppliedBy
		} else {
			st.Spec.AppliedBy = id.User
		}
		if st.Metadata.DeletionTimestamp != nil {
			return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
				Message: fmt.Sprintf("stack %q is being deleted", st.Metadata.Name)}
		}
		return s.validateStack(ctx, st)
	},
	status: func(id *auth.Identity, _, o api.Object) error {
		return validateStackStatus(id, o.(*api.Stack))
	},
	remove: removeStack,
}

// validateStack makes the static checks of a stack's spec; references may
// name the project's existing objects.
func (s *Server) validateStack(ctx context.Context, st *api.Stack) error {
	switch st.Spec.Drift {
	case "", api.DriftCorrect, api.DriftReport:
	default:
		return api.Invalid("spec.drift", "use correct or report", "drift %q is not valid", truncate(st.Spec.Drift, 80))
	}
	project := st.Metadata.Project
	var lookupErr error
	exists := func(kind, name string) bool {
		k := stack.KindOf(kind)
		if k == nil {
			return false
		}
		p := project
		if !k.Namespaced {
			p = ""
		}
		err := s.store.Get(ctx, k, p, name, k.New())
		if err != nil && !errors.Is(err, store.ErrNotFound) && lookupErr == nil {
			lookupErr = fmt.Errorf("get %s %s: %w", k, name, err)
		}
		return err == nil
	}
	err := stack.Check(st.Spec, exists)
	if lookupErr != nil {
		return lookupErr
	}
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) {
			return err
		}
		return api.Invalid("spec.resources", "fix the stack's files", "%s", truncate(err.Error(), 4000))
	}
	return nil
}

// validateStackStatus lets only the server's controllers write a stack's
// status.
func validateStackStatus(id *auth.Identity, st *api.Stack) error {
	if !id.IsSystem() {
		return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden,
			Message: fmt.Sprintf("%s may not write the status of a stack", id),
			Hint:    "the stack controller writes it"}
	}
	switch st.Status.Phase {
	case "", api.StackApplying, api.StackApplied, api.StackFailed, api.StackDeleting:
		return nil
	}
	return api.Invalid("status.phase", "use Applying, Applied, Failed or Deleting", "phase %q is not valid", truncate(st.Status.Phase, 80))
}

// removeStack deletes a stack that holds no finalizer (200), or marks it
// deleted (202): the stack controller deletes what it owns, then removes
// its finalizer and the stack.
func removeStack(_ *Server, ctx context.Context, st store.Interface, obj api.Object, rv string) (int, api.Object, error) {
	cur := obj.(*api.Stack)
	for range maxConflictRetries {
		m := &cur.Metadata
		var err error
		if len(m.Finalizers) == 0 {
			err = st.Delete(ctx, api.StackKind, m.Project, m.Name, m.ResourceVersion)
			if err == nil {
				return http.StatusOK, cur, nil
			}
		} else {
			if m.DeletionTimestamp != nil {
				return http.StatusAccepted, cur, nil
			}
			now := time.Now().UTC()
			m.DeletionTimestamp = &now
			if err = st.Update(ctx, cur); err == nil {
				return http.StatusAccepted, cur, nil
			}
		}
		if !errors.Is(err, store.ErrConflict) || rv != "" {
			return 0, nil, fmt.Errorf("delete stack %s: %w", m.Name, err)
		}
		next := &api.Stack{}
		if err := st.Get(ctx, api.StackKind, m.Project, m.Name, next); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return 0, nil, api.NotFound(api.StackKind.Name, m.Name)
			}
			return 0, nil, fmt.Errorf("get stack %s/%s: %w", m.Project, m.Name, err)
		}
		cur = next
	}
	return 0, nil, api.Conflict("stack %q changes too fast", cur.Metadata.Name)
}
