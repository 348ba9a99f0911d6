package apiserver

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
)

// The validators of the kinds that no instance depends on; the others
// are in package admission. hooks.go says which applies to which kind.

func tokenStatusReadOnly() error {
	return api.Invalid("status", "issue a new token instead", "the status of a token cannot be written")
}

func validateProject(p *api.Project) error {
	return admission.ValidateDescription("spec.description", p.Spec.Description)
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
	return admission.ValidateKeys("spec.taints", h.Taints)
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

// validateArgs checks the arguments of a process (exec) as those of an
// instance.
func validateArgs(field string, args []string) error { return admission.ValidateArgs(field, args) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
