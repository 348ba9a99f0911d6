package api

import "time"

// InstancePhase is where an instance is in its life.
//
//	Pending ─▶ Scheduled ─▶ Provisioning ─▶ Starting ─▶ Running ─▶ Stopping ─▶ Stopped
//	   │                                                  ▲                      │
//	   │                                                  └──────── start ───────┘
//	   └─▶ (any) ─▶ Terminating ─▶ Terminated          Failed (with a reason)
type InstancePhase string

// Instance phases.
const (
	PhasePending      InstancePhase = "Pending"
	PhaseScheduled    InstancePhase = "Scheduled"
	PhaseProvisioning InstancePhase = "Provisioning"
	PhaseStarting     InstancePhase = "Starting"
	PhaseRunning      InstancePhase = "Running"
	PhaseStopping     InstancePhase = "Stopping"
	PhaseStopped      InstancePhase = "Stopped"
	PhaseTerminating  InstancePhase = "Terminating"
	PhaseTerminated   InstancePhase = "Terminated"
	PhaseFailed       InstancePhase = "Failed"
)

// Reasons carried by instance status and conditions.
const (
	ReasonInsufficientCapacity = "InsufficientCapacity"
	ReasonImageFetchFailed     = "ImageFetchFailed"
	ReasonCrashLoop            = "CrashLoop"
	ReasonHostLost             = "HostLost"
	ReasonExited               = "Exited"
	ReasonDriverError          = "DriverError"
)

// Condition types of an instance.
const (
	// ConditionScheduled is true once a host was chosen; false with reason
	// InsufficientCapacity while nothing fits.
	ConditionScheduled = "Scheduled"
	// ConditionReady is true while the instance runs.
	ConditionReady = "Ready"
)

// PowerState is the state the user wants an instance in.
type PowerState string

// Power states.
const (
	PowerOn  PowerState = "Running"
	PowerOff PowerState = "Stopped"
)

// Instance is a container or virtual machine.
type Instance struct {
	Kind     string         `json:"kind"`
	Metadata ObjectMeta     `json:"metadata"`
	Spec     InstanceSpec   `json:"spec"`
	Status   InstanceStatus `json:"status"`
}

// InstanceSpec is what the user asks for.
type InstanceSpec struct {
	// Image is "name" (own project, then public images) on input; the
	// server stores it as "project/name".
	Image string `json:"image"`
	// Flavor names the size; the server copies its resources into
	// Resources at create, so later flavor edits do not move instances.
	Flavor    string    `json:"flavor"`
	Resources Resources `json:"resources"`
	// Command replaces the image's entrypoint and cmd when not empty.
	Command []string `json:"command,omitempty"`
	// Env adds KEY=VALUE variables to the image's.
	Env []string `json:"env,omitempty"`
	// PowerState is Running (the default) or Stopped.
	PowerState PowerState `json:"powerState,omitempty"`
	// RebootRequests counts reboots asked for; the agent reboots while
	// status.observedReboots is lower.
	RebootRequests int64 `json:"rebootRequests,omitempty"`
	// Tolerations lists host taints (by key) the instance accepts.
	Tolerations []string `json:"tolerations,omitempty"`
	// Networks the instance attaches to, in order (first is primary).
	Networks []NetworkAttachment `json:"networks,omitempty"`
}

// NetworkAttachment asks for an interface on a network.
type NetworkAttachment struct {
	Network        string   `json:"network"`
	SecurityGroups []string `json:"securityGroups,omitempty"`
}

// Interface is a network interface as it exists.
type Interface struct {
	Network string `json:"network"`
	MAC     string `json:"mac,omitempty"`
	IP      string `json:"ip,omitempty"`
}

// InstanceStatus is what the scheduler and the agent report.
type InstanceStatus struct {
	Phase   InstancePhase `json:"phase,omitempty"`
	Reason  string        `json:"reason,omitempty"`
	Message string        `json:"message,omitempty"`
	// Host is where the instance is placed; set once by the scheduler.
	Host string `json:"host,omitempty"`
	// Driver runs the instance: "container" or "vm".
	Driver string `json:"driver,omitempty"`
	// ObservedReboots is the spec.rebootRequests the agent last acted on.
	ObservedReboots int64 `json:"observedReboots,omitempty"`
	// ObservedGeneration is the spec generation the agent last acted on.
	ObservedGeneration int64       `json:"observedGeneration,omitempty"`
	StartedAt          *time.Time  `json:"startedAt,omitempty"`
	FinishedAt         *time.Time  `json:"finishedAt,omitempty"`
	ExitCode           *int        `json:"exitCode,omitempty"`
	RestartCount       int32       `json:"restartCount,omitempty"`
	Interfaces         []Interface `json:"interfaces,omitempty"`
	Conditions         []Condition `json:"conditions,omitempty"`
}

// Meta returns the instance's metadata.
func (o *Instance) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns InstanceKind.
func (o *Instance) GetKind() *Kind { return InstanceKind }

// WantsRunning reports whether the user wants the instance powered on.
func (o *Instance) WantsRunning() bool {
	return o.Spec.PowerState == "" || o.Spec.PowerState == PowerOn
}
