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

// NewServerCommand returns the server command with the subcommands that
// manage the control plane's servers: join-token, list and remove. The
// daemon gives the command itself its flags and what it runs (`ouro
// server` starts a server).
func NewServerCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run an API server, or manage the control plane's servers",
	}
	cmd.AddCommand(newServerJoinTokenCommand(o), newServerListCommand(o), newServerRemoveCommand(o))
	return cmd
}

func newServerJoinTokenCommand(o *command.Options) *cobra.Command {
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "join-token",
		Short: "Issue a single-use token that lets a new server join (cluster admins)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl < time.Minute || ttl > 24*time.Hour {
				return command.FlagError("ttl", "%s is out of range: use a duration from 1m to 24h", ttl)
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			jt, err := c.CreateServerJoinToken(cmd.Context(), api.ServerJoinTokenRequest{TTL: ttl.String()})
			if err != nil {
				return err
			}
			if o.Output != "table" {
				return o.Render(cmd.OutOrStdout(), jt, nil)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Server join token (single use, valid until %s; it is not shown again):\n\n  %s\n\n",
				jt.ExpiresAt.Local().Format(time.RFC3339), jt.Token)
			fmt.Fprintf(w, "On the new server, run:\n\n  ouro server --join %s \\\n"+
				"    --name NAME --etcd-peer-url https://ADDRESS:2380 [--api-vip ...]\n\n"+
				"It checks the cluster CA against the token's pin, joins through %s\n"+
				"and becomes an etcd member and a server.\n", jt.Token, jt.APIURL)
			return nil
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token stays valid")
	return cmd
}

func newServerListCommand(o *command.Options) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the control plane's servers: etcd members, readiness, API VIP and controller leader (cluster admins)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			l, err := c.ListServers(cmd.Context())
			if err != nil {
				return err
			}
			return o.Render(cmd.OutOrStdout(), l, func(t *output.Table) {
				t.Row("NAME", "READY", "API VIP", "CONTROLLERS", "API", "PEER", "MEMBER")
				for _, s := range l.Items {
					name, ready := s.Name, output.YesNo(s.Ready)
					switch {
					case !s.Started:
						name, ready = "(not started)", "no"
					case s.Learner:
						ready = "catching up"
					}
					t.Row(name, ready, mark(s.HoldsAPIVIP, "holder"), mark(s.ControllerLeader, "leader"),
						s.APIURL, strings.Join(s.PeerURLs, ","), s.MemberID)
				}
			})
		},
	}
}

func mark(b bool, s string) string {
	if b {
		return s
	}
	return ""
}

func newServerRemoveCommand(o *command.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME|MEMBER-ID",
		Short: "Remove a server's etcd member from the cluster (cluster admins)",
		Long: "Remove a server's etcd member from the cluster, after its machine is gone or its server\n" +
			"stopped for good. A member whose server never started is named by its MEMBER id (ouro\n" +
			"server list). The last member, and a member whose removal would leave fewer ready\n" +
			"members than a quorum, are not removed.",
		Args: command.ExactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			if err := c.RemoveServer(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "server %s removed\n", args[0])
			return nil
		},
	}
}
