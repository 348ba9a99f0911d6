package api

import (
	"fmt"
	"sort"
)

// Kind describes one resource type: its name, its URL plural and whether
// it lives inside a project.
type Kind struct {
	// Name is the singular type name, e.g. "Instance".
	Name string
	// Plural is the URL path segment, e.g. "instances".
	Plural string
	// Namespaced kinds live in a project: /v1/projects/{project}/{plural}.
	// Cluster-scoped kinds live at /v1/{plural}.
	Namespaced bool
	// New returns a zero object of the kind.
	New func() Object
}

// String returns the kind's name.
func (k *Kind) String() string { return k.Name }

var kinds = map[string]*Kind{}

// register adds a kind; a duplicate name or plural is a programming error.
func register(k *Kind) *Kind {
	for _, o := range kinds {
		if o.Name == k.Name || o.Plural == k.Plural {
			panic(fmt.Sprintf("api: kind %s registered twice", k.Name))
		}
	}
	kinds[k.Plural] = k
	return k
}

// KindByPlural returns the kind served under a URL plural, or nil.
func KindByPlural(plural string) *Kind { return kinds[plural] }

// Kinds returns all registered kinds sorted by name.
func Kinds() []*Kind {
	out := make([]*Kind, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// The kinds of API v1.
var (
	ProjectKind   = register(&Kind{Name: "Project", Plural: "projects", New: func() Object { return &Project{} }})
	UserKind      = register(&Kind{Name: "User", Plural: "users", New: func() Object { return &User{} }})
	TokenKind     = register(&Kind{Name: "Token", Plural: "tokens", New: func() Object { return &Token{} }})
	JoinTokenKind = register(&Kind{Name: "JoinToken", Plural: "jointokens", New: func() Object { return &JoinToken{} }})
	HostKind      = register(&Kind{Name: "Host", Plural: "hosts", New: func() Object { return &Host{} }})
	FlavorKind    = register(&Kind{Name: "Flavor", Plural: "flavors", New: func() Object { return &Flavor{} }})
	ImageKind     = register(&Kind{Name: "Image", Plural: "images", Namespaced: true, New: func() Object { return &Image{} }})
	InstanceKind  = register(&Kind{Name: "Instance", Plural: "instances", Namespaced: true, New: func() Object { return &Instance{} }})
	EventKind     = register(&Kind{Name: "Event", Plural: "events", Namespaced: true, New: func() Object { return &Event{} }})

	VPCKind            = register(&Kind{Name: "VPC", Plural: "vpcs", Namespaced: true, New: func() Object { return &VPC{} }})
	NetworkKind        = register(&Kind{Name: "Network", Plural: "networks", Namespaced: true, New: func() Object { return &Network{} }})
	SecurityGroupKind  = register(&Kind{Name: "SecurityGroup", Plural: "securitygroups", Namespaced: true, New: func() Object { return &SecurityGroup{} }})
	FloatingIPKind     = register(&Kind{Name: "FloatingIP", Plural: "floatingips", Namespaced: true, New: func() Object { return &FloatingIP{} }})
	FloatingIPPoolKind = register(&Kind{Name: "FloatingIPPool", Plural: "floatingippools", New: func() Object { return &FloatingIPPool{} }})
	HostNetworkKind    = register(&Kind{Name: "HostNetwork", Plural: "hostnetworks", New: func() Object { return &HostNetwork{} }})

	KeyPairKind       = register(&Kind{Name: "KeyPair", Plural: "keypairs", Namespaced: true, New: func() Object { return &KeyPair{} }})
	InstanceGroupKind = register(&Kind{Name: "InstanceGroup", Plural: "instancegroups", Namespaced: true, New: func() Object { return &InstanceGroup{} }})
	LoadBalancerKind  = register(&Kind{Name: "LoadBalancer", Plural: "loadbalancers", Namespaced: true, New: func() Object { return &LoadBalancer{} }})
	StackKind         = register(&Kind{Name: "Stack", Plural: "stacks", Namespaced: true, New: func() Object { return &Stack{} }})
	AccessKeyKind     = register(&Kind{Name: "AccessKey", Plural: "accesskeys", New: func() Object { return &AccessKey{} }})

	StoragePoolKind    = register(&Kind{Name: "StoragePool", Plural: "storagepools", New: func() Object { return &StoragePool{} }})
	VolumeKind         = register(&Kind{Name: "Volume", Plural: "volumes", Namespaced: true, New: func() Object { return &Volume{} }})
	VolumeSnapshotKind = register(&Kind{Name: "VolumeSnapshot", Plural: "volumesnapshots", Namespaced: true, New: func() Object { return &VolumeSnapshot{} }})
)
