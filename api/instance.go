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
	// ReasonNetworkUnavailable: a network of the instance could not be
	// set up on its host; the instance waits for it (the message says
	// which network and why).
	ReasonNetworkUnavailable = "NetworkUnavailable"
)

// Condition types of an instance.
const (
	// ConditionScheduled is true once a host was chosen; false with reason
	// InsufficientCapacity while nothing fits.
	ConditionScheduled = "Scheduled"
	// ConditionReady is true while the instance runs.
	ConditionReady = "Ready"
	// ConditionHealthy is the result of the instance's health check.
	ConditionHealthy = "Healthy"
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
	// KeyName names a KeyPair of the project. The server copies its public
	// key into PublicKeys at create, so deleting the key pair later does
	// not change the instance.
	KeyName    string   `json:"keyName,omitempty"`
	PublicKeys []string `json:"publicKeys,omitempty"`
	// UserData is handed to cloud-init (NoCloud seed and metadata service
	// /latest/user-data); at most 16 KiB.
	UserData string `json:"userData,omitempty"`
	// RestartPolicy says what the agent does when the instance's process
	// (or guest) ends by itself: Always (the default), OnFailure or Never.
	RestartPolicy RestartPolicy `json:"restartPolicy,omitempty"`
	// Placement constrains where the scheduler puts the instance.
	Placement *Placement `json:"placement,omitempty"`
	// HealthCheck, when set, is probed by the instance's agent, which
	// reports the result as condition Healthy.
	HealthCheck *HealthCheck `json:"healthCheck,omitempty"`
	// Volumes are the project's volumes the instance uses; each is held
	// by one instance at a time. Deleting the instance detaches them.
	Volumes []InstanceVolume `json:"volumes,omitempty"`
}

// RestartPolicy is what happens when an instance ends by itself.
type RestartPolicy string

// Restart policies.
const (
	RestartAlways    RestartPolicy = "Always"
	RestartOnFailure RestartPolicy = "OnFailure"
	RestartNever     RestartPolicy = "Never"
)

// Placement constrains the hosts an instance may run on.
type Placement struct {
	// HostSelector keeps the instance on hosts whose labels match (the
	// label selector syntax of list requests: "k=v,k2!=v2").
	HostSelector string `json:"hostSelector,omitempty"`
	// AntiAffinityKey: instances of the project with the same key avoid
	// sharing a host. Groups set it to their name.
	AntiAffinityKey string `json:"antiAffinityKey,omitempty"`
	// AntiAffinity is "hard" (never share a host: stay Pending instead) or
	// "soft" (prefer other hosts, the default when a key is set).
	AntiAffinity string `json:"antiAffinity,omitempty"`
	// Host pins the instance to one host. The server sets it for an
	// instance using local volumes, which live on that host.
	Host string `json:"host,omitempty"`
}

// Anti-affinity modes.
const (
	AntiAffinityHard = "hard"
	AntiAffinitySoft = "soft"
)

// NetworkAttachment asks for an interface on a network.
type NetworkAttachment struct {
	Network        string   `json:"network"`
	SecurityGroups []string `json:"securityGroups,omitempty"`
	// IP asks for this address; empty takes a free one. Stateful group
	// members keep their addresses across replacement this way.
	IP string `json:"ip,omitempty"`
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
	// NextRestartAt is when the agent restarts an instance it is backing
	// off (reason CrashLoop or ImageFetchFailed).
	NextRestartAt *time.Time `json:"nextRestartAt,omitempty"`
	// Usage is the instance's resource use as its agent last sampled it.
	Usage *Usage `json:"usage,omitempty"`
}

// Usage is a sample of an instance's resource use.
type Usage struct {
	// CPUMillicores is CPU time used per second over the last sample
	// period, in thousandths of a vCPU (1000 = one vCPU busy).
	CPUMillicores int64 `json:"cpuMillicores"`
	// CPUPercent is CPUMillicores relative to the instance's vCPUs (0–100).
	CPUPercent float64   `json:"cpuPercent"`
	SampledAt  time.Time `json:"sampledAt"`
}

// Meta returns the instance's metadata.
func (o *Instance) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns InstanceKind.
func (o *Instance) GetKind() *Kind { return InstanceKind }

// WantsRunning reports whether the user wants the instance powered on.
func (o *Instance) WantsRunning() bool {
	return o.Spec.PowerState == "" || o.Spec.PowerState == PowerOn
}
