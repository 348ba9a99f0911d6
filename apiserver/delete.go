package apiserver

import (
	"context"
	"errors"
	"fmt"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// What may be deleted is admission's to say (admission.BeforeDelete);
// the credentials of users and hosts, which only the API server knows
// about, go here. Every step can be repeated after a crash.

// beforeDelete is the beforeDelete hook of the kinds whose deletion
// admission checks.
func beforeDelete(s *Server, ctx context.Context, st store.Interface, obj api.Object) error {
	return s.adm.BeforeDelete(ctx, st, obj)
}

// beforeDeleteHost refuses deleting a host instances are placed on, and
// removes its credentials and presence.
func beforeDeleteHost(s *Server, ctx context.Context, st store.Interface, obj api.Object) error {
	if err := s.adm.BeforeDelete(ctx, st, obj); err != nil {
		return err
	}
	name := obj.Meta().Name
	if err := s.deleteTokens(ctx, func(t *api.Token) bool { return t.Spec.Host == name }); err != nil {
		return err
	}
	if err := s.store.Presence().Remove(ctx, name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("remove presence of %s: %w", name, err)
	}
	return nil
}

// beforeDeleteUser removes the user's tokens and access keys.
func beforeDeleteUser(s *Server, ctx context.Context, _ store.Interface, obj api.Object) error {
	name := obj.Meta().Name
	if err := s.deleteTokens(ctx, func(t *api.Token) bool { return t.Spec.User == name }); err != nil {
		return err
	}
	keys, _, err := s.store.List(ctx, api.AccessKeyKind, "", store.ListOptions{Filter: ownedBy(name)})
	if err != nil {
		return fmt.Errorf("list access keys: %w", err)
	}
	for _, k := range keys {
		if err := s.store.Delete(ctx, api.AccessKeyKind, "", k.Meta().Name, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("delete access key %s: %w", k.Meta().Name, err)
		}
		s.credentialsChanged(k, true)
	}
	return nil
}

// deleteTokens deletes the tokens match selects.
func (s *Server) deleteTokens(ctx context.Context, match func(*api.Token) bool) error {
	toks, _, err := s.store.List(ctx, api.TokenKind, "", store.ListOptions{Filter: func(o api.Object) bool { return match(o.(*api.Token)) }})
	if err != nil {
		return fmt.Errorf("list tokens: %w", err)
	}
	for _, t := range toks {
		name := t.Meta().Name
		if err := s.store.Delete(ctx, api.TokenKind, "", name, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("delete token %s: %w", name, err)
		}
		s.authn.Forget(name)
	}
	return nil
}
