package admission

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

// Bounds of instance groups.
const (
	// maxGroupNameLength leaves room for "-<index>" in member names.
	maxGroupNameLength  = api.MaxNameLength - 6
	maxSurgeOrUnavail   = api.MaxGroupCount
	maxProgressDeadline = 24 * 60 * 60
	maxStabilization    = 60 * 60
)

// ValidateGroup admits, for id, an instance group on create (old == nil)
// and update, with its defaults. The template is admitted as the create
// of its first member would be (ValidateTemplate), so a group never holds
// a template that cannot make members.
func (a *Admitter) ValidateGroup(ctx context.Context, id *auth.Identity, old, g *api.InstanceGroup) error {
	spec := &g.Spec
	if n := g.Metadata.Name; len(n) > maxGroupNameLength {
		return api.Invalid("metadata.name", fmt.Sprintf("use at most %d characters: members are named <group>-<index>", maxGroupNameLength),
			"name is %d characters long", len(n))
	}
	if old != nil && old.Spec.Stateful != spec.Stateful {
		return Immutable("spec.stateful")
	}
	if err := validateGroupSpec(spec); err != nil {
		return err
	}
	if err := a.validateVolumeTemplates(ctx, g); err != nil {
		return err
	}
	return a.ValidateTemplate(ctx, id, g)
}

// validateGroupSpec checks and defaults the parts of a group's spec
// outside its template: the count, placement, health check, update
// policy and autoscaling bounds, which clamp the count.
func validateGroupSpec(spec *api.InstanceGroupSpec) error {
	if spec.Count < 0 || spec.Count > api.MaxGroupCount {
		return api.Invalid("spec.count", fmt.Sprintf("use 0 to %d", api.MaxGroupCount), "count %d is out of range", spec.Count)
	}
	if err := validateGroupPlacement(&spec.Placement); err != nil {
		return err
	}
	if err := validateGroupHealthCheck(&spec.HealthCheck); err != nil {
		return err
	}
	if err := validateUpdatePolicy(&spec.Update); err != nil {
		return err
	}
	if as := spec.Autoscaling; as != nil {
		if err := validateAutoscaling(as); err != nil {
			return err
		}
		spec.Count = min(max(spec.Count, as.Min), as.Max)
	}
	return nil
}

func validateGroupPlacement(p *api.Placement) error {
	switch p.AntiAffinity {
	case "", api.AntiAffinityHard, api.AntiAffinitySoft:
	default:
		return api.Invalid("spec.placement.antiAffinity", "use hard or soft (the default)", "anti-affinity %q is not valid", truncate(p.AntiAffinity, 80))
	}
	if p.AntiAffinityKey != "" {
		return api.Invalid("spec.placement.antiAffinityKey", "leave it out: members use the group's name", "a group sets its members' anti-affinity key itself")
	}
	if _, err := api.ParseSelector(p.HostSelector); err != nil {
		var ae *api.Error
		if errors.As(err, &ae) {
			ae.Field = "spec.placement.hostSelector"
		}
		return err
	}
	return nil
}

func validateUpdatePolicy(u *api.UpdatePolicy) error {
	hint := fmt.Sprintf("use 0 to %d", maxSurgeOrUnavail)
	if u.MaxSurge != nil && (*u.MaxSurge < 0 || *u.MaxSurge > maxSurgeOrUnavail) {
		return api.Invalid("spec.update.maxSurge", hint, "maxSurge %d is out of range", *u.MaxSurge)
	}
	if u.MaxUnavailable != nil && (*u.MaxUnavailable < 0 || *u.MaxUnavailable > maxSurgeOrUnavail) {
		return api.Invalid("spec.update.maxUnavailable", hint, "maxUnavailable %d is out of range", *u.MaxUnavailable)
	}
	if u.Surge() == 0 && u.Unavailable() == 0 {
		return api.Invalid("spec.update.maxSurge", "allow at least one extra member (maxSurge) or one unavailable member (maxUnavailable)",
			"maxSurge and maxUnavailable are both 0: a rollout could never replace a member")
	}
	if u.ProgressDeadlineSeconds < 0 || u.ProgressDeadlineSeconds > maxProgressDeadline {
		return api.Invalid("spec.update.progressDeadlineSeconds", fmt.Sprintf("use 1 to %d, or leave it out for %d", maxProgressDeadline, api.DefaultProgressDeadlineSeconds),
			"%d is out of range", u.ProgressDeadlineSeconds)
	}
	return nil
}

