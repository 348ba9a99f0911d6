package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
)

func newHostCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "host",
		Aliases: []string{"hosts"},
		Short:   "Inspect hosts and let new ones join",
	}
	cmd.AddCommand(
		newListCommand(o, api.HostKind, "List hosts", hostTable),
		newGetCommand(o, api.HostKind, "Show a host", hostTable),
		newJoinTokenCommand(o),
	)
	return cmd
}

// hostTable writes hosts as NAME PHASE ADDRESS ARCH DRIVERS CPU MEMORY AGE,
// with HOLLOW at the end when any host is a simulated one.
func hostTable(items []*api.Host) func(*table) {
	return func(t *table) {
		now := time.Now()
		withHollow := false
		for _, h := range items {
			withHollow = withHollow || isHollow(h)
		}
		head := []string{"NAME", "PHASE", "ADDRESS", "ARCH", "DRIVERS", "CPU", "MEMORY", "AGE"}
		if withHollow {
			head = append(head, "HOLLOW")
		}
		t.row(head...)
		for _, h := range items {
			phase := string(h.Status.Phase)
			if h.Spec.Unschedulable {
				phase += ",Unschedulable"
			}
			st := h.Status
			row := []string{h.Metadata.Name, phase, st.Address, st.Architecture, strings.Join(st.Drivers, ","),
				fmt.Sprintf("%d/%d", st.Allocated.VCPUs, st.Capacity.VCPUs),
				fmt.Sprintf("%d/%d MiB", st.Allocated.MemoryMiB, st.Capacity.MemoryMiB),
				age(h.Metadata.CreationTimestamp, now)}
			if withHollow {
				row = append(row, yesNo(isHollow(h)))
			}
			t.row(row...)
		}
	}
}

// isHollow reports whether h is a simulated host (label ouro.dev/hollow).
func isHollow(h *api.Host) bool {
	v, ok := h.Metadata.Labels[api.LabelHollow]
	return ok && v != "false"
}

func newJoinTokenCommand(o *options) *cobra.Command {
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "join-token",
		Short: "Issue a token that lets new hosts join (cluster admins)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl <= 0 {
				return flagError("ttl", "%s is not positive: use a duration such as 24h", ttl)
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			jt, err := c.CreateJoinToken(cmd.Context(), api.JoinTokenRequest{TTL: ttl.String()})
			if err != nil {
				return err
			}
			if o.output != "table" {
				return o.render(cmd.OutOrStdout(), jt, nil)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Join token (valid until %s; it is not shown again):\n\n  %s\n\n",
				jt.Spec.ExpiresAt.Local().Format(time.RFC3339), jt.Status.Secret)
			fmt.Fprintf(w, "On the new host, run:\n\n  ouro agent --server %s --join-token %s\n",
				c.Server(), jt.Status.Secret)
			return nil
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token stays valid")
	return cmd
}
