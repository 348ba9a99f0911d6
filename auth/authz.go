package auth

import "github.com/ouroboros-cloud/ouro/api"

// Verb is what a request does.
type Verb string

// Verbs checked by Authorize.
const (
	VerbGet          Verb = "get"
	VerbList         Verb = "list"
	VerbWatch        Verb = "watch"
	VerbCreate       Verb = "create"
	VerbUpdate       Verb = "update"
	VerbUpdateStatus Verb = "updateStatus"
	VerbDelete       Verb = "delete"
	// Instance actions.
	VerbStart  Verb = "start"
	VerbStop   Verb = "stop"
	VerbReboot Verb = "reboot"
	VerbLogs   Verb = "logs"
	VerbExec   Verb = "exec"
	// VerbCrash kills an instance's main process, to show the cloud
	// healing: cluster admins only, whatever their project roles.
	VerbCrash Verb = "crash"
	// VerbHeartbeat renews a host's presence.
	VerbHeartbeat Verb = "heartbeat"
	// VerbGrant issues a token granting a role in Attributes.Project.
	VerbGrant Verb = "grant"
)

// Resources that are not API kinds.
const (
	ResourceBlobs  = "blobs"
	ResourceWhoami = "whoami"
)

// Attributes describe a request for Authorize.
type Attributes struct {
	Verb Verb
	// Resource is a kind's plural ("instances") or ResourceBlobs,
	// ResourceWhoami.
	Resource string
	// Project is the object's project; "" for cluster-scoped kinds and for
	// lists across all projects.
	Project string
	// Name is the object's name; "" for lists and creates.
	Name string
	// Host is, for instance lists and watches, the ?host= filter, and for
	// one instance, its status.host.
	Host string
	// Public is set when the object is a public image.
	Public bool
}

// Decision is the outcome of Authorize.
type Decision int

// Decisions.
const (
	// Allow lets the request through.
	Allow Decision = iota
	// DenyForbidden answers 403: the caller may see the thing but not do this.
	DenyForbidden
	// DenyNotFound answers 404: the caller may not even know the thing exists.
	DenyNotFound
)

func (d Decision) String() string {
	switch d {
	case Allow:
		return "allow"
	case DenyForbidden:
		return "forbidden"
	default:
		return "not found"
	}
}

// Authorize decides whether id may do a. It is a pure function of its
// arguments; callers that filter lists ask it once per object with
// VerbGet.
//
// Cluster admins may do everything. Users act in projects by role:
// viewers read instances, images, events, networks, security groups and
// floating IPs (and key pairs, instance groups, load balancers, stacks,
// volumes and volume snapshots);
// members also write all of those but events, run instance
// actions and upload blobs; admins also grant roles in their project.
// Everyone may read flavors, hosts, floating IP pools, storage pools
// (their Ceph key is never shown), public images and
// the projects they have a role in, and ask for blobs: which blob a caller
// may read depends on the images referring to it, which the API server
// decides per blob (package blobaccess). Hosts read what their agent
// needs (their own host network, but none of the objects it is made of;
// storage pools, volumes and snapshots) and write the status of what is
// theirs.
func Authorize(id *Identity, a Attributes) Decision {
	switch {
	case id == nil:
		return DenyForbidden
	case id.Host != "":
		return authorizeHost(id.Host, a)
	case id.ClusterAdmin:
		return Allow
	}
	switch a.Resource {
	case ResourceWhoami:
		return Allow
	case ResourceBlobs:
		if isRead(a.Verb) {
			return Allow
		}
		if a.Verb == VerbCreate && hasRoleAnywhere(id.Roles, api.RoleMember) {
			return Allow
		}
		return DenyForbidden
	case api.FlavorKind.Plural, api.HostKind.Plural, api.FloatingIPPoolKind.Plural, api.StoragePoolKind.Plural:
		if isRead(a.Verb) {
			return Allow
		}
		return DenyForbidden
	case api.ProjectKind.Plural:
		return authorizeProject(id.Roles, a)
	case api.TokenKind.Plural:
		if a.Verb == VerbGrant {
			return byRole(id.Roles[a.Project], api.RoleAdmin)
		}
		return DenyForbidden
	case api.InstanceKind.Plural, api.ImageKind.Plural, api.EventKind.Plural,
		api.NetworkKind.Plural, api.SecurityGroupKind.Plural, api.FloatingIPKind.Plural,
		api.KeyPairKind.Plural, api.InstanceGroupKind.Plural, api.LoadBalancerKind.Plural,
		api.StackKind.Plural, api.VPCKind.Plural, api.VolumeKind.Plural, api.VolumeSnapshotKind.Plural:
		return authorizeProjectScoped(id.Roles, a)
	}
	// Users, join tokens, host networks and anything new: cluster admins
	// only.
	return DenyForbidden
}

