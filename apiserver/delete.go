package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// inUse answers 409 naming (some of) the objects that hold on to one.
func inUse(what string, users []api.Object) error {
	names := make([]string, 0, 10)
	for i, o := range users {
		if i == 10 {
			names = append(names, fmt.Sprintf("and %d more", len(users)-10))
			break
		}
		m := o.Meta()
		n := m.Name
		if m.Project != "" {
			n = m.Project + "/" + n
		}
		names = append(names, o.GetKind().Name+" "+n)
	}
	return &api.Error{Status: http.StatusConflict, Code: api.CodeInUse,
		Message: fmt.Sprintf("%s is in use by %s", what, strings.Join(names, ", ")),
		Hint:    "delete those first"}
}

// beforeDelete refuses deleting objects others depend on and removes what
// depends on the object alone (tokens of users and hosts). Every step can
// be repeated after a crash.
func (s *Server) beforeDelete(r *http.Request, obj api.Object) error {
	ctx := r.Context()
	m := obj.Meta()
	list := func(k *api.Kind, project string, limit int, f func(api.Object) bool) ([]api.Object, error) {
		objs, _, err := s.store.List(ctx, k, project, store.ListOptions{Filter: f, Limit: limit})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", k.Plural, err)
		}
		return objs, nil
	}
	switch obj.(type) {
	case *api.Image:
		ref := m.Project + "/" + m.Name
		users, err := list(api.InstanceKind, "", 0, func(o api.Object) bool { return o.(*api.Instance).Spec.Image == ref })
		if err != nil {
			return err
		}
		groups, err := list(api.InstanceGroupKind, "", 0, func(o api.Object) bool { return o.(*api.InstanceGroup).Spec.Template.Image == ref })
		if err != nil {
			return err
		}
		users = append(users, groups...)
		if len(users) > 0 {
			return inUse("image "+ref, users)
		}
	case *api.Flavor:
		users, err := list(api.InstanceKind, "", 0, func(o api.Object) bool { return o.(*api.Instance).Spec.Flavor == m.Name })
		if err != nil {
			return err
		}
		groups, err := list(api.InstanceGroupKind, "", 0, func(o api.Object) bool { return o.(*api.InstanceGroup).Spec.Template.Flavor == m.Name })
		if err != nil {
			return err
		}
		users = append(users, groups...)
		if len(users) > 0 {
			return inUse("flavor "+m.Name, users)
		}
	case *api.Project:
		for _, k := range []*api.Kind{api.InstanceKind, api.InstanceGroupKind, api.ImageKind, api.FloatingIPKind} {
			objs, err := list(k, m.Name, 10, nil)
			if err != nil {
				return err
			}
			if len(objs) > 0 {
				return inUse("project "+m.Name, objs)
			}
		}
		// Key pairs, networks and groups hold nothing once the instances
		// are gone: they go with the project (groups before networks, as
		// they name each other only within the project).
		for _, k := range []*api.Kind{api.KeyPairKind, api.SecurityGroupKind, api.NetworkKind} {
			objs, err := list(k, m.Name, 0, nil)
			if err != nil {
				return err
			}
			for _, o := range objs {
				if err := s.store.Delete(ctx, k, m.Name, o.Meta().Name, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("delete %s %s/%s: %w", k, m.Name, o.Meta().Name, err)
				}
			}
		}
	case *api.Network:
		users, err := s.networkUsers(ctx, obj.(*api.Network))
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return inUse("network "+m.Name, users)
		}
	case *api.SecurityGroup:
		users, err := s.groupUsers(ctx, obj.(*api.SecurityGroup))
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return inUse("security group "+m.Name, users)
		}
	case *api.KeyPair:
		// Instances hold a copy of the public key; a group's template
		// names the key pair for the members it has yet to make.
		users, err := s.templateUsers(ctx, m.Project, func(t *api.InstanceTemplate) bool { return t.KeyName == m.Name })
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return inUse("key pair "+m.Name, users)
		}
	case *api.FloatingIPPool:
		users, err := s.poolUsers(ctx, m.Name)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return inUse("pool "+m.Name, users)
		}
	case *api.Host:
		users, err := list(api.InstanceKind, "", 0, func(o api.Object) bool { return o.(*api.Instance).Status.Host == m.Name })
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return inUse("host "+m.Name, users)
		}
		if err := s.deleteTokens(r, func(t *api.Token) bool { return t.Spec.Host == m.Name }); err != nil {
			return err
		}
		if err := s.store.Presence().Remove(ctx, m.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("remove presence of %s: %w", m.Name, err)
		}
	case *api.User:
		return s.deleteTokens(r, func(t *api.Token) bool { return t.Spec.User == m.Name })
	}
	return nil
}

// deleteTokens deletes the tokens match selects.
func (s *Server) deleteTokens(r *http.Request, match func(*api.Token) bool) error {
	toks, _, err := s.store.List(r.Context(), api.TokenKind, "", store.ListOptions{Filter: func(o api.Object) bool { return match(o.(*api.Token)) }})
	if err != nil {
		return fmt.Errorf("list tokens: %w", err)
	}
	for _, t := range toks {
		name := t.Meta().Name
		if err := s.store.Delete(r.Context(), api.TokenKind, "", name, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("delete token %s: %w", name, err)
		}
		s.authn.Forget(name)
	}
	return nil
}
