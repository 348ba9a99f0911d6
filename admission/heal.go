package admission

import (
	"cmp"
	"errors"
	"fmt"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
)

// Bounds of health checks.
const (
	maxProbeIntervalSeconds = 3600
	maxProbeTimeoutSeconds  = 60
	maxFailureThreshold     = 100
	maxProbePathBytes       = 1024
)

// validateRestartPolicy checks spec.restartPolicy ("" means Always).
func validateRestartPolicy(field string, p api.RestartPolicy) error {
	switch p {
	case "", api.RestartAlways, api.RestartOnFailure, api.RestartNever:
		return nil
	}
	return api.Invalid(field, "use Always, OnFailure or Never", "restart policy %q is not valid", truncate(string(p), 80))
}

// validatePlacement checks a placement: the host selector parses and the
// anti-affinity mode is known (and only given with a key).
func validatePlacement(field string, p *api.Placement) error {
	if p == nil {
		return nil
	}
	if _, err := api.ParseSelector(p.HostSelector); err != nil {
		msg := err.Error()
		if ae := (*api.Error)(nil); errors.As(err, &ae) {
			msg = ae.Message
		}
		return api.Invalid(field+".hostSelector", "write key=value, key!=value, key or !key, separated by commas (host labels)", "%s", msg)
	}
	switch p.AntiAffinity {
	case "", api.AntiAffinityHard, api.AntiAffinitySoft:
	default:
		return api.Invalid(field+".antiAffinity", "use hard or soft", "anti-affinity %q is not valid", truncate(p.AntiAffinity, 80))
	}
	if p.Host != "" {
		if e := api.ValidateName(field+".host", p.Host); e != nil {
			return e
		}
	}
	if p.AntiAffinityKey != "" {
		if e := api.ValidateLabels(field+".antiAffinityKey", map[string]string{"k": p.AntiAffinityKey}); e != nil {
			return api.Invalid(field+".antiAffinityKey", "use up to 63 letters, digits, '-', '_' or '.'", "key %q is not valid", truncate(p.AntiAffinityKey, 80))
		}
	} else if p.AntiAffinity != "" {
		return api.Invalid(field+".antiAffinityKey", "set antiAffinityKey to the name instances that avoid each other share", "antiAffinity %q needs a key", p.AntiAffinity)
	}
	return nil
}

// validateHealthCheck checks a health check; zero numbers take the
// defaults the agent applies (interval 2 s, timeout 1 s, threshold 3).
// Kind loadBalancer names a load balancer (by name only: it may be made
// after the group) and no port or path.
func validateHealthCheck(field string, hc *api.HealthCheck) error {
	if hc == nil {
		return nil
	}
	if hc.Kind != api.HealthLoadBalancer && hc.LoadBalancer != "" {
		return api.Invalid(field+".loadBalancer", "use kind loadBalancer to trust a load balancer's checks", "a %q check names no load balancer", cmp.Or(hc.Kind, api.HealthRunning))
	}
	switch hc.Kind {
	case api.HealthLoadBalancer:
		// The load balancer need not exist yet: a group and the load
		// balancer whose pool it is name each other.
		if hc.LoadBalancer == "" {
			return api.Invalid(field+".loadBalancer", "name the project's load balancer whose pool the members are in", "a loadBalancer check needs a load balancer")
		}
		if e := api.ValidateName(field+".loadBalancer", hc.LoadBalancer); e != nil {
			return e
		}
		if hc.Port != 0 {
			return api.Invalid(field+".port", "leave it out: the load balancer checks the pool's port", "a loadBalancer check takes no port")
		}
		if hc.Path != "" {
			return api.Invalid(field+".path", "leave it out: the pool's health monitor says what is checked", "a loadBalancer check takes no path")
		}
	case "", api.HealthRunning:
		if hc.Port != 0 || hc.Path != "" {
			return api.Invalid(field+".kind", "use kind tcp or http to probe a port", "a %q check takes no port or path", cmp.Or(hc.Kind, api.HealthRunning))
		}
	case api.HealthTCP, api.HealthHTTP:
		if hc.Port < 1 || hc.Port > 65535 {
			return api.Invalid(field+".port", "use a port from 1 to 65535", "port %d is out of range", hc.Port)
		}
		if hc.Kind == api.HealthTCP && hc.Path != "" {
			return api.Invalid(field+".path", "leave it out, or use kind http", "a tcp check takes no path")
		}
		if hc.Kind == api.HealthHTTP && hc.Path != "" {
			if !strings.HasPrefix(hc.Path, "/") || len(hc.Path) > maxProbePathBytes || strings.ContainsAny(hc.Path, " \t\r\n\x00") {
				return api.Invalid(field+".path", fmt.Sprintf("use an absolute path such as /healthz, at most %d bytes, without spaces", maxProbePathBytes), "path %q is not valid", truncate(hc.Path, 80))
			}
		}
	default:
		return api.Invalid(field+".kind", "use running, tcp, http or loadBalancer", "health check kind %q is not valid", truncate(hc.Kind, 80))
	}
	for _, n := range []struct {
		name  string
		value int
		max   int
	}{
		{"intervalSeconds", hc.IntervalSeconds, maxProbeIntervalSeconds},
		{"timeoutSeconds", hc.TimeoutSeconds, maxProbeTimeoutSeconds},
		{"failureThreshold", hc.FailureThreshold, maxFailureThreshold},
	} {
		if n.value < 0 || n.value > n.max {
			return api.Invalid(field+"."+n.name, fmt.Sprintf("use 1 to %d, or leave it out for the default", n.max), "%d is out of range", n.value)
		}
	}
	return nil
}

// ValidateKeys checks taint or toleration keys, which follow label keys.
func ValidateKeys(field string, keys []string) error {
	if len(keys) > 64 {
		return api.Invalid(field, "use at most 64", "%d entries given", len(keys))
	}
	for i, k := range keys {
		if e := api.ValidateLabels(field, map[string]string{k: ""}); e != nil {
			return api.Invalid(fmt.Sprintf("%s[%d]", field, i), e.Hint, "key %q is not valid", k)
		}
	}
	return nil
}