func authorizeProject(roles map[string]api.Role, a Attributes) Decision {
	switch a.Verb {
	case VerbList, VerbWatch:
		return Allow // filtered per object
	case VerbCreate:
		return DenyForbidden
	}
	role, ok := roles[a.Name]
	if !ok {
		return DenyNotFound
	}
	switch a.Verb {
	case VerbGet:
		return Allow
	case VerbUpdate:
		return byRole(role, api.RoleAdmin)
	}
	return DenyForbidden
}

func authorizeProjectScoped(roles map[string]api.Role, a Attributes) Decision {
	if a.Project == "" && (a.Verb == VerbList || a.Verb == VerbWatch) {
		return Allow // across projects, filtered per object
	}
	role, ok := roles[a.Project]
	if !ok {
		if a.Resource == api.ImageKind.Plural && a.Verb == VerbGet && a.Public {
			return Allow
		}
		return DenyNotFound
	}
	if isRead(a.Verb) {
		return Allow
	}
	if a.Resource == api.EventKind.Plural {
		return DenyForbidden
	}
	switch a.Verb {
	case VerbCreate, VerbUpdate, VerbDelete:
		return byRole(role, api.RoleMember)
	case VerbStart, VerbStop, VerbReboot, VerbLogs, VerbExec:
		if a.Resource == api.InstanceKind.Plural {
			return byRole(role, api.RoleMember)
		}
	}
	return DenyForbidden
}

func authorizeHost(self string, a Attributes) Decision {
	switch a.Resource {
	case ResourceWhoami:
		return Allow
	case ResourceBlobs:
		if a.Verb == VerbGet {
			return Allow
		}
		return DenyForbidden
	case api.FlavorKind.Plural:
		if isRead(a.Verb) {
			return Allow
		}
		return DenyForbidden
	case api.HostKind.Plural:
		switch {
		case isRead(a.Verb):
			return Allow
		case (a.Verb == VerbUpdateStatus || a.Verb == VerbHeartbeat) && a.Name == self:
			return Allow
		}
		return DenyForbidden
	case api.ImageKind.Plural:
		if a.Verb == VerbGet {
			return Allow
		}
		return denyIn(a.Project)
	case api.StoragePoolKind.Plural:
		if isRead(a.Verb) {
			return Allow
		}
		return DenyForbidden
	case api.VolumeKind.Plural, api.VolumeSnapshotKind.Plural:
		// Agents keep the data of volumes (of their host, or of shared
		// pools): they read them all and report status; admission checks
		// a status write comes from the volume's host.
		if isRead(a.Verb) || a.Verb == VerbUpdateStatus {
			return Allow
		}
		return denyIn(a.Project)
	case api.EventKind.Plural:
		if a.Verb == VerbCreate {
			return Allow
		}
		return denyIn(a.Project)
	case api.HostNetworkKind.Plural:
		switch a.Verb {
		case VerbList, VerbWatch:
			// Unfiltered lists are filtered per object (VerbGet below),
			// so a host sees only its own.
			if a.Host == "" || a.Host == self {
				return Allow
			}
			return DenyForbidden
		case VerbGet, VerbUpdateStatus:
			if a.Name == self {
				return Allow
			}
			return DenyNotFound
		}
		return DenyForbidden
	case api.InstanceKind.Plural:
		switch a.Verb {
		case VerbList, VerbWatch:
			if a.Host == self {
				return Allow
			}
			return DenyForbidden
		case VerbGet, VerbUpdateStatus:
			if a.Host == self {
				return Allow
			}
			return DenyNotFound
		}
		if a.Host == self {
			return DenyForbidden
		}
		return DenyNotFound
	}
	return denyIn(a.Project)
}

// denyIn hides objects of projects and forbids the rest.
func denyIn(project string) Decision {
	if project != "" {
		return DenyNotFound
	}
	return DenyForbidden
}

func isRead(v Verb) bool { return v == VerbGet || v == VerbList || v == VerbWatch }

// rank orders roles; higher may do more.
func rank(r api.Role) int {
	switch r {
	case api.RoleAdmin:
		return 3
	case api.RoleMember:
		return 2
	case api.RoleViewer:
		return 1
	}
	return 0
}

// AtLeast reports whether role r includes the rights of min.
func AtLeast(r, min api.Role) bool { return rank(r) >= rank(min) && rank(r) > 0 }

func byRole(have, need api.Role) Decision {
	if AtLeast(have, need) {
		return Allow
	}
	if rank(have) > 0 {
		return DenyForbidden
	}
	return DenyNotFound
}

func hasRoleAnywhere(roles map[string]api.Role, min api.Role) bool {
	for _, r := range roles {
		if AtLeast(r, min) {
			return true
		}
	}
	return false
}
