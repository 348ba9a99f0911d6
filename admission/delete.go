package admission

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

// BeforeDelete refuses deleting obj while other objects depend on it (a
// 409 naming them), and removes what depends on it alone: a project's
// key pairs, security groups and networks. Every step can be repeated
// after a crash. Kinds nothing depends on pass.
func (a *Admitter) BeforeDelete(ctx context.Context, st store.Interface, obj api.Object) error {
	if check := deleteChecks[obj.GetKind()]; check != nil {
		return check(a, ctx, st, obj)
	}
	return nil
}

// deleteChecks are the BeforeDelete steps of the kinds others depend on.
var deleteChecks = map[*api.Kind]func(*Admitter, context.Context, store.Interface, api.Object) error{
	api.ImageKind:          (*Admitter).beforeDeleteImage,
	api.FlavorKind:         (*Admitter).beforeDeleteFlavor,
	api.ProjectKind:        (*Admitter).beforeDeleteProject,
	api.NetworkKind:        (*Admitter).beforeDeleteNetwork,
	api.VPCKind:            (*Admitter).beforeDeleteVPC,
	api.SecurityGroupKind:  (*Admitter).beforeDeleteSecurityGroup,
	api.KeyPairKind:        (*Admitter).beforeDeleteKeyPair,
	api.FloatingIPPoolKind: (*Admitter).beforeDeletePool,
	api.HostKind:           (*Admitter).beforeDeleteHost,
	api.InstanceGroupKind:  (*Admitter).beforeDeleteGroup,
	api.VolumeKind:         (*Admitter).beforeDeleteVolume,
	api.StoragePoolKind:    (*Admitter).beforeDeleteStoragePool,
}

// beforeDeleteHost refuses deleting a host instances are placed on.
func (a *Admitter) beforeDeleteHost(ctx context.Context, st store.Interface, obj api.Object) error {
	name := obj.Meta().Name
	users, err := list(ctx, st, api.InstanceKind, "", 0, func(o api.Object) bool { return o.(*api.Instance).Status.Host == name })
	return refuseUsed("host "+name, users, err)
}

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

func (a *Admitter) beforeDeleteImage(ctx context.Context, st store.Interface, obj api.Object) error {
	m := obj.Meta()
	ref := m.Project + "/" + m.Name
	users, err := specUsers(ctx, st, func(sp *api.InstanceSpec) bool { return sp.Image == ref },
		func(t *api.InstanceTemplate) bool { return t.Image == ref })
	return refuseUsed("image "+ref, users, err)
}

func (a *Admitter) beforeDeleteFlavor(ctx context.Context, st store.Interface, obj api.Object) error {
	name := obj.Meta().Name
	users, err := specUsers(ctx, st, func(sp *api.InstanceSpec) bool { return sp.Flavor == name },
		func(t *api.InstanceTemplate) bool { return t.Flavor == name })
	return refuseUsed("flavor "+name, users, err)
}

// beforeDeleteProject refuses deleting a project that holds instances,
// groups, images, floating IPs or load balancers. Key pairs, networks and security groups
// hold nothing once the instances are gone: they go with the project
// (security groups before networks, as they name each other only within
// the project).
func (a *Admitter) beforeDeleteProject(ctx context.Context, st store.Interface, obj api.Object) error {
	name := obj.Meta().Name
	for _, k := range []*api.Kind{api.InstanceKind, api.InstanceGroupKind, api.LoadBalancerKind, api.ImageKind, api.FloatingIPKind} {
		objs, err := list(ctx, st, k, name, 10, nil)
		if err := refuseUsed("project "+name, objs, err); err != nil {
			return err
		}
	}
	for _, k := range []*api.Kind{api.KeyPairKind, api.SecurityGroupKind, api.NetworkKind, api.VPCKind} {
		objs, err := list(ctx, st, k, name, 0, nil)
		if err != nil {
			return err
		}
		for _, o := range objs {
			if err := st.Delete(ctx, k, name, o.Meta().Name, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("delete %s %s/%s: %w", k, name, o.Meta().Name, err)
			}
		}
	}
	return nil
}

// beforeDeleteNetwork refuses deleting a network that instances of its
// project are attached to, that group templates name, or that load
// balancers serve.
func (a *Admitter) beforeDeleteNetwork(ctx context.Context, st store.Interface, obj api.Object) error {
	n := obj.(*api.Network)
	users, err := list(ctx, st, api.InstanceKind, n.Metadata.Project, 0, func(o api.Object) bool {
		in := o.(*api.Instance)
		return slices.ContainsFunc(in.Spec.Networks, func(a api.NetworkAttachment) bool { return a.Network == n.Metadata.Name }) ||
			slices.ContainsFunc(in.Status.Interfaces, func(i api.Interface) bool { return i.Network == n.Metadata.Name })
	})
	if err != nil {
		return err
	}
	groups, err := templateUsers(ctx, st, n.Metadata.Project, func(t *api.InstanceTemplate) bool {
		return slices.ContainsFunc(t.Networks, func(a api.NetworkAttachment) bool { return a.Network == n.Metadata.Name })
	})
	if err != nil {
		return err
	}
	lbs, err := list(ctx, st, api.LoadBalancerKind, n.Metadata.Project, 0, func(o api.Object) bool {
		return o.(*api.LoadBalancer).Spec.Network == n.Metadata.Name
	})
	return refuseUsed("network "+n.Metadata.Name, append(append(users, groups...), lbs...), err)
}

