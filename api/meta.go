package api

import (
	"time"
)

// Version is the API version served under /v1.
const Version = "v1"

// ObjectMeta is the metadata every resource carries.
type ObjectMeta struct {
	// Name is unique per kind within a project (or cluster-wide for
	// cluster-scoped kinds).
	Name string `json:"name"`
	// Project is empty for cluster-scoped kinds.
	Project string `json:"project,omitempty"`
	// UID is assigned by the server on create and never changes.
	UID string `json:"uid,omitempty"`
	// Generation increases each time the spec changes.
	Generation int64 `json:"generation,omitempty"`
	// ResourceVersion is the etcd modification revision of the object; an
	// update must carry the version it read (optimistic concurrency).
	ResourceVersion string `json:"resourceVersion,omitempty"`
	// Labels are free-form key/value pairs used by selectors.
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations are free-text notes on the object: any UTF-8 key and
	// value within ValidateAnnotations' limits, not matched by selectors.
	// EC2 tags that a label cannot hold are kept here.
	Annotations map[string]string `json:"annotations,omitempty"`
	// CreationTimestamp is set by the server on create.
	CreationTimestamp time.Time `json:"creationTimestamp,omitempty"`
	// DeletionTimestamp is set when deletion was requested but cleanup (for
	// example on an agent) is still under way.
	DeletionTimestamp *time.Time `json:"deletionTimestamp,omitempty"`
	// Finalizers name the controllers that must finish their work before
	// a deleted object goes away. On an instance they hold the stop: a
	// load balancer drains a leaving member before its agent stops it.
	// Only the server's controllers set them.
	Finalizers []string `json:"finalizers,omitempty"`
}

// FinalizerLoadBalancer holds a deleted instance running while load
// balancers drain it.
const FinalizerLoadBalancer = "ouro.dev/loadbalancer-drain"

// Object is implemented by every resource type.
type Object interface {
	// Meta returns the object's metadata for reading and writing.
	Meta() *ObjectMeta
	// GetKind returns the kind descriptor of the object.
	GetKind() *Kind
}

// ListMeta is the metadata of a list response.
type ListMeta struct {
	// ResourceVersion is the store revision the list was read at; a watch
	// started from it misses nothing.
	ResourceVersion string `json:"resourceVersion,omitempty"`
	// Continue is an opaque token for the next page; empty on the last page.
	Continue string `json:"continue,omitempty"`
}

// List is the body of a list response.
type List[T any] struct {
	Kind     string   `json:"kind"`
	Metadata ListMeta `json:"metadata"`
	Items    []T      `json:"items"`
}

// EventType names what happened to an object in a watch stream.
type EventType string

// Watch event types.
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
	// Bookmark carries only a resourceVersion: the stream is alive and the
	// client may resume from there.
	Bookmark EventType = "BOOKMARK"
	// ErrorEvent ends a stream; its object is an Error body. A client that
	// sees code Gone must list again.
	ErrorEvent EventType = "ERROR"
)

// WatchEvent is one line of a watch stream (newline-delimited JSON).
type WatchEvent[T any] struct {
	Type   EventType `json:"type"`
	Object T         `json:"object"`
}

// Condition is one aspect of an object's state with the time it last changed.
type Condition struct {
	Type               string    `json:"type"`
	Status             bool      `json:"status"`
	Reason             string    `json:"reason,omitempty"`
	Message            string    `json:"message,omitempty"`
	LastTransitionTime time.Time `json:"lastTransitionTime"`
}

// SetCondition sets or replaces the condition of c's type in conds. The
// transition time changes only when the status flips.
func SetCondition(conds []Condition, c Condition, now time.Time) []Condition {
	for i := range conds {
		if conds[i].Type == c.Type {
			if conds[i].Status != c.Status {
				c.LastTransitionTime = now
			} else {
				c.LastTransitionTime = conds[i].LastTransitionTime
			}
			conds[i] = c
			return conds
		}
	}
	c.LastTransitionTime = now
	return append(conds, c)
}

// FindCondition returns the condition of the given type, or nil.
func FindCondition(conds []Condition, typ string) *Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

// Resources is an amount of compute: what a flavor asks for and what a host
// offers.
type Resources struct {
	VCPUs     int   `json:"vcpus"`
	MemoryMiB int64 `json:"memoryMiB"`
	DiskGiB   int64 `json:"diskGiB"`
}

// Fits reports whether r fits into free.
func (r Resources) Fits(free Resources) bool {
	return r.VCPUs <= free.VCPUs && r.MemoryMiB <= free.MemoryMiB && r.DiskGiB <= free.DiskGiB
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{r.VCPUs + o.VCPUs, r.MemoryMiB + o.MemoryMiB, r.DiskGiB + o.DiskGiB}
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{r.VCPUs - o.VCPUs, r.MemoryMiB - o.MemoryMiB, r.DiskGiB - o.DiskGiB}
}

// ObjectRef points at another object.
type ObjectRef struct {
	Kind    string `json:"kind"`
	Project string `json:"project,omitempty"`
	Name    string `json:"name"`
	UID     string `json:"uid,omitempty"`
}
