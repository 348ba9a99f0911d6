package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/clientconfig"
)

func newContextCommand(o *options) *cobra.Command {
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
				path, cfg, err := loadConfig()
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
				return o.render(cmd.OutOrStdout(), views, func(t *table) {
					t.row("CURRENT", "NAME", "SERVER", "PROJECT")
					for _, v := range views {
						cur := " "
						if v.Current {
							cur = "*"
						}
						t.row(cur, v.Name, v.Server, v.Project)
					}
				})
			},
		},
		&cobra.Command{
			Use:               "use NAME",
			Short:             "Make a context the current one",
			Args:              exactArgs("NAME"),
			ValidArgsFunction: o.completeContexts,
			RunE: func(cmd *cobra.Command, args []string) error {
				path, cfg, err := loadConfig()
				if err != nil {
					return err
				}
				if cfg.Find(args[0]) == nil {
					return argError("context %q is not in %s (known: %s)", args[0], path, knownList(cfg.Names()))
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
			Args:              exactArgs("NAME"),
			ValidArgsFunction: o.completeContexts,
			RunE: func(cmd *cobra.Command, args []string) error {
				path, cfg, err := loadConfig()
				if err != nil {
					return err
				}
				if !cfg.Remove(args[0]) {
					return argError("context %q is not in %s (known: %s)", args[0], path, knownList(cfg.Names()))
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

// loadConfig reads the client configuration from its default path.
func loadConfig() (string, *clientconfig.Config, error) {
	path, err := clientconfig.DefaultPath()
	if err != nil {
		return "", nil, err
	}
	cfg, err := clientconfig.Load(path)
	if err != nil {
		return "", nil, err
	}
	return path, cfg, nil
}
