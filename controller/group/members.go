package group

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// Why a member is replaced or deleted; the reasons of MemberReplaced and
// MemberDeleted events.
const (
	WhyHostLost = api.ReasonHostLost
	WhyFailed   = "Failed"
	WhyScaleIn  = "ScaleIn"
	WhyRollout  = "Rollout"
	WhyOrphan   = "Orphan"
)

// Member is one instance of a group as the controller judges it.
type Member struct {
	Inst *api.Instance
	// Index is n of the name <group>-<n>; -1 if the name is not of that
	// form.
	Index int
	// Current: made from the group's current template.
	Current bool
	// Available: running and, when the group probes, healthy.
	Available bool
	// Deleting: deletion was requested (metadata.deletionTimestamp).
	Deleting bool
	// HostDown: placed on a host that is NotReady (past the grace) or
	// gone. Its object may be removed without the agent: the host's
	// lease expired, so a live agent there has fenced its group members.
	HostDown bool
	// Condemned says why the member must be replaced (WhyHostLost,
	// WhyFailed), or is "".
	Condemned string
	// Orphan: the member belongs to an older group of the same name.
	Orphan bool
	// HealthMessage, when set, says why a running member is not
	// available (a load balancer health check, ApplyLBHealth).
	HealthMessage string
}

// Name returns the member's instance name.
func (m *Member) Name() string { return m.Inst.Metadata.Name }

// Live reports whether the member counts toward the group's size.
func (m *Member) Live() bool { return !m.Deleting && m.Condemned == "" && !m.Orphan }

// Judge classifies the instances labelled as members of g. revisions
// maps revision numbers to their templates; hosts maps host names to
// hosts; a host NotReady for at least grace counts as down.
func Judge(g *api.InstanceGroup, insts []*api.Instance, revisions map[int64]api.InstanceTemplate, hosts map[string]*api.Host, grace time.Duration, now time.Time) []*Member {
	tmpl := templateJSON(g.Spec.Template)
	probed := g.Spec.HealthCheck.Probed()
	out := make([]*Member, 0, len(insts))
	for _, in := range insts {
		m := &Member{Inst: in, Index: memberIndex(g.Metadata.Name, in.Metadata.Name)}
		m.Orphan = in.Metadata.Labels[api.LabelGroupUID] != g.Metadata.UID || m.Index < 0
		if rev, err := strconv.ParseInt(in.Metadata.Labels[api.LabelRevision], 10, 64); err == nil {
			if t, ok := revisions[rev]; ok {
				m.Current = templateJSON(t) == tmpl
			}
		}
		m.Deleting = in.Metadata.DeletionTimestamp != nil
		m.HostDown = in.Status.Host != "" && hostDown(hosts[in.Status.Host], grace, now)
		running := in.Status.Phase == api.PhaseRunning
		m.Available = running && !m.HostDown && (!probed || healthy(in))
		switch {
		case m.Deleting || m.Orphan:
		case m.HostDown:
			m.Condemned = WhyHostLost
		case failedForGood(in):
			m.Condemned = WhyFailed
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Index != out[j].Index {
			return out[i].Index < out[j].Index
		}
		return out[i].Name() < out[j].Name()
	})
	return out
}

// memberIndex returns n of "<group>-<n>", or -1.
func memberIndex(group, name string) int {
	s, ok := strings.CutPrefix(name, group+"-")
	if !ok || s == "" || (len(s) > 1 && s[0] == '0') {
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// hostDown reports whether a host is gone or NotReady for at least grace.
func hostDown(h *api.Host, grace time.Duration, now time.Time) bool {
	if h == nil {
		return true
	}
	if h.Status.Phase != api.HostNotReady {
		return false
	}
	if grace <= 0 {
		return true
	}
	c := api.FindCondition(h.Status.Conditions, api.ConditionReady)
	return c == nil || c.Status || now.Sub(c.LastTransitionTime) >= grace
}

// healthy reports whether the instance's Healthy condition is true.
func healthy(in *api.Instance) bool {
	c := api.FindCondition(in.Status.Conditions, api.ConditionHealthy)
	return c != nil && c.Status
}

// failedForGood reports whether an instance ended and will not run again
// by itself: restart policy Never, and Failed, or Stopped because its
// process exited. An instance the user stopped is left alone, and so is
// one marked HostLost whose host is back: its agent reports it again.
func failedForGood(in *api.Instance) bool {
	if !in.WantsRunning() || in.Spec.RestartPolicy != api.RestartNever || in.Status.Reason == api.ReasonHostLost {
		return false
	}
	return in.Status.Phase == api.PhaseFailed ||
		(in.Status.Phase == api.PhaseStopped && in.Status.Reason == api.ReasonExited)
}

// unhealthyMessage says why a member is not available.
func unhealthyMessage(m *Member) string {
	in := m.Inst
	if in.Status.Phase == api.PhaseRunning {
		if m.HealthMessage != "" {
			return m.HealthMessage
		}
		if c := api.FindCondition(in.Status.Conditions, api.ConditionHealthy); c != nil && !c.Status {
			if c.Message != "" {
				return c.Message
			}
			return "health check failing (" + c.Reason + ")"
		}
		return "health check has not passed yet"
	}
	msg := "phase " + string(in.Status.Phase)
	if in.Status.Phase == "" {
		msg = "not started"
	}
	if in.Status.Reason != "" {
		msg += " (" + in.Status.Reason + ")"
	}
	if in.Status.Message != "" {
		msg += ": " + in.Status.Message
	}
	return msg
}

// templateJSON is the canonical form templates are compared in.
func templateJSON(t api.InstanceTemplate) string {
	b, _ := json.Marshal(t) // API types always marshal
	return string(b)
}

// MaxRevisions is how many templates a group's status keeps for undo.
const MaxRevisions = 10

// NextRevisions records g's template as a new revision when it differs
// from the current one (or there is none yet), keeping the last
// MaxRevisions. It returns the revisions, the current revision number,
// and whether a new revision was recorded. An undo makes a new revision
// too; members of an older revision with the same template count as
// current (Judge compares templates, not numbers), so they stay.
func NextRevisions(g *api.InstanceGroup, now time.Time) ([]api.GroupRevision, int64, bool) {
	revs := g.Status.Revisions
	if n := len(revs); n > 0 && revs[n-1].Revision == g.Status.Revision &&
		templateJSON(revs[n-1].Template) == templateJSON(g.Spec.Template) {
		return revs, g.Status.Revision, false
	}
	next := g.Status.Revision
	for _, r := range revs {
		next = max(next, r.Revision)
	}
	next++
	out := append(append(make([]api.GroupRevision, 0, len(revs)+1), revs...),
		api.GroupRevision{Revision: next, Template: g.Spec.Template, Created: now.UTC()})
	if len(out) > MaxRevisions {
		out = out[len(out)-MaxRevisions:]
	}
	return out, next, true
}

// revisionTemplates maps revision numbers to templates.
func revisionTemplates(revs []api.GroupRevision) map[int64]api.InstanceTemplate {
	m := make(map[int64]api.InstanceTemplate, len(revs))
	for _, r := range revs {
		m[r.Revision] = r.Template
	}
	return m
}
