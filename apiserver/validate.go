package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// validator checks and defaults the objects of one kind. Every function
// may assume the metadata was validated and the status of a create was
// cleared; create sets the status the server owns.
type validator struct {
	create func(s *Server, r *http.Request, id *auth.Identity, obj api.Object) error
	// update sees the stored object and the new one, whose status and
	// server-owned metadata were already copied from old.
	update func(s *Server, r *http.Request, id *auth.Identity, old, obj api.Object) error
	// status sees the stored object and a copy carrying the new status.
	status func(id *auth.Identity, old, obj api.Object) error
	// commit, when set, stores a new object in place of store.Create:
	// kinds that hold claims (addresses, VNIs) allocate them there.
	commit func(s *Server, ctx context.Context, obj api.Object, opts store.CreateOptions) (bool, error)
	// commitUpdate, when set, stores an updated object in place of
	// store.Update.
	commitUpdate func(s *Server, ctx context.Context, old, obj api.Object) error
	// created runs after a create succeeded (or was replayed); it must be
	// idempotent, as a crash before it is repaired by Bootstrap.
	created func(s *Server, ctx context.Context, obj api.Object) error
}

var validators = map[*api.Kind]validator{
	api.ProjectKind: {
		create: func(_ *Server, _ *http.Request, _ *auth.Identity, o api.Object) error {
			return validateProject(o.(*api.Project))
		},
		update: func(_ *Server, _ *http.Request, _ *auth.Identity, _, o api.Object) error {
			return validateProject(o.(*api.Project))
		},
		created: func(s *Server, ctx context.Context, o api.Object) error {
			return s.ensureProjectNetworking(ctx, o.Meta().Name)
		},
	},
	api.NetworkKind: {
		create: func(s *Server, r *http.Request, _ *auth.Identity, o api.Object) error {
			return s.validateNetworkCreate(r.Context(), o.(*api.Network))
		},
		update: func(_ *Server, _ *http.Request, _ *auth.Identity, old, o api.Object) error {
			return validateNetworkUpdate(old.(*api.Network), o.(*api.Network))
		},
		status: func(_ *auth.Identity, old, o api.Object) error {
			return validateNetworkStatus(old.(*api.Network), o.(*api.Network))
		},
		commit: func(s *Server, ctx context.Context, o api.Object, opts store.CreateOptions) (bool, error) {
			return s.createNetwork(ctx, o.(*api.Network), opts)
		},
	},
	api.SecurityGroupKind: {
		create: func(s *Server, r *http.Request, _ *auth.Identity, o api.Object) error {
			return s.validateSecurityGroup(r.Context(), o.(*api.SecurityGroup))
		},
		update: func(s *Server, r *http.Request, _ *auth.Identity, _, o api.Object) error {
			return s.validateSecurityGroup(r.Context(), o.(*api.SecurityGroup))
		},
	},
	api.FloatingIPPoolKind: {
		create: func(s *Server, r *http.Request, _ *auth.Identity, o api.Object) error {
			return s.validatePool(r.Context(), o.(*api.FloatingIPPool), nil)
		},
		update: func(s *Server, r *http.Request, _ *auth.Identity, old, o api.Object) error {
			return s.validatePool(r.Context(), o.(*api.FloatingIPPool), old.(*api.FloatingIPPool))
		},
	},
	api.FloatingIPKind: {
		create: func(s *Server, r *http.Request, _ *auth.Identity, o api.Object) error {
			return s.validateFloatingIPCreate(r.Context(), o.(*api.FloatingIP))
		},
		update: func(s *Server, r *http.Request, _ *auth.Identity, old, o api.Object) error {
			return s.validateFloatingIPUpdate(r.Context(), old.(*api.FloatingIP), o.(*api.FloatingIP))
		},
		status: func(_ *auth.Identity, old, o api.Object) error {
			return validateFloatingIPStatus(old.(*api.FloatingIP), o.(*api.FloatingIP))
		},
		commit: func(s *Server, ctx context.Context, o api.Object, opts store.CreateOptions) (bool, error) {
			return s.createFloatingIP(ctx, o.(*api.FloatingIP), opts)
		},
		commitUpdate: func(s *Server, ctx context.Context, old, o api.Object) error {
			return s.updateFloatingIP(ctx, old.(*api.FloatingIP), o.(*api.FloatingIP))
		},
	},
	api.UserKind: {
		create: func(_ *Server, _ *http.Request, _ *auth.Identity, o api.Object) error {
			return validateUser(o.(*api.User))
		},
		update: func(_ *Server, _ *http.Request, _ *auth.Identity, _, o api.Object) error {
			return validateUser(o.(*api.User))
		},
	},
	api.FlavorKind: {
		create: func(_ *Server, _ *http.Request, _ *auth.Identity, o api.Object) error {
			return validateFlavor(o.(*api.Flavor))
		},
		update: func(_ *Server, _ *http.Request, _ *auth.Identity, _, o api.Object) error {
			return validateFlavor(o.(*api.Flavor))
		},
	},
	api.HostKind: {
		create: func(_ *Server, _ *http.Request, _ *auth.Identity, o api.Object) error {
			return validateHostSpec(&o.(*api.Host).Spec)
		},
		update: func(_ *Server, _ *http.Request, _ *auth.Identity, _, o api.Object) error {
			return validateHostSpec(&o.(*api.Host).Spec)
		},
		status: func(_ *auth.Identity, _, o api.Object) error { return validateHostStatus(&o.(*api.Host).Status) },
	},
	api.TokenKind: {
		update: func(_ *Server, _ *http.Request, _ *auth.Identity, old, o api.Object) error {
			ot, t := old.(*api.Token), o.(*api.Token)
			if t.Spec.User != ot.Spec.User {
				return immutable("spec.user")
			}
			if t.Spec.Host != ot.Spec.Host {
				return immutable("spec.host")
			}
			return validateDescription("spec.description", t.Spec.Description)
		},
		status: func(*auth.Identity, api.Object, api.Object) error { return tokenStatusReadOnly() },
	},
	api.JoinTokenKind: {
		status: func(*auth.Identity, api.Object, api.Object) error { return tokenStatusReadOnly() },
	},
	api.EventKind: {
		create: func(_ *Server, _ *http.Request, _ *auth.Identity, o api.Object) error {
			return validateEvent(o.(*api.Event))
		},
		update: func(_ *Server, _ *http.Request, _ *auth.Identity, _, o api.Object) error {
			return validateEvent(o.(*api.Event))
		},
	},
	api.ImageKind: {
		create: func(s *Server, _ *http.Request, _ *auth.Identity, o api.Object) error {
			return s.validateImageCreate(o.(*api.Image))
		},
		update: func(_ *Server, _ *http.Request, _ *auth.Identity, old, o api.Object) error {
			return validateImageUpdate(old.(*api.Image), o.(*api.Image))
		},
	},
	api.KeyPairKind: {
		create: func(_ *Server, _ *http.Request, _ *auth.Identity, o api.Object) error {
			return validateKeyPairCreate(o.(*api.KeyPair))
		},
		update: func(_ *Server, _ *http.Request, _ *auth.Identity, old, o api.Object) error {
			return validateKeyPairUpdate(old.(*api.KeyPair), o.(*api.KeyPair))
		},
		status: func(*auth.Identity, api.Object, api.Object) error {
			return api.Invalid("status", "the server sets it from spec.publicKey", "the status of a key pair cannot be written")
		},
	},
	api.InstanceKind: {
		create: func(s *Server, r *http.Request, id *auth.Identity, o api.Object) error {
			return s.validateInstanceCreate(r, o.(*api.Instance))
		},
		update: func(s *Server, r *http.Request, _ *auth.Identity, old, o api.Object) error {
			return s.validateInstanceUpdate(r, old.(*api.Instance), o.(*api.Instance))
		},
		status: func(id *auth.Identity, old, o api.Object) error {
			return validateInstanceStatus(id, old.(*api.Instance), o.(*api.Instance))
		},
		commit: func(s *Server, ctx context.Context, o api.Object, opts store.CreateOptions) (bool, error) {
			return s.createInstance(ctx, s.store, o.(*api.Instance), opts)
		},
	},
	api.InstanceGroupKind: {
		create: func(s *Server, r *http.Request, _ *auth.Identity, o api.Object) error {
			return s.validateGroup(r, nil, o.(*api.InstanceGroup))
		},
		update: func(s *Server, r *http.Request, _ *auth.Identity, old, o api.Object) error {
			return s.validateGroup(r, old.(*api.InstanceGroup), o.(*api.InstanceGroup))
		},
	},
}

