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
	return Object(ctx, c, api.InstanceGroupKind, project, name, func(g *api.InstanceGroup) (bool, error) {
		if g == nil {
			return true, fmt.Errorf("group %s was deleted", name)
		}
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

// Object reads the object of kind named name and then watches it,
// calling check with each new state until check is done or fails, or ctx
// ends. check is called with nil when the object is deleted, and must
// then say done or fail. A watch that ends is resumed after a fresh read;
// transport errors are retried a few times, with back-off.
func Object[T any, P interface {
	*T
	api.Object
}](ctx context.Context, c *client.Client, kind *api.Kind, project, name string, check func(P) (bool, error)) error {
	failures := 0
	for {
		obj := P(new(T))
		if err := c.Get(ctx, kind, project, name, obj); err != nil {
			return err
		}
		if done, err := check(obj); done || err != nil {
			return err
		}
		rv := obj.Meta().ResourceVersion
		var result error
		done := false
		err := client.Watch(ctx, c, kind, project, client.WatchOptions{ResourceVersion: rv},
			func(ev api.WatchEvent[T]) error {
				failures = 0
				obj := P(&ev.Object)
				if obj.Meta().Name != name {
					return nil
				}
				switch ev.Type {
				case api.Deleted:
					done, result = check(nil)
				case api.Added, api.Modified:
					done, result = check(obj)
				default:
					return nil
				}
				if done || result != nil {
					done = true
					return errWatchDone
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
