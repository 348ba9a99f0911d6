package group

import (
	"sort"

	"github.com/ouroboros-cloud/ouro/api"
)

// Step is what one pass of the controller does to a group's members.
type Step struct {
	// Delete lists members to delete, each with why (WhyScaleIn, …).
	Delete []Deletion
	// Create lists the members to make.
	Create []Creation
	// Blocked lists names a stateful group needs that an instance outside
	// the group holds.
	Blocked []string
}

// Deletion is a member to delete and why.
type Deletion struct {
	Member *Member
	Why    string
}

// Creation is a member to make.
type Creation struct {
	Index int
	// Addresses, for a stateful member, are the addresses it had (one per
	// network); empty takes free ones.
	Addresses []string
}

// Plan decides which members of g to delete and which to create so that
// desired members of the current template run, given the members as
// Judge classified them. taken reports whether an instance name is used
// by an instance that is not in members.
//
// Every pass removes orphans, finishes deletions on lost hosts and
// deletes condemned members (lost with their host, or failed for good).
// Then, for groups that are not stateful:
//
//	no old-revision member (or paused): create or delete to reach
//	  desired; surplus goes unavailable first, then highest index
//	rollout: create current members while total < desired+maxSurge and
//	  current < desired; delete old members (unavailable ones first,
//	  then highest index) while at least desired-maxUnavailable members
//	  stay available, counting current members that are not available
//	  yet as missing (the rule of Kubernetes Deployments)
//
// New members take the lowest free indices, so a replacement need not
// wait for the name of the member it replaces. Stateful groups keep
// names instead: see planStateful.
func Plan(g *api.InstanceGroup, members []*Member, desired int, taken func(string) bool) Step {
	var st Step
	for _, m := range members {
		switch {
		case m.Orphan && (!m.Deleting || m.HostDown):
			st.Delete = append(st.Delete, Deletion{m, WhyOrphan})
		case m.Deleting && m.HostDown:
			st.Delete = append(st.Delete, Deletion{m, WhyHostLost})
		case m.Condemned != "":
			st.Delete = append(st.Delete, Deletion{m, m.Condemned})
		}
	}
	if g.Spec.Stateful {
		planStateful(g, members, desired, taken, &st)
	} else {
		planStateless(g, members, desired, taken, &st)
	}
	return st
}

func planStateless(g *api.InstanceGroup, members []*Member, desired int, taken func(string) bool, st *Step) {
	var live, cur, old []*Member
	for _, m := range members {
		if !m.Live() {
			continue
		}
		live = append(live, m)
		if m.Current {
			cur = append(cur, m)
		} else {
			old = append(old, m)
		}
	}
	creates := 0
	if len(old) == 0 || g.Spec.Paused {
		creates = max(0, desired-len(live))
		for _, m := range surplus(live, len(live)-desired) {
			st.Delete = append(st.Delete, Deletion{m, WhyScaleIn})
		}
	} else {
		surge, unavail := g.Spec.Update.Surge(), g.Spec.Update.Unavailable()
		total := len(live)
		creates = max(0, min(desired+surge-total, desired-len(cur)))
		minAvailable := desired - unavail
		maxDown := total - minAvailable - count(cur, func(m *Member) bool { return !m.Available })
		byIndexDown(old)
		for _, m := range old {
			if maxDown > 0 && !m.Available {
				st.Delete = append(st.Delete, Deletion{m, WhyRollout})
				maxDown--
			}
		}
		canDown := min(maxDown, count(live, func(m *Member) bool { return m.Available })-minAvailable)
		for _, m := range old {
			if canDown > 0 && m.Available {
				st.Delete = append(st.Delete, Deletion{m, WhyRollout})
				canDown--
			}
		}
		for _, m := range surplus(cur, len(cur)-desired) {
			st.Delete = append(st.Delete, Deletion{m, WhyScaleIn})
		}
	}
	used := map[int]bool{}
	for _, m := range members {
		used[m.Index] = true
	}
	for i := 0; creates > 0; i++ {
		if used[i] || taken(g.MemberName(i)) {
			continue
		}
		st.Create = append(st.Create, Creation{Index: i})
		creates--
	}
}

// planStateful keeps members 0 … desired-1 by name: a missing one is
// made again with its old addresses once the object it replaces is gone,
// members from desired up are deleted, and a rollout deletes old members
// one at a time (or maxUnavailable at a time), highest index first, while
// the others are available; the name then comes back with the current
// template. maxSurge does not apply: a name exists once.
func planStateful(g *api.InstanceGroup, members []*Member, desired int, taken func(string) bool, st *Step) {
	byIndex := map[int]*Member{}
	for _, m := range members {
		if !m.Orphan {
			byIndex[m.Index] = m
		}
	}
	unavailable := 0
	for i := range desired {
		m := byIndex[i]
		if m == nil {
			name := g.MemberName(i)
			if taken(name) {
				st.Blocked = append(st.Blocked, name)
			} else {
				st.Create = append(st.Create, Creation{Index: i, Addresses: g.Status.MemberAddresses[name]})
			}
		}
		if m == nil || !m.Live() || !m.Available {
			unavailable++
		}
	}
	var live []*Member
	for _, m := range members {
		if m.Live() {
			live = append(live, m)
		}
	}
	byIndexDown(live)
	for _, m := range live {
		if m.Index >= desired {
			st.Delete = append(st.Delete, Deletion{m, WhyScaleIn})
		}
	}
	if g.Spec.Paused {
		return
	}
	budget := max(g.Spec.Update.Unavailable(), 1) - unavailable
	for _, m := range live {
		if m.Index >= desired || m.Current {
			continue
		}
		switch {
		case !m.Available:
			st.Delete = append(st.Delete, Deletion{m, WhyRollout})
		case budget > 0:
			st.Delete = append(st.Delete, Deletion{m, WhyRollout})
			budget--
		}
	}
}

// surplus returns the n members to remove first: unavailable ones, then
// those of older revisions, then the highest index.
func surplus(ms []*Member, n int) []*Member {
	if n <= 0 {
		return nil
	}
	s := append([]*Member(nil), ms...)
	sort.SliceStable(s, func(i, j int) bool {
		a, b := s[i], s[j]
		if a.Available != b.Available {
			return !a.Available
		}
		if a.Current != b.Current {
			return !a.Current
		}
		return a.Index > b.Index
	})
	return s[:min(n, len(s))]
}

// byIndexDown sorts members highest index first.
func byIndexDown(ms []*Member) {
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].Index > ms[j].Index })
}

func count(ms []*Member, f func(*Member) bool) int {
	n := 0
	for _, m := range ms {
		if f(m) {
			n++
		}
	}
	return n
}
