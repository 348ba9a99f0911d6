package api

import "time"

// HostPhase is the health of a host as the control plane sees it.
type HostPhase string

// Host phases.
const (
	// HostReady hosts heartbeat within their lease and take instances.
	HostReady HostPhase = "Ready"
	// HostNotReady hosts missed their lease; nothing new is placed there.
	HostNotReady HostPhase = "NotReady"
)

// ZoneDefault is the availability zone of hosts without LabelZone.
const ZoneDefault = "default"

// Well-known host labels and taints.
const (
	// LabelHollow marks a simulated host (see "hollow hosts" in the docs).
	LabelHollow = "ouro.dev/hollow"
	// LabelZone names the availability zone of a host; instance metadata
	// reports it (ZoneDefault when the host has none).
	LabelZone = "ouro.dev/zone"
	// TaintHollow keeps real workloads off hollow hosts: only instances that
	// tolerate it are placed there.
	TaintHollow = "ouro.dev/hollow"
)

// Host is a machine that runs an agent.
type Host struct {
	Kind     string     `json:"kind"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     HostSpec   `json:"spec"`
	Status   HostStatus `json:"status"`
}

// HostSpec is what the operator asks of a host.
type HostSpec struct {
	// Unschedulable hosts keep their instances but get no new ones.
	Unschedulable bool `json:"unschedulable,omitempty"`
	// Taints keep instances off the host unless they tolerate every taint
	// (by key).
	Taints []string `json:"taints,omitempty"`
}

// HostStatus is what the agent and the host controller report.
type HostStatus struct {
	Phase HostPhase `json:"phase,omitempty"`
	// Address is the host's underlay address (agent --advertise-address).
	Address string `json:"address,omitempty"`
	// AgentEndpoint is the https URL of the agent's own API (logs, exec),
	// reached by servers only.
	AgentEndpoint string `json:"agentEndpoint,omitempty"`
	// Capacity is what the host offers to instances.
	Capacity Resources `json:"capacity"`
	// Allocated is the sum of the resources of the instances placed on the
	// host, kept by the scheduler.
	Allocated Resources `json:"allocated"`
	// Architecture as Go names it: amd64, arm64.
	Architecture string `json:"architecture,omitempty"`
	// Drivers the host can run instances with, e.g. ["container"].
	Drivers      []string `json:"drivers,omitempty"`
	AgentVersion string   `json:"agentVersion,omitempty"`
	// AgentStartTime is when the agent process now running started: it
	// changes when the agent restarts, while the phase may stay Ready.
	AgentStartTime time.Time   `json:"agentStartTime,omitzero"`
	Conditions     []Condition `json:"conditions,omitempty"`
}

// Meta returns the host's metadata.
func (o *Host) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns HostKind.
func (o *Host) GetKind() *Kind { return HostKind }

// Flavor is a named size of instance.
type Flavor struct {
	Kind     string       `json:"kind"`
	Metadata ObjectMeta   `json:"metadata"`
	Spec     Resources    `json:"spec"`
	Status   FlavorStatus `json:"status"`
}

// FlavorStatus is empty for now.
type FlavorStatus struct{}

// Meta returns the flavor's metadata.
func (o *Flavor) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns FlavorKind.
func (o *Flavor) GetKind() *Kind { return FlavorKind }

// DrainResponse answers POST /v1/hosts/{name}/drain: the host is cordoned
// (spec.unschedulable) and the members of instance groups on it are
// deleted, so their groups replace them on other hosts.
type DrainResponse struct {
	Host string `json:"host"`
	// Deleted lists the group members being deleted, as "project/name".
	Deleted []string `json:"deleted"`
	// Kept lists the instances that stay on the host, as "project/name":
	// they belong to no group, so nothing would replace them.
	Kept []string `json:"kept"`
}
