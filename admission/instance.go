package admission

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// Bounds of an instance's (and an image's) process.
const (
	maxArgs = 256
	// MaxArgBytes bounds one argument, environment value or working
	// directory of a process.
	MaxArgBytes = 4096
	maxEnv      = 256
)

var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidateInstanceCreate admits a new instance for id: it checks the spec,
// resolves the flavor (copying its resources into spec.resources), the
// image (naming it project/name), the key pair (copying its public key)
// and the networks and security groups (defaulting them), and sets the
// initial status. The metadata must have been checked and the status
// cleared. Nothing is written: StoreInstance stores the result.
func (a *Admitter) ValidateInstanceCreate(ctx context.Context, id *auth.Identity, in *api.Instance) error {
	if err := checkIdentity(id); err != nil {
		return err
	}
	spec := &in.Spec
	if e := api.ValidateName("spec.flavor", spec.Flavor); e != nil {
		return e
	}
	var fl api.Flavor
	if err := a.st.Get(ctx, api.FlavorKind, "", spec.Flavor, &fl); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return api.Invalid("spec.flavor", "list the flavors with GET /v1/flavors", "flavor %q does not exist", spec.Flavor)
		}
		return fmt.Errorf("get flavor: %w", err)
	}
	spec.Resources = fl.Spec
	img, err := a.ResolveImage(ctx, in.Metadata.Project, spec.Image)
	if err != nil {
		return err
	}
	if img.Status.Phase != "Ready" {
		return api.Invalid("spec.image", "wait until the image is Ready", "image %s/%s is %q", img.Metadata.Project, img.Metadata.Name, img.Status.Phase)
	}
	spec.Image = img.Metadata.Project + "/" + img.Metadata.Name
	if spec.PowerState == "" {
		spec.PowerState = api.PowerOn
	}
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = api.RestartAlways
	}
	if spec.RebootRequests != 0 {
		return api.Invalid("spec.rebootRequests", "leave it out; POST .../reboot asks for a reboot", "must be 0 on create")
	}
	if err := validateInstanceSpec(in); err != nil {
		return err
	}
	if err := a.validateAttachments(ctx, in); err != nil {
		return err
	}
	if err := a.validateInstanceVolumes(ctx, in, nil); err != nil {
		return err
	}
	if err := a.validateInstanceAccess(ctx, in); err != nil {
		return err
	}
	in.Status = api.InstanceStatus{Phase: api.PhasePending, Driver: img.Status.Driver}
	return nil
}

// PrefetchInstanceReads returns ctx under which the objects that
// ValidateInstanceCreate and StoreInstance read for in (its project,
// flavor, image, networks and security groups, defaults included) are
// read once, together, at one revision (store.Prefetch): one round trip to
// etcd instead of one per object. in is not changed.
func (a *Admitter) PrefetchInstanceReads(ctx context.Context, in *api.Instance) context.Context {
	project, spec := in.Metadata.Project, &in.Spec
	refs := []store.Ref{
		{Kind: api.ProjectKind, Name: project},
		{Kind: api.FlavorKind, Name: spec.Flavor},
	}
	if p, name, ok := strings.Cut(spec.Image, "/"); ok {
		refs = append(refs, store.Ref{Kind: api.ImageKind, Project: p, Name: name})
	} else {
		refs = append(refs, store.Ref{Kind: api.ImageKind, Project: project, Name: spec.Image})
	}
	nets := spec.Networks
	if len(nets) == 0 {
		nets = []api.NetworkAttachment{{Network: DefaultNetworkName}}
	}
	for i, att := range nets {
		if i == maxInterfaces {
			break
		}
		refs = append(refs, store.Ref{Kind: api.NetworkKind, Project: project, Name: att.Network})
		groups := att.SecurityGroups
		if len(groups) == 0 {
			groups = []string{DefaultGroupName}
		}
		for j, g := range groups {
			if j == maxGroupsPerInterface {
				break
			}
			refs = append(refs, store.Ref{Kind: api.SecurityGroupKind, Project: project, Name: g})
		}
	}
	return store.Prefetch(ctx, a.st, refs)
}

