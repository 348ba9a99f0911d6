// Package admin holds the ouro commands that say who may do what and
// where things run: projects, users, tokens, whoami, and the hosts of the
// cloud with the tokens that let new ones join.
package admin

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/client"
)

// NewProjectCommand returns the project command and its subcommands.
func NewProjectCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "project",
		Aliases: []string{"projects"},
		Short:   "Manage projects",
	}
	cmd.AddCommand(
		newProjectCreateCommand(o),
		command.NewList(o, api.ProjectKind, "List projects", projectTable),
		command.NewGet(o, api.ProjectKind, "Show a project", projectTable),
		command.NewDelete(o, api.ProjectKind, "Delete projects"),
	)
	return cmd
}

func projectTable(items []*api.Project) func(*output.Table) {
	return func(t *output.Table) {
		now := time.Now()
		t.Row("NAME", "DESCRIPTION", "AGE")
		for _, p := range items {
			t.Row(p.Metadata.Name, p.Spec.Description, output.Age(p.Metadata.CreationTimestamp, now))
		}
	}
}

func newProjectCreateCommand(o *command.Options) *cobra.Command {
	var description string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a project (cluster admins)",
		Args:  command.ExactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if e := api.ValidateName("metadata.name", args[0]); e != nil {
				return command.ArgError("project name %q: %s (%s)", args[0], e.Message, e.Hint)
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			p := &api.Project{Kind: api.ProjectKind.Name, Metadata: api.ObjectMeta{Name: args[0]},
				Spec: api.ProjectSpec{Description: description}}
			if _, err := c.Create(cmd.Context(), p, client.CreateOptions{IdempotencyKey: command.NewInvocationID()}); err != nil {
				return err
			}
			return o.Render(cmd.OutOrStdout(), p, projectTable([]*api.Project{p}))
		},
	}
	cmd.Flags().StringVar(&description, "description", "", "what the project is for")
	return cmd
}
