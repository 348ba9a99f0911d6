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
		Short:   "Inspect hosts and let new ones join",
	}
	cmd.AddCommand(
		command.NewList(o, api.HostKind, "List hosts", hostTable),
		command.NewGet(o, api.HostKind, "Show a host", hostTable),
		newJoinTokenCommand(o),
	)
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