func immutable(field string) error {
	return api.Invalid(field, "create a new object instead", "field is immutable")
}

func tokenStatusReadOnly() error {
	return api.Invalid("status", "issue a new token instead", "the status of a token cannot be written")
}

func validateDescription(field, d string) error {
	if len(d) > 1024 || !utf8.ValidString(d) {
		return api.Invalid(field, "use at most 1024 bytes of UTF-8", "description is not valid")
	}
	return nil
}

func validateProject(p *api.Project) error {
	return validateDescription("spec.description", p.Spec.Description)
}

func validateUser(u *api.User) error {
	for project, role := range u.Spec.Roles {
		if e := api.ValidateName("spec.roles", project); e != nil {
			e.Message = "project " + e.Message
			return e
		}
		if !role.Valid() {
			return api.Invalid("spec.roles."+project, "use admin, member or viewer", "role %q is not valid", role)
		}
	}
	return nil
}

// Flavor bounds.
const (
	maxVCPUs     = 256
	minMemoryMiB = 16
	maxMemoryMiB = 4 << 20  // 4 TiB
	maxDiskGiB   = 64 << 10 // 64 TiB
)

func validateFlavor(f *api.Flavor) error {
	return validateResources("spec", f.Spec)
}

func validateResources(field string, r api.Resources) error {
	switch {
	case r.VCPUs < 1 || r.VCPUs > maxVCPUs:
		return api.Invalid(field+".vcpus", fmt.Sprintf("use 1 to %d", maxVCPUs), "%d vCPUs is out of range", r.VCPUs)
	case r.MemoryMiB < minMemoryMiB || r.MemoryMiB > maxMemoryMiB:
		return api.Invalid(field+".memoryMiB", fmt.Sprintf("use %d to %d MiB", minMemoryMiB, maxMemoryMiB), "%d MiB is out of range", r.MemoryMiB)
	case r.DiskGiB < 0 || r.DiskGiB > maxDiskGiB:
		return api.Invalid(field+".diskGiB", fmt.Sprintf("use 0 to %d GiB", maxDiskGiB), "%d GiB is out of range", r.DiskGiB)
	}
	return nil
}

