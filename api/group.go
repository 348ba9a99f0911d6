package api

import "time"

// Labels the group controller puts on its members.
const (
	// LabelGroup holds the name of the group an instance belongs to.
	LabelGroup = "ouro.dev/group"
	// LabelRevision holds the group template revision a member was made
	// from.
	LabelRevision = "ouro.dev/revision"
)

// InstanceGroup keeps a number of like instances running: it replaces
// members lost with their host, rolls template changes out a few members
// at a time gated on health, and scales on CPU use.
type InstanceGroup struct {
	Kind     string              `json:"kind"`
	Metadata ObjectMeta          `json:"metadata"`
	Spec     InstanceGroupSpec   `json:"spec"`
	Status   InstanceGroupStatus `json:"status"`
}

// InstanceGroupSpec is what the user asks of a group.
type InstanceGroupSpec struct {
	// Template is the spec every member is made from. Its placement's
	// anti-affinity key is set to the group's name.
	Template InstanceTemplate `json:"template"`
	// Count is the desired number of members (without autoscaling, or
	// the starting point with it).
	Count int `json:"count"`
	// Stateful members keep their names and addresses when replaced, and
	// a replacement starts only once the member it replaces is fenced.
	Stateful bool `json:"stateful,omitempty"`
	// Placement of members: hostSelector and antiAffinity (hard or soft;
	// soft by default: members spread across hosts when they can).
	Placement   Placement    `json:"placement,omitempty"`
	HealthCheck HealthCheck  `json:"healthCheck,omitempty"`
	Update      UpdatePolicy `json:"update,omitempty"`
	// Autoscaling, when set, moves the count between min and max to keep
	// the members' mean CPU use near the target.
	Autoscaling *Autoscaling `json:"autoscaling,omitempty"`
	// Paused stops a rollout where it is (ouro group rollout pause).
	Paused bool `json:"paused,omitempty"`
}

// InstanceTemplate is the part of an instance spec a group stamps out.
type InstanceTemplate struct {
	Labels        map[string]string   `json:"labels,omitempty"`
	Image         string              `json:"image"`
	Flavor        string              `json:"flavor"`
	Command       []string            `json:"command,omitempty"`
	Env           []string            `json:"env,omitempty"`
	Networks      []NetworkAttachment `json:"networks,omitempty"`
	KeyName       string              `json:"keyName,omitempty"`
	UserData      string              `json:"userData,omitempty"`
	Tolerations   []string            `json:"tolerations,omitempty"`
	RestartPolicy RestartPolicy       `json:"restartPolicy,omitempty"`
}

// Health check kinds.
const (
	HealthRunning = "running"
	HealthTCP     = "tcp"
	HealthHTTP    = "http"
)

// HealthCheck decides whether an instance is healthy. The instance's agent
// probes it from inside the instance's network: "running" (the default)
// trusts the instance phase; "tcp" connects to Port; "http" gets Path on
// Port and wants a 2xx or 3xx answer.
type HealthCheck struct {
	Kind string `json:"kind,omitempty"`
	Port int    `json:"port,omitempty"`
	Path string `json:"path,omitempty"`
	// IntervalSeconds between probes (default 2), TimeoutSeconds per probe
	// (default 1), FailureThreshold failed probes in a row before an
	// instance is unhealthy (default 3).
	IntervalSeconds  int `json:"intervalSeconds,omitempty"`
	TimeoutSeconds   int `json:"timeoutSeconds,omitempty"`
	FailureThreshold int `json:"failureThreshold,omitempty"`
}

// UpdatePolicy bounds a rolling update.
type UpdatePolicy struct {
	// MaxSurge members may exist above the count during a rollout
	// (default 1); MaxUnavailable members may be unhealthy (default 0).
	// They cannot both be 0.
	MaxSurge       *int `json:"maxSurge,omitempty"`
	MaxUnavailable *int `json:"maxUnavailable,omitempty"`
	// ProgressDeadlineSeconds: a rollout that makes no progress for this
	// long pauses with reason ProgressDeadlineExceeded (default 300).
	ProgressDeadlineSeconds int `json:"progressDeadlineSeconds,omitempty"`
}

// Autoscaling moves a group's count between Min and Max.
type Autoscaling struct {
	Min int `json:"min"`
	Max int `json:"max"`
	// TargetCPUPercent is the mean member CPU use to aim at (1–100).
	TargetCPUPercent int `json:"targetCPUPercent"`
	// ScaleInStabilizationSeconds: the count only goes down to the
	// highest recommendation of this window (default 300).
	ScaleInStabilizationSeconds int `json:"scaleInStabilizationSeconds,omitempty"`
}

// InstanceGroupStatus is what the group controller reports.
type InstanceGroupStatus struct {
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Desired is the count the controller works toward (the spec's, or the
	// autoscaler's).
	Desired int `json:"desired"`
	// Members counts existing members; Running those running; Healthy those
	// passing the health check; Updated those of the current revision.
	Members int `json:"members"`
	Running int `json:"running"`
	Healthy int `json:"healthy"`
	Updated int `json:"updated"`
	// Revision is the number of the current template; Revisions keeps
	// recent templates for undo, newest last.
	Revision  int64           `json:"revision,omitempty"`
	Revisions []GroupRevision `json:"revisions,omitempty"`
	// Rollout is "Complete", "Progressing" or "Paused" (with a reason).
	Rollout       string      `json:"rollout,omitempty"`
	RolloutReason string      `json:"rolloutReason,omitempty"`
	LastScaleTime *time.Time  `json:"lastScaleTime,omitempty"`
	Conditions    []Condition `json:"conditions,omitempty"`
}

// GroupRevision is one template a group has run.
type GroupRevision struct {
	Revision int64            `json:"revision"`
	Template InstanceTemplate `json:"template"`
	Created  time.Time        `json:"created"`
}

// Rollout states.
const (
	RolloutComplete    = "Complete"
	RolloutProgressing = "Progressing"
	RolloutPaused      = "Paused"
)

// Meta returns the group's metadata.
func (o *InstanceGroup) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns InstanceGroupKind.
func (o *InstanceGroup) GetKind() *Kind { return InstanceGroupKind }
