package api

// Views of a list: a list asked for with ?view=NAME answers, for each
// object, only the fields a client of that view reads, in the object's
// own shape (a smaller Instance, not a table of strings), so that a
// client decodes it into the same type and prints or draws it as before.
// A field a view leaves out is absent from the answer, never a different
// value. Views change no access rule: a list with a view holds the same
// objects as the list without one.
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
	// Of returns the view of obj, an object prepared for output. It
	// must not modify obj nor share its maps and slices with the result
	// unless it copies them.
	Of func(obj Object) Object
}

// views holds each kind's views. Every kind the CLI lists with a table
// has ViewTable.
var views = map[*Kind][]*View{
	InstanceKind: {
		{Name: ViewTable, Of: func(o Object) Object { return instanceTable(o.(*Instance)) }},
		{Name: ViewMap, Of: func(o Object) Object { return instanceMap(o.(*Instance)) }},
	},
	InstanceGroupKind: {{Name: ViewTable, Of: func(o Object) Object { return groupTable(o.(*InstanceGroup)) }}},
	HostKind: {
		{Name: ViewTable, Of: func(o Object) Object { return hostTable(o.(*Host)) }},
		{Name: ViewMap, Of: func(o Object) Object { return hostMap(o.(*Host)) }},
	},
	NetworkKind: {{Name: ViewTable, Of: func(o Object) Object { return networkTable(o.(*Network)) }}},
	ImageKind:   {{Name: ViewTable, Of: func(o Object) Object { return imageTable(o.(*Image)) }}},
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

// listMeta keeps the metadata every view answers: what names an object
// (name, project), its resourceVersion and its creation time.
func listMeta(m *ObjectMeta) ObjectMeta {
	return ObjectMeta{Name: m.Name, Project: m.Project, ResourceVersion: m.ResourceVersion, CreationTimestamp: m.CreationTimestamp}
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

// instanceTable: NAME PHASE HOST IMAGE FLAVOR IP AGE (PROJECT, REASON).
func instanceTable(in *Instance) *Instance {
	out := &Instance{Kind: in.Kind, Metadata: listMeta(&in.Metadata)}
	out.Spec.Image, out.Spec.Flavor = in.Spec.Image, in.Spec.Flavor
	out.Status.Phase, out.Status.Host, out.Status.Reason = in.Status.Phase, in.Status.Host, in.Status.Reason
	if len(in.Status.Interfaces) > 0 {
		out.Status.Interfaces = []Interface{{Network: in.Status.Interfaces[0].Network, IP: in.Status.Interfaces[0].IP}}
	}
	return out
}

// instanceMap: a tile (phase, health, reason, back-off, deletion), where
// it goes (host, group) and its group revision.
func instanceMap(in *Instance) *Instance {
	out := &Instance{Kind: in.Kind, Metadata: listMeta(&in.Metadata)}
	out.Metadata.Labels = someLabels(&in.Metadata, LabelGroup, LabelRevision)
	out.Metadata.DeletionTimestamp = in.Metadata.DeletionTimestamp
	st := &in.Status
	out.Status = InstanceStatus{Phase: st.Phase, Reason: st.Reason, Message: st.Message, Host: st.Host,
		RestartCount: st.RestartCount, NextRestartAt: st.NextRestartAt}
	for _, c := range st.Conditions {
		if c.Type == ConditionHealthy {
			out.Status.Conditions = []Condition{c}
		}
	}
	return out
}

// groupTable: NAME DESIRED RUNNING HEALTHY UPDATED REVISION ROLLOUT.
func groupTable(g *InstanceGroup) *InstanceGroup {
	out := &InstanceGroup{Kind: g.Kind, Metadata: listMeta(&g.Metadata)}
	out.Spec.Count = g.Spec.Count
	st := &g.Status
	out.Status = InstanceGroupStatus{ObservedGeneration: st.ObservedGeneration, Desired: st.Desired, Members: st.Members,
		Running: st.Running, Healthy: st.Healthy, Updated: st.Updated, Revision: st.Revision,
		Rollout: st.Rollout, RolloutReason: st.RolloutReason}
	return out
}

// hostTable: NAME PHASE ADDRESS ARCH DRIVERS CPU MEMORY AGE (HOLLOW).
func hostTable(h *Host) *Host {
	out := &Host{Kind: h.Kind, Metadata: listMeta(&h.Metadata)}
	out.Metadata.Labels = someLabels(&h.Metadata, LabelHollow)
	out.Spec.Unschedulable = h.Spec.Unschedulable
	st := &h.Status
	out.Status = HostStatus{Phase: st.Phase, Address: st.Address, Architecture: st.Architecture, Drivers: st.Drivers,
		Capacity: st.Capacity, Allocated: st.Allocated}
	return out
}

// hostMap: a host panel's head (phase, cordoned) and its bars.
func hostMap(h *Host) *Host {
	out := &Host{Kind: h.Kind, Metadata: listMeta(&h.Metadata)}
	out.Spec.Unschedulable = h.Spec.Unschedulable
	out.Status = HostStatus{Phase: h.Status.Phase, Capacity: h.Status.Capacity, Allocated: h.Status.Allocated}
	return out
}

// networkTable: NAME CIDR GATEWAY NAT VNI AGE.
func networkTable(n *Network) *Network {
	out := &Network{Kind: n.Kind, Metadata: listMeta(&n.Metadata)}
	out.Spec = NetworkSpec{CIDR: n.Spec.CIDR, Gateway: n.Spec.Gateway, NAT: n.Spec.NAT}
	out.Status.VNI = n.Status.VNI
	return out
}

// imageTable: NAME FORMAT ARCH SIZE PUBLIC PHASE AGE SOURCE.
func imageTable(im *Image) *Image {
	out := &Image{Kind: im.Kind, Metadata: listMeta(&im.Metadata)}
	out.Spec = ImageSpec{Public: im.Spec.Public, Format: im.Spec.Format, Architecture: im.Spec.Architecture, Source: im.Spec.Source}
	out.Status = ImageStatus{Phase: im.Status.Phase, Size: im.Status.Size}
	return out
}