func validateHostSpec(h *api.HostSpec) error {
	return validateKeys("spec.taints", h.Taints)
}

// validateKeys checks taint or toleration keys, which follow label keys.
func validateKeys(field string, keys []string) error {
	if len(keys) > 64 {
		return api.Invalid(field, "use at most 64", "%d entries given", len(keys))
	}
	for i, k := range keys {
		if e := api.ValidateLabels(field, map[string]string{k: ""}); e != nil {
			return api.Invalid(fmt.Sprintf("%s[%d]", field, i), e.Hint, "key %q is not valid", k)
		}
	}
	return nil
}

func validateHostStatus(st *api.HostStatus) error {
	switch st.Phase {
	case "", api.HostReady, api.HostNotReady:
	default:
		return api.Invalid("status.phase", "use Ready or NotReady", "phase %q is not valid", st.Phase)
	}
	if st.Capacity.VCPUs < 0 || st.Capacity.MemoryMiB < 0 || st.Capacity.DiskGiB < 0 {
		return api.Invalid("status.capacity", "capacity cannot be negative", "negative capacity")
	}
	return nil
}

// Event bounds.
const (
	maxEventMessage = 1024
	maxEventReason  = 128
)

func validateEvent(e *api.Event) error {
	if api.KindByPlural(pluralOf(e.Object.Kind)) == nil {
		return api.Invalid("object.kind", "use a kind name such as Instance", "kind %q is not known", e.Object.Kind)
	}
	if err := api.ValidateName("object.name", e.Object.Name); err != nil {
		return err
	}
	if e.Object.Project != "" {
		if err := api.ValidateName("object.project", e.Object.Project); err != nil {
			return err
		}
	}
	switch {
	case e.Type != api.EventNormal && e.Type != api.EventWarning:
		return api.Invalid("type", "use Normal or Warning", "event type %q is not valid", e.Type)
	case e.Reason == "" || len(e.Reason) > maxEventReason || !printable(e.Reason):
		return api.Invalid("reason", "use a short CamelCase word such as Scheduled", "reason is missing or not valid")
	case len(e.Message) > maxEventMessage || !utf8.ValidString(e.Message):
		return api.Invalid("message", fmt.Sprintf("use at most %d bytes of UTF-8", maxEventMessage), "message is %d bytes", len(e.Message))
	case len(e.Source) > 253:
		return api.Invalid("source", "use at most 253 characters", "source is too long")
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	return nil
}

// pluralOf returns the URL plural of a kind name, or "".
func pluralOf(name string) string {
	for _, k := range api.Kinds() {
		if k.Name == name {
			return k.Plural
		}
	}
	return ""
}
