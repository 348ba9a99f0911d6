package api

import (
	"encoding/json"
	"time"
)

// Stack is a set of resources of a project described in files and kept
// applied by the stack controller: it creates them in dependency order,
// records what it owns, puts back what is changed by hand (drift) unless
// told only to report it, and deletes in reverse order what the files no
// longer name and, when the stack is deleted, everything it owns.
type Stack struct {
	Kind     string      `json:"kind"`
	Metadata ObjectMeta  `json:"metadata"`
	Spec     StackSpec   `json:"spec"`
	Status   StackStatus `json:"status"`
}

// Drift modes.
const (
	// DriftCorrect puts an owned object back as the stack says (the
	// default); DriftReport only reports the difference.
	DriftCorrect = "correct"
	DriftReport  = "report"
)

// StackSpec is the rendered content of the stack's files: parameters are
// already substituted (by the CLI, from defaults, --set and values files);
// references to other resources' fields remain as "${Kind/name.path}"
// strings, resolved by the controller in dependency order.
type StackSpec struct {
	// Drift is correct (the default) or report.
	Drift string `json:"drift,omitempty"`
	// Parameters are the values the files were rendered with, for display.
	Parameters map[string]string `json:"parameters,omitempty"`
	// Resources are the documents of the files, in file order.
	Resources []StackResource `json:"resources"`
	// Outputs map an output name to an expression: a reference
	// "${Kind/name.path}" or a string containing references.
	Outputs map[string]string `json:"outputs,omitempty"`
	// AppliedBy is the user whose permissions the controller acts with:
	// set by the server to the caller of each create and update.
	AppliedBy string `json:"appliedBy,omitempty"`
}

// StackResource is one document of a stack file: an object in the API's
// shape (kind, metadata, spec) and where it was written.
type StackResource struct {
	// Kind is an API kind name (Network, SecurityGroup, KeyPair, Image,
	// Flavor, Instance, InstanceGroup, FloatingIP, LoadBalancer).
	Kind string `json:"kind"`
	// Name is metadata.name; Labels and Annotations metadata.labels and
	// metadata.annotations, kept on the object beside any others it has.
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Spec is the object's spec, with references as strings.
	Spec json.RawMessage `json:"spec,omitempty"`
	// Source is where the document starts ("web.yaml:12"), for messages.
	Source string `json:"source,omitempty"`
}

// Stack phases.
const (
	StackApplying = "Applying"
	StackApplied  = "Applied"
	StackFailed   = "Failed"
	StackDeleting = "Deleting"
)

// StackStatus is written by the stack controller.
type StackStatus struct {
	// Phase is Applying, Applied, Failed or Deleting.
	Phase string `json:"phase,omitempty"`
	// ObservedGeneration is the spec generation last applied in full.
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Resources are the objects the stack owns (recorded before each
	// create, so a crashed apply resumes without duplicates) and their
	// state.
	Resources []StackResourceStatus `json:"resources,omitempty"`
	// Outputs are the resolved outputs.
	Outputs map[string]string `json:"outputs,omitempty"`
	// Drift lists the differences found between owned objects and the
	// stack: reported ones while they last, corrected ones until the
	// stack's spec changes.
	Drift []StackDrift `json:"drift,omitempty"`
	// Message says what failed, naming the resource and its source.
	Message    string      `json:"message,omitempty"`
	Conditions []Condition `json:"conditions,omitempty"`
}

// Owned resource states.
const (
	ResourcePending  = "Pending"
	ResourceCreated  = "Created"
	ResourceUpdated  = "Updated"
	ResourceReady    = "Ready"
	ResourceFailed   = "Failed"
	ResourceDeleting = "Deleting"
)

// StackResourceStatus is one object the stack owns.
type StackResourceStatus struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// UID of the object once created.
	UID string `json:"uid,omitempty"`
	// State is Pending, Created, Updated, Ready, Failed or Deleting.
	State   string `json:"state"`
	Message string `json:"message,omitempty"`
	// AppliedHash is a hash of the rendered spec last applied, so an
	// unchanged resource is not written again.
	AppliedHash string `json:"appliedHash,omitempty"`
	// Defaulted are the fields the server stored otherwise than the stack
	// wrote them (an image name qualified with its project, say): not
	// drift while the stack says Want and the object holds Got.
	Defaulted []StackFieldValue `json:"defaulted,omitempty"`
	// DependsOn are the resources ("Kind/name") of the stack this one
	// depended on when last written, so that what it uses is deleted only
	// after it, even once the stack no longer names either. Null when not
	// recorded (an entry older than the field): such an entry is taken to
	// depend on every entry before it.
	DependsOn []string `json:"dependsOn"`
}

// StackFieldValue is a field of a spec ("spec.template.image") as the
// stack wrote it (Want) and as the server stored it (Got), as JSON.
type StackFieldValue struct {
	Field string `json:"field"`
	Want  string `json:"want,omitempty"`
	Got   string `json:"got,omitempty"`
}

// StackDrift is one field of an owned object that differs from the stack.
type StackDrift struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Field is a path like "spec.count" or "spec.rules[2]"; "" when the
	// object is missing.
	Field string `json:"field,omitempty"`
	// Want and Got are the stack's and the object's values (JSON).
	Want string `json:"want,omitempty"`
	Got  string `json:"got,omitempty"`
	// Corrected is true when the controller put it back.
	Corrected bool       `json:"corrected,omitempty"`
	Seen      *time.Time `json:"seen,omitempty"`
}

// LabelStack names the stack that owns an object (its project is the
// object's, or the stack's for cluster-scoped objects such as flavors,
// with LabelStackProject).
const (
	LabelStack        = "ouro.dev/stack"
	LabelStackProject = "ouro.dev/stack-project"
)

// FinalizerStack holds a deleted stack while it deletes what it owns.
const FinalizerStack = "ouro.dev/stack-delete"

// Meta returns the stack's metadata.
func (o *Stack) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns StackKind.
func (o *Stack) GetKind() *Kind { return StackKind }
