package group

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/cli/wait"
)

func newRolloutCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Follow, pause, resume and undo a group's rollouts",
	}
	cmd.AddCommand(
		newRolloutStatusCommand(o),
		newRolloutPauseCommand(o, "pause", "Pause a group's rollout where it is", true),
		newRolloutPauseCommand(o, "resume", "Resume a paused rollout", false),
		newRolloutUndoCommand(o),
		newRolloutHistoryCommand(o),
	)
	return cmd
}

// rolloutLine describes where a group's rollout is.
func rolloutLine(g *api.InstanceGroup) string {
	st := g.Status
	if st.ObservedGeneration < g.Metadata.Generation {
		return fmt.Sprintf("group/%s: waiting for the controller to see generation %d", g.Metadata.Name, g.Metadata.Generation)
	}
	s := fmt.Sprintf("group/%s revision %d: %d of %d members updated, %d healthy, %d running: %s",
		g.Metadata.Name, st.Revision, st.Updated, st.Desired, st.Healthy, st.Running, st.Rollout)
	if st.RolloutReason != "" {
		s += " (" + st.RolloutReason + ")"
	}
	return s
}

// groupProgress returns a report that prints each new rollout line (on
// stderr when the output is json or yaml).
func groupProgress(cmd *cobra.Command, o *command.Options) func(*api.InstanceGroup) {
	w := cmd.OutOrStdout()
	if o.Output != "table" {
		w = cmd.ErrOrStderr()
	}
	last := ""
	return func(g *api.InstanceGroup) {
		if l := rolloutLine(g); l != last {
			fmt.Fprintln(w, l)
			last = l
		}
	}
}

func newRolloutStatusCommand(o *command.Options) *cobra.Command {
	var watch bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:               "status NAME [--watch]",
		Short:             "Show how far a group's rollout is; with --watch, follow it until it completes or pauses",
		Args:              command.ExactArgs("NAME"),
		ValidArgsFunction: o.CompleteNames(api.InstanceGroupKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			if watch && timeout <= 0 {
				return command.FlagError("timeout", "%s is not positive: use a duration such as 10m", timeout)
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			if !watch {
				var g api.InstanceGroup
				if err := c.Get(cmd.Context(), api.InstanceGroupKind, o.Project(), args[0], &g); err != nil {
					return err
				}
				if o.Output != "table" {
					return o.Render(cmd.OutOrStdout(), g.Status, nil)
				}
				fmt.Fprintln(cmd.OutOrStdout(), rolloutLine(&g))
				return nil
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			err = wait.Rollout(ctx, c, o.Project(), args[0], groupProgress(cmd, o))
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("group %s: the rollout did not finish within %s", args[0], timeout)
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "follow the rollout until it is complete (exit 0) or paused (exit 1)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "how long --watch follows")
	return cmd
}

func newRolloutPauseCommand(o *command.Options, verb, short string, pause bool) *cobra.Command {
	return &cobra.Command{
		Use:               verb + " NAME",
		Short:             short,
		Args:              command.ExactArgs("NAME"),
		ValidArgsFunction: o.CompleteNames(api.InstanceGroupKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			g, err := updateGroup(cmd.Context(), o, args[0], func(g *api.InstanceGroup) error {
				g.Spec.Paused = pause
				return nil
			})
			if err != nil {
				return err
			}
			if o.Output != "table" {
				return o.Render(cmd.OutOrStdout(), g, nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "group/%s: rollout %sd\n", args[0], verb)
			return nil
		},
	}
}

func newRolloutUndoCommand(o *command.Options) *cobra.Command {
	var to int64
	cmd := &cobra.Command{
		Use:   "undo NAME [--to-revision N]",
		Short: "Roll a group back to an earlier template (by default the one before the current)",
		Long: "Set the group's template to an earlier revision's, which rolls out as a new revision, and\n" +
			"resume the group's rollouts. Members already made from that template stay.",
		Args:              command.ExactArgs("NAME"),
		ValidArgsFunction: o.CompleteNames(api.InstanceGroupKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to < 0 {
				return command.FlagError("to-revision", "%d is negative", to)
			}
			var target int64
			g, err := updateGroup(cmd.Context(), o, args[0], func(g *api.InstanceGroup) error {
				rev, err := undoTarget(g, to)
				if err != nil {
					return err
				}
				target = rev.Revision
				g.Spec.Template = rev.Template
				g.Spec.Paused = false
				return nil
			})
			if err != nil {
				return err
			}
			if o.Output != "table" {
				return o.Render(cmd.OutOrStdout(), g, nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "group/%s: rolling back to the template of revision %d\n", args[0], target)
			return nil
		},
	}
	cmd.Flags().Int64Var(&to, "to-revision", 0, "revision to go back to (default: the one before the current)")
	return cmd
}

// undoTarget finds the revision an undo goes back to: to, or the newest
// revision before the current one.
func undoTarget(g *api.InstanceGroup, to int64) (*api.GroupRevision, error) {
	revs := g.Status.Revisions
	var known []string
	for i := len(revs) - 1; i >= 0; i-- {
		r := &revs[i]
		known = append(known, strconv.FormatInt(r.Revision, 10))
		if (to != 0 && r.Revision == to) || (to == 0 && r.Revision < g.Status.Revision) {
			return r, nil
		}
	}
	if to != 0 {
		return nil, command.FlagError("to-revision", "group %s has no revision %d (kept: %s)", g.Metadata.Name, to, command.KnownList(known))
	}
	return nil, fmt.Errorf("group %s has no revision before %d to go back to", g.Metadata.Name, g.Status.Revision)
}

func newRolloutHistoryCommand(o *command.Options) *cobra.Command {
	return &cobra.Command{
		Use:               "history NAME",
		Short:             "List the templates a group keeps for undo",
		Args:              command.ExactArgs("NAME"),
		ValidArgsFunction: o.CompleteNames(api.InstanceGroupKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			var g api.InstanceGroup
			if err := c.Get(cmd.Context(), api.InstanceGroupKind, o.Project(), args[0], &g); err != nil {
				return err
			}
			revs := g.Status.Revisions
			return output.RenderList(cmd.OutOrStdout(), cmd.ErrOrStderr(), o.Output, "revisions", revs, func(t *output.Table) {
				now := time.Now()
				t.Row("REVISION", "IMAGE", "FLAVOR", "COMMAND", "AGE", "CURRENT")
				for _, r := range revs {
					mark := ""
					if r.Revision == g.Status.Revision {
						mark = "yes"
					}
					t.Row(strconv.FormatInt(r.Revision, 10), r.Template.Image, r.Template.Flavor,
						strings.Join(r.Template.Command, " "), output.Age(r.Created, now), mark)
				}
			})
		},
	}
}
