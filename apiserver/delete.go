package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// The beforeDelete hooks (hooks.go) refuse deleting objects others depend
// on, and remove what depends on the object alone (tokens of users and
// hosts). Every step can be repeated after a crash.

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

// refuseUsed answers inUse for what when users found any.
func refuseUsed(what string, users []api.Object, err error) error {
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return inUse(what, users)
	}
	return nil
}

// list lists the objects of kind k in project that f keeps, at most limit
// (0: all).
func list(ctx context.Context, st store.Interface, k *api.Kind, project string, limit int, f func(api.Object) bool) ([]api.Object, error) {
	objs, _, err := st.List(ctx, k, project, store.ListOptions{Filter: f, Limit: limit})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", k.Plural, err)
	}
	return objs, nil
}

// specUsers lists the instances and the instance groups (in every
// project) whose spec or template uses something.
func specUsers(ctx context.Context, st store.Interface, uses func(*api.InstanceSpec) bool, usesTemplate func(*api.InstanceTemplate) bool) ([]api.Object, error) {
	users, err := list(ctx, st, api.InstanceKind, "", 0, func(o api.Object) bool { return uses(&o.(*api.Instance).Spec) })
	if err != nil {
		return nil, err
	}
	groups, err := list(ctx, st, api.InstanceGroupKind, "", 0, func(o api.Object) bool { return usesTemplate(&o.(*api.InstanceGroup).Spec.Template) })
	if err != nil {
		return nil, err
	}
	return append(users, groups...), nil
}

func beforeDeleteImage(s *Server, ctx context.Context, obj api.Object) error {
	m := obj.Meta()
	ref := m.Project + "/" + m.Name
	users, err := specUsers(ctx, s.store, func(sp *api.InstanceSpec) bool { return sp.Image == ref },
		func(t *api.InstanceTemplate) bool { return t.Image == ref })
	return refuseUsed("image "+ref, users, err)
}

func beforeDeleteFlavor(s *Server, ctx context.Context, obj api.Object) error {
	name := obj.Meta().Name
	users, err := specUsers(ctx, s.store, func(sp *api.InstanceSpec) bool { return sp.Flavor == name },
		func(t *api.InstanceTemplate) bool { return t.Flavor == name })
	return refuseUsed("flavor "+name, users, err)
}

// beforeDeleteProject refuses deleting a project that holds instances,
// groups, images or floating IPs. Key pairs, networks and security groups
// hold nothing once the instances are gone: they go with the project
// (security groups before networks, as they name each other only within
// the project).
func beforeDeleteProject(s *Server, ctx context.Context, obj api.Object) error {
	name := obj.Meta().Name
	for _, k := range []*api.Kind{api.InstanceKind, api.InstanceGroupKind, api.ImageKind, api.FloatingIPKind} {
		objs, err := list(ctx, s.store, k, name, 10, nil)
		if err := refuseUsed("project "+name, objs, err); err != nil {
			return err
		}
	}
	for _, k := range []*api.Kind{api.KeyPairKind, api.SecurityGroupKind, api.NetworkKind} {
		objs, err := list(ctx, s.store, k, name, 0, nil)
		if err != nil {
			return err
		}
		for _, o := range objs {
			if err := s.store.Delete(ctx, k, name, o.Meta().Name, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("delete %s %s/%s: %w", k, name, o.Meta().Name, err)
			}
		}
	}
	return nil
}

// beforeDeleteNetwork refuses deleting a network that instances of its
// project are attached to, or that group templates name.
func beforeDeleteNetwork(s *Server, ctx context.Context, obj api.Object) error {
	n := obj.(*api.Network)
	users, err := list(ctx, s.store, api.InstanceKind, n.Metadata.Project, 0, func(o api.Object) bool {
		in := o.(*api.Instance)
		return slices.ContainsFunc(in.Spec.Networks, func(a api.NetworkAttachment) bool { return a.Network == n.Metadata.Name }) ||
			slices.ContainsFunc(in.Status.Interfaces, func(i api.Interface) bool { return i.Network == n.Metadata.Name })
	})
	if err != nil {
		return err
	}
	groups, err := templateUsers(ctx, s.store, n.Metadata.Project, func(t *api.InstanceTemplate) bool {
		return slices.ContainsFunc(t.Networks, func(a api.NetworkAttachment) bool { return a.Network == n.Metadata.Name })
	})
	return refuseUsed("network "+n.Metadata.Name, append(users, groups...), err)
}

