package admin

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
)

// NewWhoamiCommand returns the whoami command.
func NewWhoamiCommand(o *command.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the token in use is and what it may do",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			w, err := c.Whoami(cmd.Context())
			if err != nil {
				return err
			}
			return o.Render(cmd.OutOrStdout(), w, func(t *output.Table) {
				who := w.User
				kind := "user"
				if w.Host != "" {
					who, kind = w.Host, "host"
				}
				t.Row("SERVER", c.Server())
				t.Row(strings.ToUpper(kind), who)
				if w.ClusterAdmin {
					t.Row("CLUSTER ADMIN", "yes")
				}
				for _, p := range output.SortedKeys(w.Roles) {
					t.Row("ROLE", p+": "+string(w.Roles[p]))
				}
			})
		},
	}
}
