package api

import (
	"strconv"
	"time"
)

// Labels the group controller puts on its members.
const (
	// LabelGroup holds the name of the group an instance belongs to.
	LabelGroup = "ouro.dev/group"
	// LabelRevision holds the group template revision a member was made
	// from.
	LabelRevision = "ouro.dev/revision"
	// LabelGroupUID holds the UID of the group a member belongs to, so
	// that members of a deleted group are told apart from those of a new
	// group of the same name.
	LabelGroupUID = "ouro.dev/group-uid"
)

// Defaults and bounds of instance groups.
const (
	// MaxGroupCount bounds a group's count and autoscaling max.
	MaxGroupCount = 1000
	// DefaultMaxSurge and DefaultMaxUnavailable bound a rolling update
	// when the spec leaves them out.
	DefaultMaxSurge       = 1
	DefaultMaxUnavailable = 0
	// DefaultProgressDeadlineSeconds pauses a rollout that made no
	// progress for this long.
	DefaultProgressDeadlineSeconds = 300
	// DefaultScaleInStabilizationSeconds is the autoscaler's scale-in
	// window.
	DefaultScaleInStabilizationSeconds = 300
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
	// VolumeTemplates give each member of a stateful group volumes of its
	// own, named <member>-<template>: made with the member, and kept, with
	// their data, when the member is replaced (the replacement gets them
	// back by name) and when the group is deleted.
	VolumeTemplates []VolumeTemplate `json:"volumeTemplates,omitempty"`
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
	// HealthLoadBalancer trusts a load balancer's checks of the member:
	// a member the load balancer LoadBalancer finds down is unhealthy.
	HealthLoadBalancer = "loadBalancer"
)

// HealthCheck decides whether an instance is healthy. The instance's agent
// probes it from inside the instance's network: "running" (the default)
// trusts the instance phase; "tcp" connects to Port; "http" gets Path on
// Port and wants a 2xx or 3xx answer.
type HealthCheck struct {
	Kind string `json:"kind,omitempty"`
	Port int    `json:"port,omitempty"`
	Path string `json:"path,omitempty"`
	// LoadBalancer names the project's load balancer whose member health
	// decides, for kind "loadBalancer".
	LoadBalancer string `json:"loadBalancer,omitempty"`
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

// Surge returns MaxSurge or its default.
func (p UpdatePolicy) Surge() int {
	if p.MaxSurge == nil {
		return DefaultMaxSurge
	}
	return *p.MaxSurge
}

// Unavailable returns MaxUnavailable or its default.
func (p UpdatePolicy) Unavailable() int {
	if p.MaxUnavailable == nil {
		return DefaultMaxUnavailable
	}
	return *p.MaxUnavailable
}

// ProgressDeadline returns ProgressDeadlineSeconds or its default.
func (p UpdatePolicy) ProgressDeadline() time.Duration {
	if p.ProgressDeadlineSeconds <= 0 {
		return DefaultProgressDeadlineSeconds * time.Second
	}
	return time.Duration(p.ProgressDeadlineSeconds) * time.Second
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

// Stabilization returns ScaleInStabilizationSeconds or its default.
func (a Autoscaling) Stabilization() time.Duration {
	if a.ScaleInStabilizationSeconds <= 0 {
		return DefaultScaleInStabilizationSeconds * time.Second
	}
	return time.Duration(a.ScaleInStabilizationSeconds) * time.Second
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
	Rollout       string `json:"rollout,omitempty"`
	RolloutReason string `json:"rolloutReason,omitempty"`
	// RolloutProgressTime is when the rollout last made progress (it
	// started, or one more member of the current revision became
	// available); the progress deadline counts from it.
	RolloutProgressTime *time.Time `json:"rolloutProgressTime,omitempty"`
	// LastScaleTime is when the autoscaler last changed Desired.
	LastScaleTime *time.Time `json:"lastScaleTime,omitempty"`
	// MemberAddresses keeps, for stateful groups, the addresses of each
	// member (one per network, in order) so that a replacement gets them
	// back after the member it replaces is gone.
	MemberAddresses map[string][]string `json:"memberAddresses,omitempty"`
	Conditions      []Condition         `json:"conditions,omitempty"`
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

// MemberName returns the name of the group's member with index i:
// "<group>-<i>".
func (o *InstanceGroup) MemberName(i int) string {
	return o.Metadata.Name + "-" + strconv.Itoa(i)
}

// MemberSpec returns the spec of a member made from the group's template:
// the template's fields, the group's health check, and a placement that
// spreads members (anti-affinity key = the group's name, soft unless the
// group asks for hard) on the hosts the group's selector allows.
func (o *InstanceGroup) MemberSpec() InstanceSpec {
	t := o.Spec.Template
	spec := InstanceSpec{
		Image:         t.Image,
		Flavor:        t.Flavor,
		Command:       append([]string(nil), t.Command...),
		Env:           append([]string(nil), t.Env...),
		Tolerations:   append([]string(nil), t.Tolerations...),
		KeyName:       t.KeyName,
		UserData:      t.UserData,
		RestartPolicy: t.RestartPolicy,
		Placement: &Placement{
			HostSelector:    o.Spec.Placement.HostSelector,
			AntiAffinityKey: o.Metadata.Name,
			AntiAffinity:    o.Spec.Placement.AntiAffinity,
		},
	}
	if spec.Placement.AntiAffinity == "" {
		spec.Placement.AntiAffinity = AntiAffinitySoft
	}
	for _, n := range t.Networks {
		n.SecurityGroups = append([]string(nil), n.SecurityGroups...)
		spec.Networks = append(spec.Networks, n)
	}
	if o.Spec.HealthCheck != (HealthCheck{}) {
		hc := o.Spec.HealthCheck
		spec.HealthCheck = &hc
	}
	return spec
}

// Probed reports whether the health check probes members (tcp or http),
// so that a member counts as available only once condition Healthy is
// true; otherwise running is enough. A loadBalancer check is not probed:
// the group controller reads the load balancer's status.members instead.
func (h HealthCheck) Probed() bool {
	return h.Kind == HealthTCP || h.Kind == HealthHTTP
}

// VolumeTemplate is a volume every member of a stateful group has.
type VolumeTemplate struct {
	// Name tells the member's volumes apart: the volume of member db-0
	// from template data is db-0-data.
	Name      string `json:"name"`
	SizeBytes int64  `json:"sizeBytes"`
	Pool      string `json:"pool"`
	// Path (containers) and Boot (VMs) as in an instance's volumes.
	Path string `json:"path,omitempty"`
	Boot bool   `json:"boot,omitempty"`
}

// MemberVolume returns the name of member's volume from template.
func MemberVolume(member, template string) string { return member + "-" + template }
