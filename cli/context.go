package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
)

func newContextCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "context",
		Aliases: []string{"contexts"},
		Short:   "Show and switch the clouds of the client configuration",
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:     "list",
			Aliases: []string{"ls"},
			Short:   "List contexts",
			Args:    cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				path, cfg, err := command.LoadConfig()
				if err != nil {
					return err
				}
				if len(cfg.Contexts) == 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "No contexts in %s.\n", path)
					return nil
				}
				// Never print tokens.
				type view struct {
					Name    string `json:"name"`
					Server  string `json:"server"`
					Project string `json:"project,omitempty"`
					Current bool   `json:"current"`
				}
				views := make([]view, len(cfg.Contexts))
				for i, c := range cfg.Contexts {
					views[i] = view{c.Name, c.Server, c.Project, c.Name == cfg.CurrentContext}
				}
				return o.Render(cmd.OutOrStdout(), views, func(t *output.Table) {
					t.Row("CURRENT", "NAME", "SERVER", "PROJECT")
					for _, v := range views {
						cur := " "
						if v.Current {
							cur = "*"
						}
						t.Row(cur, v.Name, v.Server, v.Project)
					}
				})
			},
		},
		&cobra.Command{
			Use:               "use NAME",
			Short:             "Make a context the current one",
			Args:              command.ExactArgs("NAME"),
			ValidArgsFunction: o.CompleteContexts,
			RunE: func(cmd *cobra.Command, args []string) error {
				path, cfg, err := command.LoadConfig()
				if err != nil {
					return err
				}
				if cfg.Find(args[0]) == nil {
					return command.ArgError("context %q is not in %s (known: %s)", args[0], path, command.KnownList(cfg.Names()))
				}
				cfg.CurrentContext = args[0]
				if err := cfg.Save(path); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Now using context %s.\n", args[0])
				return nil
			},
		},
		&cobra.Command{
			Use:               "delete NAME",
			Short:             "Remove a context from the client configuration",
			Args:              command.ExactArgs("NAME"),
			ValidArgsFunction: o.CompleteContexts,
			RunE: func(cmd *cobra.Command, args []string) error {
				path, cfg, err := command.LoadConfig()
				if err != nil {
					return err
				}
				if !cfg.Remove(args[0]) {
					return command.ArgError("context %q is not in %s (known: %s)", args[0], path, command.KnownList(cfg.Names()))
				}
				if err := cfg.Save(path); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Context %s removed.\n", args[0])
				return nil
			},
		},
	)
	return cmd
}
