package wait

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
)

// LoadBalancerActive waits until the named load balancer's phase is
// Active (every LB host serves) and returns it as last seen. It fails when
// the load balancer is deleted meanwhile, and on timeout says what it
// waits for.
func LoadBalancerActive(ctx context.Context, c *client.Client, project, name string) (*api.LoadBalancer, error) {
	var last *api.LoadBalancer
	err := watchObjects(ctx, c, api.LoadBalancerKind, project, func(state map[string]*api.LoadBalancer) (bool, error) {
		lb := state[name]
		if lb == nil {
			return false, fmt.Errorf("load balancer %s was deleted while waiting for it to be active", name)
		}
		last = lb
		return lb.Status.Phase == api.LBActive, nil
	})
	if errors.Is(err, context.DeadlineExceeded) {
		return last, fmt.Errorf("timed out waiting for load balancer %s to be active%s", name, lbState(last))
	}
	return last, err
}

// lbState says why a load balancer is not active yet: its phase and the
// messages of its hosts.
func lbState(lb *api.LoadBalancer) string {
	if lb == nil {
		return ""
	}
	var parts []string
	for _, h := range lb.Status.Hosts {
		if !h.Ready && h.Message != "" {
			parts = append(parts, h.Name+": "+h.Message)
		}
	}
	phase := lb.Status.Phase
	if phase == "" {
		phase = api.LBPending
	}
	if len(lb.Status.Hosts) == 0 {
		parts = append(parts, "no host placed yet")
	}
	if len(parts) == 0 {
		return fmt.Sprintf(" (phase %s)", phase)
	}
	return fmt.Sprintf(" (phase %s; %s)", phase, strings.Join(parts, "; "))
}
