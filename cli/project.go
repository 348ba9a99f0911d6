package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
)

func newProjectCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "project",
		Aliases: []string{"projects"},
		Short:   "Manage projects",
	}
	cmd.AddCommand(
		newProjectCreateCommand(o),
		newListCommand(o, api.ProjectKind, "List projects", projectTable),
		newGetCommand(o, api.ProjectKind, "Show a project", projectTable),
		newDeleteCommand(o, api.ProjectKind, "Delete projects"),
	)
	return cmd
}

func projectTable(items []*api.Project) func(*table) {
	return func(t *table) {
		now := time.Now()
		t.row("NAME", "DESCRIPTION", "AGE")
		for _, p := range items {
			t.row(p.Metadata.Name, p.Spec.Description, age(p.Metadata.CreationTimestamp, now))
		}
	}
}

func newProjectCreateCommand(o *options) *cobra.Command {
	var description string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a project (cluster admins)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if e := api.ValidateName("metadata.name", args[0]); e != nil {
				return argError("project name %q: %s (%s)", args[0], e.Message, e.Hint)
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			p := &api.Project{Kind: api.ProjectKind.Name, Metadata: api.ObjectMeta{Name: args[0]},
				Spec: api.ProjectSpec{Description: description}}
			if _, err := c.Create(cmd.Context(), p, client.CreateOptions{IdempotencyKey: newInvocationID()}); err != nil {
				return err
			}
			return o.render(cmd.OutOrStdout(), p, projectTable([]*api.Project{p}))
		},
	}
	cmd.Flags().StringVar(&description, "description", "", "what the project is for")
	return cmd
}
