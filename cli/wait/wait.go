// Package wait follows objects through the API until they reach a state:
// instances running, the members of groups gone, a group's rollout
// complete, a load balancer active, any object gone or in a state its
// caller checks. Each keeps a view current with
// a list and a watch, resumes a watch that ends and starts over after its
// history was compacted.
package wait

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/client"
)

// errWatchDone stops a watch once the awaited state is reached.
var errWatchDone = errors.New("done")

// watchInstances keeps a view of a project's instances current and
// calls check with it (see watchObjects).
func watchInstances(ctx context.Context, c *client.Client, project string, check func(map[string]*api.Instance) (bool, error)) error {
	return watchObjects(ctx, c, api.InstanceKind, project, check)
}

// watchObjects keeps a view of a project's objects of kind current — a
// list, then a watch from the list's resourceVersion — and calls check
// with it after the list and after every change, until check reports done
// or fails, or ctx ends. A watch that ends is resumed from the last
// version seen; one that reports Gone (compacted history) starts over with
// a list.
func watchObjects[T any, P interface {
	*T
	api.Object
}](ctx context.Context, c *client.Client, kind *api.Kind, project string, check func(map[string]P) (bool, error)) error {
	failures := 0
	var checkErr error
	for {
		items, meta, err := client.ListAll[T](ctx, c, kind, project, client.ListOptions{})
		if err != nil {
			return err
		}
		state := make(map[string]P, len(items))
		for i := range items {
			p := P(&items[i])
			state[p.Meta().Name] = p
		}
		if done, err := check(state); done || err != nil {
			return err
		}
		rv := meta.ResourceVersion
		for {
			err := client.Watch(ctx, c, kind, project, client.WatchOptions{ResourceVersion: rv},
				func(ev api.WatchEvent[T]) error {
					failures = 0
					obj := P(&ev.Object)
					if v := obj.Meta().ResourceVersion; v != "" {
						rv = v
					}
					switch ev.Type {
					case api.Added, api.Modified:
						state[obj.Meta().Name] = obj
					case api.Deleted:
						delete(state, obj.Meta().Name)
					default:
						return nil
					}
					done, err := check(state)
					if err != nil {
						checkErr = err
						return errWatchDone
					}
					if done {
						return errWatchDone
					}
					return nil
				})
			switch {
			case errors.Is(err, errWatchDone):
				return checkErr
			case ctx.Err() != nil:
				return ctx.Err()
			case err == nil:
				continue // the server ended the stream; resume from rv
			}
			var ae *api.Error
			if errors.As(err, &ae) {
				if ae.Code == api.CodeGone {
					break // list again
				}
				return err
			}
			// A transport error: back off and resume.
			failures++
			if failures > 5 {
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
}

// Running waits until every named instance is Running, writing a line
// to say so for each as it gets there. It fails when one fails, stops with
// an exit code or disappears.
func Running(ctx context.Context, c *client.Client, project string, names []string, report func(*api.Instance)) (map[string]*api.Instance, error) {
	pending := make(map[string]bool, len(names))
	for _, n := range names {
		pending[n] = true
	}
	last := make(map[string]*api.Instance, len(names))
	err := watchInstances(ctx, c, project, func(state map[string]*api.Instance) (bool, error) {
		for _, n := range names {
			if !pending[n] {
				continue
			}
			inst := state[n]
			if inst == nil {
				return false, fmt.Errorf("instance %s was deleted while waiting for it to run", n)
			}
			last[n] = inst
			if err := instanceFailure(inst); err != nil {
				return false, err
			}
			if inst.Status.Phase == api.PhaseRunning {
				delete(pending, n)
				report(inst)
			}
		}
		return len(pending) == 0, nil
	})
	if errors.Is(err, context.DeadlineExceeded) {
		return last, fmt.Errorf("timed out waiting for %s to run%s", joinKeys(pending), phases(last, pending))
	}
	return last, err
}

// instanceFailure returns why inst will not reach Running on its own, or
// nil.
func instanceFailure(inst *api.Instance) error {
	st := inst.Status
	detail := st.Reason
	if st.Message != "" {
		if detail != "" {
			detail += ": "
		}
		detail += st.Message
	}
	switch {
	case st.Phase == api.PhaseFailed:
		if detail == "" {
			detail = "no reason given"
		}
		return fmt.Errorf("instance %s failed: %s", inst.Metadata.Name, detail)
	case st.Phase == api.PhaseStopped && st.ExitCode != nil:
		msg := fmt.Sprintf("instance %s stopped: exited with code %d", inst.Metadata.Name, *st.ExitCode)
		if detail != "" {
			msg += " (" + detail + ")"
		}
		return errors.New(msg)
	case st.Phase == api.PhaseTerminating || st.Phase == api.PhaseTerminated || inst.Metadata.DeletionTimestamp != nil:
		return fmt.Errorf("instance %s is being deleted", inst.Metadata.Name)
	}
	return nil
}

// Gone waits until none of the named instances exists, calling report
// for each as it disappears.
func Gone(ctx context.Context, c *client.Client, project string, names []string, report func(name string)) error {
	last := map[string]*api.Instance{}
	pending, err := watchGone(ctx, c, api.InstanceKind, project, names, func(inst *api.Instance) { last[inst.Metadata.Name] = inst }, report)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("timed out waiting for %s to be deleted%s", joinKeys(pending), phases(last, pending))
	}
	return err
}

// Deleted waits until none of the named objects of kind exists in
// project, calling report for each as it disappears.
func Deleted[T any, P interface {
	*T
	api.Object
}](ctx context.Context, c *client.Client, kind *api.Kind, project string, names []string, report func(name string)) error {
	pending, err := watchGone(ctx, c, kind, project, names, func(P) {}, report)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("timed out waiting for %s to be deleted", joinKeys(pending))
	}
	return err
}

// watchGone waits until none of the named objects of kind exists in
// project, calling report for each as it disappears and seen with each
// one still there. It returns the names still there when it stops.
func watchGone[T any, P interface {
	*T
	api.Object
}](ctx context.Context, c *client.Client, kind *api.Kind, project string, names []string, seen func(P), report func(name string)) (map[string]bool, error) {
	pending := make(map[string]bool, len(names))
	for _, n := range names {
		pending[n] = true
	}
	err := watchObjects(ctx, c, kind, project, func(state map[string]P) (bool, error) {
		for _, n := range names {
			if !pending[n] {
				continue
			}
			if obj, ok := state[n]; ok {
				seen(obj)
				continue
			}
			delete(pending, n)
			report(n)
		}
		return len(pending) == 0, nil
	})
	return pending, err
}

// MembersGone waits until no instance of project belongs to any of
// groups (label ouro.dev/group), calling report once for each group as its
// last member goes.
func MembersGone(ctx context.Context, c *client.Client, project string, groups []string, report func(group string)) error {
	pending := make(map[string]bool, len(groups))
	for _, g := range groups {
		pending[g] = true
	}
	left := map[string]int{}
	err := watchInstances(ctx, c, project, func(state map[string]*api.Instance) (bool, error) {
		clear(left)
		for _, inst := range state {
			if g := inst.Metadata.Labels[api.LabelGroup]; pending[g] {
				left[g]++
			}
		}
		for _, g := range groups {
			if pending[g] && left[g] == 0 {
				delete(pending, g)
				report(g)
			}
		}
		return len(pending) == 0, nil
	})
	if errors.Is(err, context.DeadlineExceeded) {
		var parts []string
		for _, g := range output.SortedKeys(pending) {
			parts = append(parts, fmt.Sprintf("%s (%d members left)", g, left[g]))
		}
		return fmt.Errorf("timed out waiting for the members of %s to be deleted", strings.Join(parts, ", "))
	}
	return err
}

func joinKeys(m map[string]bool) string {
	return strings.Join(output.SortedKeys(m), ", ")
}

// phases describes the last known phase of each pending instance.
func phases(last map[string]*api.Instance, pending map[string]bool) string {
	s := ""
	for _, n := range output.SortedKeys(pending) {
		if inst := last[n]; inst != nil && inst.Status.Phase != "" {
			s += fmt.Sprintf("; %s is %s", n, inst.Status.Phase)
		}
	}
	return s
}