// beforeDeleteSecurityGroup refuses deleting a group that instances or
// group templates use or that other groups' rules name as source.
func beforeDeleteSecurityGroup(s *Server, ctx context.Context, obj api.Object) error {
	project, name := obj.Meta().Project, obj.Meta().Name
	insts, err := list(ctx, s.store, api.InstanceKind, project, 0, func(o api.Object) bool {
		return slices.ContainsFunc(o.(*api.Instance).Spec.Networks, func(a api.NetworkAttachment) bool {
			return slices.Contains(a.SecurityGroups, name)
		})
	})
	if err != nil {
		return err
	}
	groups, err := list(ctx, s.store, api.SecurityGroupKind, project, 0, func(o api.Object) bool {
		og := o.(*api.SecurityGroup)
		return og.Metadata.Name != name && slices.ContainsFunc(og.Spec.Rules, func(r api.SecurityGroupRule) bool {
			return r.SourceGroup == name
		})
	})
	if err != nil {
		return err
	}
	templates, err := templateUsers(ctx, s.store, project, func(t *api.InstanceTemplate) bool {
		return slices.ContainsFunc(t.Networks, func(a api.NetworkAttachment) bool { return slices.Contains(a.SecurityGroups, name) })
	})
	return refuseUsed("security group "+name, append(append(insts, groups...), templates...), err)
}

// beforeDeleteKeyPair refuses deleting a key pair a group's template
// names for the members it has yet to make; instances hold a copy of the
// public key.
func beforeDeleteKeyPair(s *Server, ctx context.Context, obj api.Object) error {
	m := obj.Meta()
	users, err := templateUsers(ctx, s.store, m.Project, func(t *api.InstanceTemplate) bool { return t.KeyName == m.Name })
	return refuseUsed("key pair "+m.Name, users, err)
}

// beforeDeletePool refuses deleting a pool floating IPs were allocated
// from.
func beforeDeletePool(s *Server, ctx context.Context, obj api.Object) error {
	pool := obj.Meta().Name
	allocated, err := s.addrs.PoolAddresses(ctx, pool)
	if err != nil {
		return err
	}
	var users []api.Object
	for _, holder := range allocated {
		project, name := holderName(holder)
		users = append(users, &api.FloatingIP{Metadata: api.ObjectMeta{Project: project, Name: name}})
	}
	slices.SortFunc(users, func(a, b api.Object) int {
		return strings.Compare(a.Meta().Project+"/"+a.Meta().Name, b.Meta().Project+"/"+b.Meta().Name)
	})
	return refuseUsed("pool "+pool, users, nil)
}

// beforeDeleteHost refuses deleting a host instances are placed on, and
// removes its credentials and presence.
func beforeDeleteHost(s *Server, ctx context.Context, obj api.Object) error {
	name := obj.Meta().Name
	users, err := list(ctx, s.store, api.InstanceKind, "", 0, func(o api.Object) bool { return o.(*api.Instance).Status.Host == name })
	if err := refuseUsed("host "+name, users, err); err != nil {
		return err
	}
	if err := s.deleteTokens(ctx, func(t *api.Token) bool { return t.Spec.Host == name }); err != nil {
		return err
	}
	if err := s.store.Presence().Remove(ctx, name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("remove presence of %s: %w", name, err)
	}
	return nil
}

// beforeDeleteUser removes the user's tokens.
func beforeDeleteUser(s *Server, ctx context.Context, obj api.Object) error {
	name := obj.Meta().Name
	return s.deleteTokens(ctx, func(t *api.Token) bool { return t.Spec.User == name })
}

// templateUsers lists the instance groups of a project whose template uses
// something: a group would fail to make members once it is gone.
func templateUsers(ctx context.Context, st store.Interface, project string, uses func(*api.InstanceTemplate) bool) ([]api.Object, error) {
	return list(ctx, st, api.InstanceGroupKind, project, 0, func(o api.Object) bool {
		return uses(&o.(*api.InstanceGroup).Spec.Template)
	})
}

// holderName returns the project and name of the object whose store key
// holds a claim: /ouro/v1/<plural>/[<project>/]<name>.
func holderName(holder string) (project, name string) {
	parts := strings.Split(holder, "/")
	name = parts[len(parts)-1]
	if len(parts) == 6 {
		project = parts[4]
	}
	return project, name
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
