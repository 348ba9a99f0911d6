package network

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
)

// reconcileNetworkStatus sets the Applied condition of the networks from
// the failures the hosts' agents report in their HostNetworks: false,
// naming the hosts and causes, while any host cannot set a network up;
// true once none does. A network no host ever failed has no condition
// and is not written.
func (c *Controller) reconcileNetworkStatus(ctx context.Context) error {
	failures := map[string][]string{} // network UID → "host h: message"
	for _, o := range c.hostNets.List() {
		hn, ok := o.(*api.HostNetwork)
		if !ok {
			continue
		}
		for _, f := range hn.Status.Failed {
			failures[f.UID] = append(failures[f.UID], fmt.Sprintf("host %s: %s", hn.Metadata.Name, f.Message))
		}
	}
	var errs []error
	for _, o := range c.networks.List() {
		n, ok := o.(*api.Network)
		if !ok {
			continue
		}
		if err := c.setApplied(ctx, n, failures[n.Metadata.UID]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// setApplied writes a network's Applied condition when it changes.
func (c *Controller) setApplied(ctx context.Context, n *api.Network, failures []string) error {
	cur := api.FindCondition(n.Status.Conditions, api.ConditionNetworkApplied)
	want := api.Condition{Type: api.ConditionNetworkApplied, Status: len(failures) == 0}
	if !want.Status {
		slices.Sort(failures)
		want.Reason = api.ReasonNetworkSetupFailed
		want.Message = strings.Join(failures, "; ")
		if len(want.Message) > 2000 {
			want.Message = want.Message[:2000]
		}
	}
	if cur == nil && want.Status {
		return nil
	}
	if cur != nil && cur.Status == want.Status && cur.Reason == want.Reason && cur.Message == want.Message {
		return nil
	}
	next, err := cache.Copy(n)
	if err != nil {
		return err
	}
	next.Status.Conditions = api.SetCondition(next.Status.Conditions, want, time.Now().UTC())
	if err := c.o.Store.Update(ctx, next); err != nil {
		return fmt.Errorf("update status of network %s: %w", cache.Key(n), err)
	}
	if !want.Status {
		c.log.Warn("network cannot be set up on some hosts", "network", cache.Key(n), "message", want.Message)
	}
	return nil
}