// beforeDeleteGroup refuses deleting an instance group that a load
// balancer's pool takes its members from.
func (a *Admitter) beforeDeleteGroup(ctx context.Context, st store.Interface, obj api.Object) error {
	m := obj.Meta()
	lbs, err := list(ctx, st, api.LoadBalancerKind, m.Project, 0, func(o api.Object) bool {
		return slices.ContainsFunc(o.(*api.LoadBalancer).Spec.Pools, func(p api.Pool) bool { return p.Group == m.Name })
	})
	return refuseUsed("instance group "+m.Name, lbs, err)
}

// beforeDeleteSecurityGroup refuses deleting a group that instances or
// group templates use or that other groups' rules name as source.
func (a *Admitter) beforeDeleteSecurityGroup(ctx context.Context, st store.Interface, obj api.Object) error {
	project, name := obj.Meta().Project, obj.Meta().Name
	insts, err := list(ctx, st, api.InstanceKind, project, 0, func(o api.Object) bool {
		return slices.ContainsFunc(o.(*api.Instance).Spec.Networks, func(a api.NetworkAttachment) bool {
			return slices.Contains(a.SecurityGroups, name)
		})
	})
	if err != nil {
		return err
	}
	groups, err := list(ctx, st, api.SecurityGroupKind, project, 0, func(o api.Object) bool {
		og := o.(*api.SecurityGroup)
		return og.Metadata.Name != name && slices.ContainsFunc(og.Spec.Rules, func(r api.SecurityGroupRule) bool {
			return r.SourceGroup == name
		})
	})
	if err != nil {
		return err
	}
	templates, err := templateUsers(ctx, st, project, func(t *api.InstanceTemplate) bool {
		return slices.ContainsFunc(t.Networks, func(a api.NetworkAttachment) bool { return slices.Contains(a.SecurityGroups, name) })
	})
	return refuseUsed("security group "+name, append(append(insts, groups...), templates...), err)
}

// beforeDeleteKeyPair refuses deleting a key pair a group's template
// names for the members it has yet to make; instances hold a copy of the
// public key.
func (a *Admitter) beforeDeleteKeyPair(ctx context.Context, st store.Interface, obj api.Object) error {
	m := obj.Meta()
	users, err := templateUsers(ctx, st, m.Project, func(t *api.InstanceTemplate) bool { return t.KeyName == m.Name })
	return refuseUsed("key pair "+m.Name, users, err)
}

// beforeDeletePool refuses deleting a pool floating IPs were allocated
// from.
func (a *Admitter) beforeDeletePool(ctx context.Context, st store.Interface, obj api.Object) error {
	pool := obj.Meta().Name
	allocated, err := a.addrs.PoolAddresses(ctx, pool)
	if err != nil {
		return err
	}
	var users []api.Object
	for _, holder := range allocated {
		users = append(users, holderObject(holder))
	}
	slices.SortFunc(users, func(a, b api.Object) int {
		return strings.Compare(a.Meta().Project+"/"+a.Meta().Name, b.Meta().Project+"/"+b.Meta().Name)
	})
	return refuseUsed("pool "+pool, users, nil)
}

// templateUsers lists the instance groups of a project whose template uses
// something: a group would fail to make members once it is gone.
func templateUsers(ctx context.Context, st store.Interface, project string, uses func(*api.InstanceTemplate) bool) ([]api.Object, error) {
	return list(ctx, st, api.InstanceGroupKind, project, 0, func(o api.Object) bool {
		return uses(&o.(*api.InstanceGroup).Spec.Template)
	})
}

// holderObject returns an object of the kind, project and name of the
// store key that holds a claim: /ouro/v1/<plural>/[<project>/]<name>
// (a floating IP if the kind is not known).
func holderObject(holder string) api.Object {
	parts := strings.Split(holder, "/")
	m := api.ObjectMeta{Name: parts[len(parts)-1]}
	if len(parts) == 6 {
		m.Project = parts[4]
	}
	if len(parts) >= 5 {
		if k := api.KindByPlural(parts[3]); k != nil {
			o := k.New()
			*o.Meta() = m
			return o
		}
	}
	return &api.FloatingIP{Metadata: m}
}

// beforeDeleteStoragePool refuses deleting a pool volumes live in.
func (a *Admitter) beforeDeleteStoragePool(ctx context.Context, st store.Interface, obj api.Object) error {
	name := obj.Meta().Name
	users, err := list(ctx, st, api.VolumeKind, "", 10, func(o api.Object) bool { return o.(*api.Volume).Spec.Pool == name })
	return refuseUsed("storage pool "+name, users, err)
}
