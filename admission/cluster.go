package admission

import (
	"fmt"

	"github.com/ouroboros-cloud/ouro/api"
)

// The validators of cluster-scoped kinds that instances depend on or
// that hold no references: projects, users, flavors and hosts.

// ValidateProject admits a project.
func ValidateProject(p *api.Project) error {
	return ValidateDescription("spec.description", p.Spec.Description)
}

// ValidateUser admits a user: its roles name valid projects and roles.
func ValidateUser(u *api.User) error {
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

// ValidateFlavor admits a flavor within the bounds above.
func ValidateFlavor(f *api.Flavor) error {
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

// ValidateHostSpec admits a host's spec: its taints.
func ValidateHostSpec(h *api.HostSpec) error {
	return ValidateKeys("spec.taints", h.Taints)
}

// ValidateHostStatus admits a host's status as its agent reports it.
func ValidateHostStatus(st *api.HostStatus) error {
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
