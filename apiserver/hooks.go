package apiserver

import (
	"context"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// kindHooks are what the generic handlers (resources.go) do for one kind
// beyond reading and writing the store. Every hook is optional. The
// validators may assume the metadata was validated and the status of a
// create was cleared; create sets the status the server owns.
type kindHooks struct {
	// create admits a new object for id, with its defaults.
	create func(s *Server, ctx context.Context, id *auth.Identity, obj api.Object) error
	// update admits the change of old to obj, whose status and
	// server-owned metadata were already copied from old.
	update func(s *Server, ctx context.Context, id *auth.Identity, old, obj api.Object) error
	// status admits a status write: obj is a copy of old carrying the new
	// status.
	status func(id *auth.Identity, old, obj api.Object) error
	// commit, when set, stores a new object with st in place of
	// st.Create:
	// kinds that hold claims (addresses, VNIs) allocate them there.
	commit func(s *Server, ctx context.Context, st store.Interface, obj api.Object, opts store.CreateOptions) (bool, error)
	// commitUpdate, when set, stores an updated object in place of
	// store.Update.
	commitUpdate func(s *Server, ctx context.Context, st store.Interface, old, obj api.Object) error
	// created runs after a create succeeded (or was replayed); it must be
	// idempotent, as a crash before it is repaired by Bootstrap.
	created func(s *Server, ctx context.Context, obj api.Object) error
	// beforeDelete refuses deleting an object others depend on, and
	// removes what depends on it alone; it must be safe to repeat.
	beforeDelete func(s *Server, ctx context.Context, st store.Interface, obj api.Object) error
	// remove, when set, deletes the object (read at resourceVersion rv,
	// when given) in place of beforeDelete, store.Delete and deleted, and
	// returns the status to answer and the object to answer with.
	remove func(s *Server, ctx context.Context, st store.Interface, obj api.Object, rv string) (int, api.Object, error)
	// deleted runs after the object was deleted.
	deleted func(s *Server, obj api.Object)
	// prepareOut removes from an object what responses must not show.
	prepareOut func(obj api.Object)
}

// hooks holds the hooks of every kind that has any.
var hooks = map[*api.Kind]kindHooks{
	api.ProjectKind: sameRules(admission.ValidateProject, kindHooks{
		created: func(s *Server, ctx context.Context, o api.Object) error {
			return s.adm.EnsureProjectNetworking(ctx, s.store, o.Meta().Name)
		},
		beforeDelete: beforeDelete,
	}),
	api.NetworkKind: {
		create: func(s *Server, ctx context.Context, _ *auth.Identity, o api.Object) error {
			return s.adm.ValidateNetworkCreate(ctx, o.(*api.Network))
		},
		update: func(_ *Server, _ context.Context, _ *auth.Identity, old, o api.Object) error {
			return admission.ValidateNetworkUpdate(old.(*api.Network), o.(*api.Network))
		},
		status: func(_ *auth.Identity, old, o api.Object) error {
			return admission.ValidateNetworkStatus(old.(*api.Network), o.(*api.Network))
		},
		commit: func(s *Server, ctx context.Context, st store.Interface, o api.Object, opts store.CreateOptions) (bool, error) {
			return s.adm.StoreNetwork(ctx, st, o.(*api.Network), opts)
		},
		beforeDelete: beforeDelete,
	},
	api.VPCKind: {
		create: func(_ *Server, _ context.Context, _ *auth.Identity, o api.Object) error {
			return admission.ValidateVPCCreate(o.(*api.VPC))
		},
		update: func(_ *Server, _ context.Context, _ *auth.Identity, old, o api.Object) error {
			return admission.ValidateVPCUpdate(old.(*api.VPC), o.(*api.VPC))
		},
		status:       func(*auth.Identity, api.Object, api.Object) error { return admission.ValidateVPCStatus() },
		beforeDelete: beforeDelete,
	},
	api.SecurityGroupKind: {
		create: func(s *Server, ctx context.Context, _ *auth.Identity, o api.Object) error {
			return s.adm.ValidateSecurityGroup(ctx, o.(*api.SecurityGroup))
		},
		update: func(s *Server, ctx context.Context, _ *auth.Identity, _, o api.Object) error {
			return s.adm.ValidateSecurityGroup(ctx, o.(*api.SecurityGroup))
		},
		beforeDelete: beforeDelete,
	},
	api.FloatingIPPoolKind: {
		create: func(s *Server, ctx context.Context, _ *auth.Identity, o api.Object) error {
			return s.adm.ValidatePool(ctx, o.(*api.FloatingIPPool), nil)
		},
		update: func(s *Server, ctx context.Context, _ *auth.Identity, old, o api.Object) error {
			return s.adm.ValidatePool(ctx, o.(*api.FloatingIPPool), old.(*api.FloatingIPPool))
		},
		beforeDelete: beforeDelete,
	},
	api.FloatingIPKind: {
		create: func(s *Server, ctx context.Context, _ *auth.Identity, o api.Object) error {
			return validateFloatingIPCreate(ctx, s.store, o.(*api.FloatingIP))
		},
		update: func(s *Server, ctx context.Context, _ *auth.Identity, old, o api.Object) error {
			return validateFloatingIPUpdate(ctx, s.store, old.(*api.FloatingIP), o.(*api.FloatingIP))
		},
		status: func(_ *auth.Identity, old, o api.Object) error {
			return validateFloatingIPStatus(old.(*api.FloatingIP), o.(*api.FloatingIP))
		},
		commit: func(s *Server, ctx context.Context, st store.Interface, o api.Object, opts store.CreateOptions) (bool, error) {
			return s.addrs.CreateFloatingIP(ctx, st, o.(*api.FloatingIP), opts)
		},
		commitUpdate: func(s *Server, ctx context.Context, st store.Interface, old, o api.Object) error {
			return s.addrs.UpdateFloatingIP(ctx, st, old.(*api.FloatingIP), o.(*api.FloatingIP))
		},
	},
	api.UserKind: sameRules(admission.ValidateUser, kindHooks{
		status: func(*auth.Identity, api.Object, api.Object) error {
			return api.Invalid("status", "set a password with PUT /v1/users/{name}/password (ouro user passwd)",
				"the status of a user is written by the server")
		},
		beforeDelete: beforeDeleteUser,
		prepareOut:   func(o api.Object) { o.(*api.User).Status.PasswordHash = "" },
	}),
	api.FlavorKind: sameRules(admission.ValidateFlavor, kindHooks{beforeDelete: beforeDelete}),
	api.HostKind: sameRules(func(h *api.Host) error { return admission.ValidateHostSpec(&h.Spec) }, kindHooks{
		status: func(_ *auth.Identity, _, o api.Object) error {
			return admission.ValidateHostStatus(&o.(*api.Host).Status)
		},
		beforeDelete: beforeDeleteHost,
	}),
	api.TokenKind: {
		update: func(_ *Server, _ context.Context, _ *auth.Identity, old, o api.Object) error {
			ot, t := old.(*api.Token), o.(*api.Token)
			if t.Spec.User != ot.Spec.User {
				return admission.Immutable("spec.user")
			}
			if t.Spec.Host != ot.Spec.Host {
				return admission.Immutable("spec.host")
			}
			return admission.ValidateDescription("spec.description", t.Spec.Description)
		},
		status:     func(*auth.Identity, api.Object, api.Object) error { return tokenStatusReadOnly() },
		deleted:    func(s *Server, o api.Object) { s.authn.Forget(o.Meta().Name) },
		prepareOut: func(o api.Object) { o.(*api.Token).Status.SecretHash = "" },
	},
	api.JoinTokenKind: {
		status:     func(*auth.Identity, api.Object, api.Object) error { return tokenStatusReadOnly() },
		prepareOut: func(o api.Object) { o.(*api.JoinToken).Status.SecretHash = "" },
	},
	api.EventKind: sameRules(validateEvent, kindHooks{}),
	api.ImageKind: {
		create: func(s *Server, ctx context.Context, id *auth.Identity, o api.Object) error {
			return admission.ValidateImageCreate(ctx, blobChecker{s.blobs, s.blobAccess}, id, o.(*api.Image))
		},
		update: func(_ *Server, _ context.Context, id *auth.Identity, old, o api.Object) error {
			return admission.ValidateImageUpdate(id, old.(*api.Image), o.(*api.Image))
		},
		commit: func(s *Server, ctx context.Context, st store.Interface, o api.Object, opts store.CreateOptions) (bool, error) {
			return admission.StoreImage(ctx, st, o.(*api.Image), opts)
		},
		commitUpdate: func(s *Server, ctx context.Context, st store.Interface, old, o api.Object) error {
			return admission.UpdateImage(ctx, st, old.(*api.Image), o.(*api.Image))
		},
		beforeDelete: beforeDelete,
	},
	api.KeyPairKind: {
		create: func(_ *Server, _ context.Context, _ *auth.Identity, o api.Object) error {
			return admission.ValidateKeyPairCreate(o.(*api.KeyPair))
		},
		update: func(_ *Server, _ context.Context, _ *auth.Identity, old, o api.Object) error {
			return admission.ValidateKeyPairUpdate(old.(*api.KeyPair), o.(*api.KeyPair))
		},
		status: func(*auth.Identity, api.Object, api.Object) error {
			return api.Invalid("status", "the server sets it from spec.publicKey", "the status of a key pair cannot be written")
		},
		beforeDelete: beforeDelete,
	},
	api.InstanceKind: {
		create: func(s *Server, ctx context.Context, id *auth.Identity, o api.Object) error {
			return s.adm.ValidateInstanceCreate(ctx, id, o.(*api.Instance))
		},
		update: func(s *Server, ctx context.Context, id *auth.Identity, old, o api.Object) error {
			return s.adm.ValidateInstanceUpdate(ctx, id, old.(*api.Instance), o.(*api.Instance))
		},
		status: func(id *auth.Identity, old, o api.Object) error {
			return admission.ValidateInstanceStatus(id, old.(*api.Instance), o.(*api.Instance))
		},
		commit: func(s *Server, ctx context.Context, st store.Interface, o api.Object, opts store.CreateOptions) (bool, error) {
			return s.adm.StoreInstance(ctx, st, o.(*api.Instance), opts)
		},
		commitUpdate: func(s *Server, ctx context.Context, st store.Interface, old, o api.Object) error {
			return s.adm.UpdateInstanceVolumes(ctx, st, old.(*api.Instance), o.(*api.Instance))
		},
		remove: deleteInstance,
	},
	api.InstanceGroupKind: {
		create: func(s *Server, ctx context.Context, id *auth.Identity, o api.Object) error {
			return s.adm.ValidateGroup(ctx, id, nil, o.(*api.InstanceGroup))
		},
		update: func(s *Server, ctx context.Context, id *auth.Identity, old, o api.Object) error {
			return s.adm.ValidateGroup(ctx, id, old.(*api.InstanceGroup), o.(*api.InstanceGroup))
		},
		beforeDelete: beforeDelete,
	},
	api.LoadBalancerKind: {
		create: func(s *Server, ctx context.Context, id *auth.Identity, o api.Object) error {
			return s.adm.ValidateLoadBalancerCreate(ctx, id, o.(*api.LoadBalancer))
		},
		update: func(s *Server, ctx context.Context, id *auth.Identity, old, o api.Object) error {
			return s.adm.ValidateLoadBalancerUpdate(ctx, id, old.(*api.LoadBalancer), o.(*api.LoadBalancer))
		},
		status: func(id *auth.Identity, old, o api.Object) error {
			return admission.ValidateLoadBalancerStatus(id, old.(*api.LoadBalancer), o.(*api.LoadBalancer))
		},
		commit: func(s *Server, ctx context.Context, st store.Interface, o api.Object, opts store.CreateOptions) (bool, error) {
			return s.adm.StoreLoadBalancer(ctx, st, o.(*api.LoadBalancer), opts)
		},
		beforeDelete: beforeDelete,
		prepareOut:   hideListenerKeys,
	},
	api.StackKind:          stackHooks,
	api.StoragePoolKind:    storagePoolHooks,
	api.VolumeKind:         volumeHooks,
	api.VolumeSnapshotKind: snapshotHooks,
	api.AccessKeyKind: {
		prepareOut: func(o api.Object) { o.(*api.AccessKey).Status.SealedSecret = "" },
	},
}

// hideListenerKeys blanks the private key of every listener of a load
// balancer: a key is written, never read back.
func hideListenerKeys(o api.Object) {
	lb := o.(*api.LoadBalancer)
	for i := range lb.Spec.Listeners {
		lb.Spec.Listeners[i].Key = ""
	}
}

// sameRules returns h with create and update hooks that both admit an
// object by check alone, for kinds whose rules do not depend on who asks
// or on what the object was before.
func sameRules[T api.Object](check func(T) error, h kindHooks) kindHooks {
	h.create = func(_ *Server, _ context.Context, _ *auth.Identity, o api.Object) error {
		return check(o.(T))
	}
	h.update = func(_ *Server, _ context.Context, _ *auth.Identity, _, o api.Object) error {
		return check(o.(T))
	}
	return h
}