// ResolveImage finds the image an instance of project names in ref:
// "project/name" (of this project, or public), or "name" in the project,
// else the one public image of that name. Its errors name spec.image.
func (a *Admitter) ResolveImage(ctx context.Context, project, ref string) (*api.Image, error) {
	const hint = "name an image of this project or a public image, as name or project/name"
	if ref == "" {
		return nil, api.Invalid("spec.image", hint, "image is required")
	}
	if p, name, ok := strings.Cut(ref, "/"); ok {
		if api.ValidateName("spec.image", p) != nil || api.ValidateName("spec.image", name) != nil {
			return nil, api.Invalid("spec.image", hint, "image %q is not a valid reference", ref)
		}
		var img api.Image
		err := a.st.Get(ctx, api.ImageKind, p, name, &img)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("get image: %w", err)
		case p == project || img.Spec.Public:
			return &img, nil
		}
		return nil, api.Invalid("spec.image", hint, "image %q not found", ref)
	}
	if e := api.ValidateName("spec.image", ref); e != nil {
		return nil, e
	}
	var img api.Image
	err := a.st.Get(ctx, api.ImageKind, project, ref, &img)
	if err == nil {
		return &img, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("get image: %w", err)
	}
	public, _, err := a.st.List(ctx, api.ImageKind, "", store.ListOptions{Filter: func(o api.Object) bool {
		i := o.(*api.Image)
		return i.Spec.Public && i.Metadata.Name == ref
	}})
	if err != nil {
		return nil, fmt.Errorf("list public images: %w", err)
	}
	switch len(public) {
	case 0:
		return nil, api.Invalid("spec.image", hint, "image %q not found", ref)
	case 1:
		return public[0].(*api.Image), nil
	}
	names := make([]string, len(public))
	for i, o := range public {
		names[i] = o.Meta().Project + "/" + ref
	}
	return nil, api.Invalid("spec.image", "name one of them as project/name", "public image %q is ambiguous: %s", ref, strings.Join(names, ", "))
}

// validateInstanceSpec checks what a user may write in any spec.
func validateInstanceSpec(in *api.Instance) error {
	spec := &in.Spec
	switch spec.PowerState {
	case api.PowerOn, api.PowerOff:
	default:
		return api.Invalid("spec.powerState", "use Running or Stopped", "power state %q is not valid", spec.PowerState)
	}
	if spec.RebootRequests < 0 {
		return api.Invalid("spec.rebootRequests", "POST .../reboot asks for a reboot", "must not be negative")
	}
	if err := ValidateArgs("spec.command", spec.Command); err != nil {
		return err
	}
	if err := ValidateEnv("spec.env", spec.Env); err != nil {
		return err
	}
	if err := validateRestartPolicy("spec.restartPolicy", spec.RestartPolicy); err != nil {
		return err
	}
	if err := validatePlacement("spec.placement", spec.Placement); err != nil {
		return err
	}
	if err := validateHealthCheck("spec.healthCheck", spec.HealthCheck); err != nil {
		return err
	}
	return ValidateKeys("spec.tolerations", spec.Tolerations)
}

// ValidateArgs checks the arguments of a process: at most 256 of at most
// MaxArgBytes each, without NUL bytes.
func ValidateArgs(field string, args []string) error {
	if len(args) > maxArgs {
		return api.Invalid(field, fmt.Sprintf("use at most %d arguments", maxArgs), "%d arguments given", len(args))
	}
	for i, a := range args {
		if len(a) > MaxArgBytes {
			return api.Invalid(fmt.Sprintf("%s[%d]", field, i), fmt.Sprintf("use at most %d bytes per argument", MaxArgBytes), "argument is %d bytes", len(a))
		}
		if strings.IndexByte(a, 0) >= 0 {
			return api.Invalid(fmt.Sprintf("%s[%d]", field, i), "remove the NUL byte", "argument contains a NUL byte")
		}
	}
	return nil
}

