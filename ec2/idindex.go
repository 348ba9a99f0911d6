package ec2

import (
	"sync"

	"github.com/ouroboros-cloud/ouro/api"
)

// maxIndexed bounds the ids the index keeps; past it, it starts afresh.
const maxIndexed = 1 << 20

// idIndex remembers which object an EC2 id names, so that finding an
// object by id reads that one object instead of listing and hashing the
// project's objects of its kind. Ids are derived from UIDs (ID), so the
// index cannot be computed from a name: it learns ids when objects are
// created through this server and when a lookup had to list. It is a
// hint, never trusted: a lookup reads the named object and checks that
// its id is the one asked for, and lists as before when the index has
// nothing or is wrong (the object was deleted, or recreated with a new
// UID). Every server keeps its own; none needs another's.
type idIndex struct {
	mu    sync.Mutex
	names map[idKey]string
}

type idKey struct{ project, kind, id string }

func newIDIndex() *idIndex { return &idIndex{names: map[idKey]string{}} }

func (x *idIndex) get(project string, k *api.Kind, id string) (string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	name, ok := x.names[idKey{project, k.Name, id}]
	return name, ok
}

func (x *idIndex) put(project string, k *api.Kind, id, name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.names) >= maxIndexed {
		clear(x.names)
	}
	x.names[idKey{project, k.Name, id}] = name
}

func (x *idIndex) forget(project string, k *api.Kind, id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.names, idKey{project, k.Name, id})
}

// primaryPrefix is the id prefix of each kind's objects themselves, the
// one the index learns on create.
var primaryPrefix = map[*api.Kind]string{
	api.InstanceKind:      PrefixInstance,
	api.SecurityGroupKind: PrefixSecurityGroup,
	api.KeyPairKind:       PrefixKeyPair,
	api.FloatingIPKind:    PrefixAllocation,
	api.NetworkKind:       PrefixSubnet,
	api.VPCKind:           PrefixVPC,
}
