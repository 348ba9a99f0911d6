package api

import "time"

// Views of a list: a list asked for with ?view=NAME answers, for each
// object, only the fields a client of that view reads, under the object's
// own field names (a smaller Instance, not a table of strings), so that a
// client decodes it into the same type and prints or draws it as before.
// A field a view leaves out is absent from the answer, as are empty ones,
// never a different value; the items carry no kind (the list names it).
// Views change no access rule: a list with a view holds the same objects
// as the list without one.
const (
	// ViewTable holds the fields the CLI prints in its tables.
	ViewTable = "table"
	// ViewMap holds the fields the web console's map draws.
	ViewMap = "map"
)

// A View makes the smaller form of an object a view answers.
type View struct {
	// Name is what ?view= says.
	Name string
	// Of returns the view of obj, an object prepared for output, as a
	// value to encode as JSON; it decodes into obj's type. It must not
	// modify obj.
	Of func(obj Object) any
}

// views holds each kind's views. Every kind the CLI lists with a table
// has ViewTable.
var views = map[*Kind][]*View{
	InstanceKind: {
		{Name: ViewTable, Of: func(o Object) any { return instanceTable(o.(*Instance)) }},
		{Name: ViewMap, Of: func(o Object) any { return instanceMap(o.(*Instance)) }},
	},
	InstanceGroupKind: {{Name: ViewTable, Of: func(o Object) any { return groupTable(o.(*InstanceGroup)) }}},
	HostKind: {
		{Name: ViewTable, Of: func(o Object) any { return hostTable(o.(*Host)) }},
		{Name: ViewMap, Of: func(o Object) any { return hostMap(o.(*Host)) }},
	},
	NetworkKind: {{Name: ViewTable, Of: func(o Object) any { return networkTable(o.(*Network)) }}},
	ImageKind:   {{Name: ViewTable, Of: func(o Object) any { return imageTable(o.(*Image)) }}},
}

// ViewOf returns the view of kind k called name, or nil when k has none
// of that name.
func (k *Kind) ViewOf(name string) *View {
	for _, v := range views[k] {
		if v.Name == name {
			return v
		}
	}
	return nil
}

// ViewNames returns the names of the views of kind k.
func (k *Kind) ViewNames() []string {
	var names []string
	for _, v := range views[k] {
		names = append(names, v.Name)
	}
	return names
}

