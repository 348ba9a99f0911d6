package wait

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
)

// ErrRolloutPaused is returned (wrapped) when a followed rollout pauses.
var ErrRolloutPaused = errors.New("rollout paused")

// Rollout follows a group until the controller has seen its latest
// spec and its rollout is complete (nil) or paused (an error saying why),
// calling report on every change.
func Rollout(ctx context.Context, c *client.Client, project, name string, report func(*api.InstanceGroup)) error {
	return watchGroup(ctx, c, project, name, func(g *api.InstanceGroup) (bool, error) {
		report(g)
		if g.Status.ObservedGeneration < g.Metadata.Generation {
			return false, nil
		}
		switch g.Status.Rollout {
		case api.RolloutComplete:
			return true, nil
		case api.RolloutPaused:
			return true, fmt.Errorf("%w: group %s: %s (resume with `ouro group rollout resume %s`, or undo)",
				ErrRolloutPaused, name, g.Status.RolloutReason, name)
		}
		return false, nil
	})
}

// watchGroup reads a group and then watches it, calling check with each
// new state until check is done, fails, the group is deleted or ctx ends.
func watchGroup(ctx context.Context, c *client.Client, project, name string, check func(*api.InstanceGroup) (bool, error)) error {
	failures := 0
	for {
		var g api.InstanceGroup
		if err := c.Get(ctx, api.InstanceGroupKind, project, name, &g); err != nil {
			return err
		}
		if done, err := check(&g); done || err != nil {
			return err
		}
		rv := g.Metadata.ResourceVersion
		var result error
		done := false
		err := client.Watch(ctx, c, api.InstanceGroupKind, project, client.WatchOptions{ResourceVersion: rv},
			func(ev api.WatchEvent[api.InstanceGroup]) error {
				failures = 0
				if ev.Object.Metadata.Name != name {
					return nil
				}
				switch ev.Type {
				case api.Deleted:
					done, result = true, fmt.Errorf("group %s was deleted", name)
					return errWatchDone
				case api.Added, api.Modified:
					obj := ev.Object
					done, result = check(&obj)
					if done || result != nil {
						done = true
						return errWatchDone
					}
				}
				return nil
			})
		switch {
		case done:
			return result
		case ctx.Err() != nil:
			return ctx.Err()
		case err == nil:
			continue // the stream ended: read again and resume
		}
		var ae *api.Error
		if errors.As(err, &ae) && ae.Code != api.CodeGone {
			return err
		}
		if failures++; failures > 5 {
			return err
		}
		t := time.NewTimer(time.Duration(failures) * 500 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