func validateAutoscaling(a *api.Autoscaling) error {
	switch {
	case a.Min < 0 || a.Min > api.MaxGroupCount:
		return api.Invalid("spec.autoscaling.min", fmt.Sprintf("use 0 to %d", api.MaxGroupCount), "min %d is out of range", a.Min)
	case a.Max < 1 || a.Max > api.MaxGroupCount:
		return api.Invalid("spec.autoscaling.max", fmt.Sprintf("use 1 to %d", api.MaxGroupCount), "max %d is out of range", a.Max)
	case a.Min > a.Max:
		return api.Invalid("spec.autoscaling.min", "make min at most max", "min %d is above max %d", a.Min, a.Max)
	case a.TargetCPUPercent < 1 || a.TargetCPUPercent > 100:
		return api.Invalid("spec.autoscaling.targetCPUPercent", "use 1 to 100", "target %d%% is out of range", a.TargetCPUPercent)
	case a.ScaleInStabilizationSeconds < 0 || a.ScaleInStabilizationSeconds > maxStabilization:
		return api.Invalid("spec.autoscaling.scaleInStabilizationSeconds",
			fmt.Sprintf("use 1 to %d, or leave it out for %d", maxStabilization, api.DefaultScaleInStabilizationSeconds),
			"%d is out of range", a.ScaleInStabilizationSeconds)
	}
	return nil
}

// ValidateTemplate admits a group's template for id as the create of the
// group's first member, and keeps what that create resolves: the image as
// project/name and the networks with their security groups. Errors name
// the group's fields (spec.template.X).
func (a *Admitter) ValidateTemplate(ctx context.Context, id *auth.Identity, g *api.InstanceGroup) error {
	t := &g.Spec.Template
	if e := api.ValidateLabels("spec.template.labels", t.Labels); e != nil {
		return e
	}
	for k := range t.Labels {
		if strings.HasPrefix(k, "ouro.dev/") {
			return api.Invalid("spec.template.labels."+k, "use a key without the ouro.dev/ prefix", "label %q is reserved for the group controller", k)
		}
	}
	switch t.RestartPolicy {
	case "", api.RestartAlways, api.RestartOnFailure, api.RestartNever:
	default:
		return api.Invalid("spec.template.restartPolicy", "use Always (the default), OnFailure or Never", "restart policy %q is not valid", truncate(string(t.RestartPolicy), 80))
	}
	for i, n := range t.Networks {
		if n.IP != "" {
			return api.Invalid(fmt.Sprintf("spec.template.networks[%d].ip", i), "leave it out: each member gets its own address (stateful members keep theirs)",
				"a group template cannot ask for an address")
		}
	}
	// keyName and userData are checked with the rest of the template, as
	// the create of its first member.
	first := &api.Instance{
		Metadata: api.ObjectMeta{Name: g.MemberName(0), Project: g.Metadata.Project, Labels: t.Labels},
		Spec:     g.MemberSpec(),
	}
	if err := a.ValidateInstanceCreate(ctx, id, first); err != nil {
		return templateError(err)
	}
	t.Image = first.Spec.Image
	t.Networks = first.Spec.Networks
	return nil
}

// templateError moves an instance validation error to the group's field:
// spec.X of an instance is spec.template.X of a group, but for the health
// check and placement, which the group holds outside its template.
func templateError(err error) error {
	var ae *api.Error
	if !errors.As(err, &ae) || !strings.HasPrefix(ae.Field, "spec.") {
		return err
	}
	rest := strings.TrimPrefix(ae.Field, "spec.")
	if strings.HasPrefix(rest, "healthCheck") || strings.HasPrefix(rest, "placement") {
		return err
	}
	out := *ae
	out.Field = "spec.template." + rest
	return &out
}

// validateGroupHealthCheck checks a group's health check; the zero value
// means none, and a set check must name its kind.
func validateGroupHealthCheck(h *api.HealthCheck) error {
	if *h == (api.HealthCheck{}) {
		return nil
	}
	if h.Kind == "" {
		return api.Invalid("spec.healthCheck.kind", "use running, tcp, http or loadBalancer", "kind is required")
	}
	if h.Kind == api.HealthHTTP && h.Path == "" {
		h.Path = "/"
	}
	return validateHealthCheck("spec.healthCheck", h)
}
