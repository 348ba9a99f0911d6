package admin

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
)

// NewHostCommand returns the host command and its subcommands.
func NewHostCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "host",
		Aliases: []string{"hosts"},
		Short:   "Inspect hosts, let new ones join, cordon and drain them",
	}
	cmd.AddCommand(
		command.NewList(o, api.HostKind, "List hosts", hostTable),
		command.NewGet(o, api.HostKind, "Show a host", hostTable),
		newJoinTokenCommand(o),
		newCordonCommand(o, "cordon", "Stop placing new instances on a host (cluster admins)", true),
		newCordonCommand(o, "uncordon", "Let a cordoned host get new instances again (cluster admins)", false),
		newDrainCommand(o),
	)
	return cmd
}

// newCordonCommand sets or clears a host's spec.unschedulable.
func newCordonCommand(o *command.Options, use, short string, unschedulable bool) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use + " NAME",
		Short: short,
		Args:  command.ExactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var h api.Host
			for attempt := 0; ; attempt++ {
				if err := c.Get(ctx, api.HostKind, "", args[0], &h); err != nil {
					return err
				}
				if h.Spec.Unschedulable == unschedulable {
					break
				}
				h.Spec.Unschedulable = unschedulable
				err := c.Update(ctx, &h)
				if err == nil {
					break
				}
				if !api.IsConflict(err) || attempt >= 4 {
					return err
				}
			}
			return o.Render(cmd.OutOrStdout(), &h, hostTable([]*api.Host{&h}))
		},
	}
	cmd.ValidArgsFunction = o.CompleteNames(api.HostKind, false)
	return cmd
}

func newDrainCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drain NAME",
		Short: "Cordon a host and move its instance group members elsewhere (cluster admins)",
		Long: "Cordon the host, then delete every member of an instance group on it: each group\n" +
			"replaces its members on other hosts at once. Instances in no group stay where they are.",
		Args: command.ExactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			out, err := c.DrainHost(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if o.Output != "table" {
				return o.Render(cmd.OutOrStdout(), out, nil)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Host %s cordoned; %d group member(s) being replaced elsewhere.\n", out.Host, len(out.Deleted))
			for _, k := range out.Deleted {
				fmt.Fprintf(w, "  deleting %s\n", k)
			}
			if len(out.Kept) > 0 {
				fmt.Fprintf(w, "%d instance(s) in no group stay on the host:\n", len(out.Kept))
				for _, k := range out.Kept {
					fmt.Fprintf(w, "  %s\n", k)
				}
			}
			return nil
		},
	}
	cmd.ValidArgsFunction = o.CompleteNames(api.HostKind, false)
	return cmd
}

// hostTable writes hosts as NAME PHASE ADDRESS ARCH DRIVERS CPU MEMORY AGE,
// with HOLLOW at the end when any host is a simulated one.
func hostTable(items []*api.Host) func(*output.Table) {
	return func(t *output.Table) {
		now := time.Now()
		withHollow := false
		for _, h := range items {
			withHollow = withHollow || isHollow(h)
		}
		head := []string{"NAME", "PHASE", "ADDRESS", "ARCH", "DRIVERS", "CPU", "MEMORY", "AGE"}
		if withHollow {
			head = append(head, "HOLLOW")
		}
		t.Row(head...)
		for _, h := range items {
			phase := string(h.Status.Phase)
			if h.Spec.Unschedulable {
				phase += ",Unschedulable"
			}
			st := h.Status
			row := []string{h.Metadata.Name, phase, st.Address, st.Architecture, strings.Join(st.Drivers, ","),
				fmt.Sprintf("%d/%d", st.Allocated.VCPUs, st.Capacity.VCPUs),
				fmt.Sprintf("%d/%d MiB", st.Allocated.MemoryMiB, st.Capacity.MemoryMiB),
				output.Age(h.Metadata.CreationTimestamp, now)}
			if withHollow {
				row = append(row, output.YesNo(isHollow(h)))
			}
			t.Row(row...)
		}
	}
}

// isHollow reports whether h is a simulated host (label ouro.dev/hollow).
func isHollow(h *api.Host) bool {
	v, ok := h.Metadata.Labels[api.LabelHollow]
	return ok && v != "false"
}

func newJoinTokenCommand(o *command.Options) *cobra.Command {
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "join-token",
		Short: "Issue a token that lets new hosts join (cluster admins)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl <= 0 {
				return command.FlagError("ttl", "%s is not positive: use a duration such as 24h", ttl)
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			jt, err := c.CreateJoinToken(cmd.Context(), api.JoinTokenRequest{TTL: ttl.String()})
			if err != nil {
				return err
			}
			if o.Output != "table" {
				return o.Render(cmd.OutOrStdout(), jt, nil)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Join token (valid until %s; it is not shown again):\n\n  %s\n\n",
				jt.Spec.ExpiresAt.Local().Format(time.RFC3339), jt.Status.Secret)
			// Agents use the API VIP when the servers hold one.
			server := c.Server()
			if info, err := c.ClusterInfo(cmd.Context()); err == nil && info.APIURL != "" {
				server = info.APIURL
			}
			fmt.Fprintf(w, "On the new host, run:\n\n  ouro agent --server %s --join-token %s\n",
				server, jt.Status.Secret)
			return nil
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token stays valid")
	return cmd
}