// viewMeta is the metadata of a view's item: what names the object, and
// what the view shows of the rest.
type viewMeta struct {
	Name              string            `json:"name"`
	Project           string            `json:"project,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	CreationTimestamp *time.Time        `json:"creationTimestamp,omitempty"`
	DeletionTimestamp *time.Time        `json:"deletionTimestamp,omitempty"`
}

// named returns the name and project of m.
func named(m *ObjectMeta) viewMeta { return viewMeta{Name: m.Name, Project: m.Project} }

// aged returns the name, project and creation time of m.
func aged(m *ObjectMeta) viewMeta {
	v := named(m)
	if !m.CreationTimestamp.IsZero() {
		t := m.CreationTimestamp
		v.CreationTimestamp = &t
	}
	return v
}

// someLabels returns the labels of m among keys, nil when none.
func someLabels(m *ObjectMeta, keys ...string) map[string]string {
	var out map[string]string
	for _, k := range keys {
		if v, ok := m.Labels[k]; ok {
			if out == nil {
				out = make(map[string]string, len(keys))
			}
			out[k] = v
		}
	}
	return out
}

type instanceTableItem struct {
	Metadata viewMeta `json:"metadata"`
	Spec     struct {
		Image  string `json:"image,omitempty"`
		Flavor string `json:"flavor,omitempty"`
	} `json:"spec"`
	Status struct {
		Phase      InstancePhase   `json:"phase,omitempty"`
		Reason     string          `json:"reason,omitempty"`
		Host       string          `json:"host,omitempty"`
		Interfaces []viewInterface `json:"interfaces,omitempty"`
	} `json:"status"`
}

type viewInterface struct {
	IP string `json:"ip,omitempty"`
}

// instanceTable: NAME PHASE HOST IMAGE FLAVOR IP AGE (PROJECT, REASON).
func instanceTable(in *Instance) *instanceTableItem {
	out := &instanceTableItem{Metadata: aged(&in.Metadata)}
	out.Spec.Image, out.Spec.Flavor = in.Spec.Image, in.Spec.Flavor
	out.Status.Phase, out.Status.Host, out.Status.Reason = in.Status.Phase, in.Status.Host, in.Status.Reason
	if len(in.Status.Interfaces) > 0 {
		out.Status.Interfaces = []viewInterface{{IP: in.Status.Interfaces[0].IP}}
	}
	return out
}

type instanceMapItem struct {
	Metadata viewMeta `json:"metadata"`
	Status   struct {
		Phase         InstancePhase   `json:"phase,omitempty"`
		Reason        string          `json:"reason,omitempty"`
		Message       string          `json:"message,omitempty"`
		Host          string          `json:"host,omitempty"`
		RestartCount  int32           `json:"restartCount,omitempty"`
		NextRestartAt *time.Time      `json:"nextRestartAt,omitempty"`
		Conditions    []viewCondition `json:"conditions,omitempty"`
	} `json:"status"`
}

type viewCondition struct {
	Type   string `json:"type"`
	Status bool   `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// instanceMap: a tile (phase, health, reason, back-off, deletion), where
// it goes (host, group) and its group revision.
func instanceMap(in *Instance) *instanceMapItem {
	out := &instanceMapItem{Metadata: named(&in.Metadata)}
	out.Metadata.Labels = someLabels(&in.Metadata, LabelGroup, LabelRevision)
	out.Metadata.DeletionTimestamp = in.Metadata.DeletionTimestamp
	st := &in.Status
	s := &out.Status
	s.Phase, s.Reason, s.Message, s.Host = st.Phase, st.Reason, st.Message, st.Host
	s.RestartCount, s.NextRestartAt = st.RestartCount, st.NextRestartAt
	for _, c := range st.Conditions {
		if c.Type == ConditionHealthy {
			s.Conditions = []viewCondition{{Type: c.Type, Status: c.Status, Reason: c.Reason}}
		}
	}
	return out
}

type groupTableItem struct {
	Metadata viewMeta `json:"metadata"`
	Spec     struct {
		Count int `json:"count,omitempty"`
	} `json:"spec"`
	Status struct {
		ObservedGeneration int64  `json:"observedGeneration,omitempty"`
		Desired            int    `json:"desired,omitempty"`
		Members            int    `json:"members,omitempty"`
		Running            int    `json:"running,omitempty"`
		Healthy            int    `json:"healthy,omitempty"`
		Updated            int    `json:"updated,omitempty"`
		Revision           int64  `json:"revision,omitempty"`
		Rollout            string `json:"rollout,omitempty"`
		RolloutReason      string `json:"rolloutReason,omitempty"`
	} `json:"status"`
}

// groupTable: NAME DESIRED RUNNING HEALTHY UPDATED REVISION ROLLOUT.
func groupTable(g *InstanceGroup) *groupTableItem {
	out := &groupTableItem{Metadata: aged(&g.Metadata)}
	out.Spec.Count = g.Spec.Count
	st, s := &g.Status, &out.Status
	s.ObservedGeneration, s.Desired, s.Members = st.ObservedGeneration, st.Desired, st.Members
	s.Running, s.Healthy, s.Updated, s.Revision = st.Running, st.Healthy, st.Updated, st.Revision
	s.Rollout, s.RolloutReason = st.Rollout, st.RolloutReason
	return out
}

type hostItem struct {
	Metadata viewMeta `json:"metadata"`
	Spec     struct {
		Unschedulable bool `json:"unschedulable,omitempty"`
	} `json:"spec"`
	Status struct {
		Phase        HostPhase  `json:"phase,omitempty"`
		Address      string     `json:"address,omitempty"`
		Capacity     *Resources `json:"capacity,omitempty"`
		Allocated    *Resources `json:"allocated,omitempty"`
		Architecture string     `json:"architecture,omitempty"`
		Drivers      []string   `json:"drivers,omitempty"`
	} `json:"status"`
}

// hostMap: a host panel's head (phase, cordoned) and its bars.
func hostMap(h *Host) *hostItem {
	out := &hostItem{Metadata: named(&h.Metadata)}
	out.Spec.Unschedulable = h.Spec.Unschedulable
	capacity, allocated := h.Status.Capacity, h.Status.Allocated
	out.Status.Phase, out.Status.Capacity, out.Status.Allocated = h.Status.Phase, &capacity, &allocated
	return out
}

// hostTable: NAME PHASE ADDRESS ARCH DRIVERS CPU MEMORY AGE (HOLLOW).
func hostTable(h *Host) *hostItem {
	out := hostMap(h)
	out.Metadata = aged(&h.Metadata)
	out.Metadata.Labels = someLabels(&h.Metadata, LabelHollow)
	out.Status.Address, out.Status.Architecture, out.Status.Drivers = h.Status.Address, h.Status.Architecture, h.Status.Drivers
	return out
}

type networkTableItem struct {
	Metadata viewMeta `json:"metadata"`
	Spec     struct {
		CIDR    string `json:"cidr,omitempty"`
		Gateway string `json:"gateway,omitempty"`
		NAT     *bool  `json:"nat,omitempty"`
		VPC     string `json:"vpc,omitempty"`
	} `json:"spec"`
	Status struct {
		VNI int `json:"vni,omitempty"`
	} `json:"status"`
}

// networkTable: NAME CIDR GATEWAY NAT VPC VNI AGE.
func networkTable(n *Network) *networkTableItem {
	out := &networkTableItem{Metadata: aged(&n.Metadata)}
	out.Spec.CIDR, out.Spec.Gateway, out.Spec.NAT, out.Spec.VPC = n.Spec.CIDR, n.Spec.Gateway, n.Spec.NAT, n.Spec.VPC
	out.Status.VNI = n.Status.VNI
	return out
}

type imageTableItem struct {
	Metadata viewMeta `json:"metadata"`
	Spec     struct {
		Public       bool   `json:"public,omitempty"`
		Format       string `json:"format,omitempty"`
		Architecture string `json:"architecture,omitempty"`
		Source       string `json:"source,omitempty"`
	} `json:"spec"`
	Status struct {
		Phase string `json:"phase,omitempty"`
		Size  int64  `json:"size,omitempty"`
	} `json:"status"`
}

// imageTable: NAME FORMAT ARCH SIZE PUBLIC PHASE AGE SOURCE.
func imageTable(im *Image) *imageTableItem {
	out := &imageTableItem{Metadata: aged(&im.Metadata)}
	s := &out.Spec
	s.Public, s.Format, s.Architecture, s.Source = im.Spec.Public, im.Spec.Format, im.Spec.Architecture, im.Spec.Source
	out.Status.Phase, out.Status.Size = im.Status.Phase, im.Status.Size
	return out
}