// ValidateEnv checks environment variables written KEY=VALUE.
func ValidateEnv(field string, env []string) error {
	if len(env) > maxEnv {
		return api.Invalid(field, fmt.Sprintf("use at most %d variables", maxEnv), "%d variables given", len(env))
	}
	for i, e := range env {
		k, v, ok := strings.Cut(e, "=")
		f := fmt.Sprintf("%s[%d]", field, i)
		if !ok || !envKeyRE.MatchString(k) {
			return api.Invalid(f, "write KEY=VALUE with a key of letters, digits and '_', not starting with a digit", "%q is not KEY=VALUE", truncate(e, 80))
		}
		if len(v) > MaxArgBytes || strings.IndexByte(v, 0) >= 0 {
			return api.Invalid(f, fmt.Sprintf("use at most %d bytes without NUL", MaxArgBytes), "value of %s is not valid", k)
		}
	}
	return nil
}

// ValidateInstanceUpdate admits, for id, the update of instance old to
// in, whose status and server-owned metadata are old's: what the
// instance was made of cannot change (image, flavor, process, key pair,
// user-data, networks); power state and reboot requests can, and left-out
// networks and public keys are kept.
func (a *Admitter) ValidateInstanceUpdate(ctx context.Context, id *auth.Identity, old, in *api.Instance) error {
	if err := checkIdentity(id); err != nil {
		return err
	}
	o, n := &old.Spec, &in.Spec
	switch {
	case n.Image != o.Image:
		return Immutable("spec.image")
	case n.Flavor != o.Flavor:
		return Immutable("spec.flavor")
	case n.Resources != o.Resources:
		return Immutable("spec.resources")
	case !slices.Equal(n.Command, o.Command):
		return Immutable("spec.command")
	case !slices.Equal(n.Env, o.Env):
		return Immutable("spec.env")
	}
	if err := validateInstanceAccessUpdate(old, in); err != nil {
		return err
	}
	if len(n.Networks) == 0 {
		n.Networks = o.Networks
	} else if !jsonEqual(n.Networks, o.Networks) {
		return Immutable("spec.networks")
	}
	if n.PowerState == "" {
		n.PowerState = api.PowerOn
	}
	if n.RebootRequests < o.RebootRequests {
		return api.Invalid("spec.rebootRequests", "POST .../reboot asks for a reboot", "rebootRequests may only grow (is %d)", o.RebootRequests)
	}
	if err := validateInstanceSpec(in); err != nil {
		return err
	}
	if !jsonEqual(n.Volumes, o.Volumes) {
		if old.Metadata.DeletionTimestamp != nil {
			return api.Conflict("instance %q is being deleted", old.Metadata.Name)
		}
		if err := a.validateInstanceVolumes(ctx, in, old); err != nil {
			return err
		}
	}
	return nil
}

// ValidateInstanceStatus admits the status in written by id over old's:
// a known phase, a host only the scheduler (not a host) moves, and the
// interfaces allocated at create kept.
func ValidateInstanceStatus(id *auth.Identity, old, in *api.Instance) error {
	if id.Host != "" && in.Status.Host != old.Status.Host {
		return api.Invalid("status.host", "only the scheduler places instances", "a host may not move an instance")
	}
	switch in.Status.Phase {
	case api.PhasePending, api.PhaseScheduled, api.PhaseProvisioning, api.PhaseStarting, api.PhaseRunning,
		api.PhaseStopping, api.PhaseStopped, api.PhaseTerminating, api.PhaseTerminated, api.PhaseFailed:
	default:
		return api.Invalid("status.phase", "use one of the instance phases in docs", "phase %q is not valid", in.Status.Phase)
	}
	if in.Status.Host != "" {
		if e := api.ValidateName("status.host", in.Status.Host); e != nil {
			return e
		}
	}
	// Interfaces are allocated by the server at create and hold claims.
	in.Status.Interfaces = old.Status.Interfaces
	return nil
}
