package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/client"
)

// NewList returns a "list" command for a kind whose table is
// written by fill.
func NewList[T any, P interface {
	*T
	api.Object
}](o *Options, kind *api.Kind, short string, fill func([]P) func(*output.Table)) *cobra.Command {
	var selector string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   short,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := api.ParseSelector(selector); err != nil {
				return FlagError("selector", "%s", FormatError(err))
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			project := ""
			if kind.Namespaced {
				project = o.Project()
			}
			items, _, err := client.ListAll[T](cmd.Context(), c, kind, project,
				client.ListOptions{LabelSelector: selector, View: TableView(o, kind)})
			if err != nil {
				return err
			}
			ptrs := make([]P, len(items))
			for i := range items {
				ptrs[i] = P(&items[i])
			}
			return output.RenderList(cmd.OutOrStdout(), cmd.ErrOrStderr(), o.Output, kind.Plural, ptrs, fill(ptrs))
		},
	}
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "label selector, e.g. tier=gold")
	return cmd
}

// TableView returns the view a list of kind asks for: api.ViewTable when
// the output is a table and the kind has that view (the server then
// answers only the columns printed), else "" (whole objects, for -o json
// and yaml).
func TableView(o *Options, kind *api.Kind) string {
	if o.Output == "table" && kind.ViewOf(api.ViewTable) != nil {
		return api.ViewTable
	}
	return ""
}

// NewGet returns a "get NAME" command for a kind.
func NewGet[T any, P interface {
	*T
	api.Object
}](o *Options, kind *api.Kind, short string, fill func([]P) func(*output.Table)) *cobra.Command {
	return NewShow(o, kind, "get", short, func(cmd *cobra.Command, obj P) error {
		return o.Render(cmd.OutOrStdout(), obj, fill([]P{obj}))
	})
}

// NewShow returns a command "verb NAME" that reads the object of a kind
// named NAME and passes it to show, which writes what the command shows
// of it (its outputs, its members).
func NewShow[T any, P interface {
	*T
	api.Object
}](o *Options, kind *api.Kind, verb, short string, show func(cmd *cobra.Command, obj P) error) *cobra.Command {
	return &cobra.Command{
		Use:               verb + " NAME",
		Short:             short,
		Args:              ExactArgs("NAME"),
		ValidArgsFunction: o.CompleteNames(kind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			project := ""
			if kind.Namespaced {
				project = o.Project()
			}
			obj := P(new(T))
			if err := c.Get(cmd.Context(), kind, project, args[0], obj); err != nil {
				return err
			}
			return show(cmd, obj)
		},
	}
}

// NewDelete returns a "delete NAME..." command for a kind.
func NewDelete(o *Options, kind *api.Kind, short string) *cobra.Command {
	cmd := NewRemove(o, kind, "delete", "deleted", short)
	cmd.Aliases = []string{"rm"}
	return cmd
}

// NewRemove returns a command "verb NAME..." that deletes objects
// of a kind and reports each as done ("floatingip/x released").
func NewRemove(o *Options, kind *api.Kind, verb, done, short string) *cobra.Command {
	singular := strings.ToLower(kind.Name)
	return &cobra.Command{
		Use:               verb + " NAME...",
		Short:             short,
		Args:              MinArgs("NAME"),
		ValidArgsFunction: o.CompleteNames(kind, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			project := ""
			if kind.Namespaced {
				project = o.Project()
			}
			var first error
			for _, n := range args {
				if err := c.Delete(cmd.Context(), kind, project, n); err != nil {
					err = fmt.Errorf("%s %s %s: %w", verb, output.HumanName(kind), n, err)
					if first == nil {
						first = err
					} else {
						PrintError(cmd.ErrOrStderr(), err)
					}
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s/%s %s\n", singular, n, done)
			}
			return first
		},
	}
}

// NewDeleteWait deletes objects of a project kind whose deletion
// goes on after the API answers, printing done after each name; with
// --wait it then calls wait for the names it deleted, under --timeout.
func NewDeleteWait(o *Options, kind *api.Kind, short, done, waitHelp string,
	wait func(ctx context.Context, c *client.Client, project string, names []string, out io.Writer) error) *cobra.Command {
	var waiting bool
	var timeout time.Duration
	singular := strings.ToLower(kind.Name)
	cmd := &cobra.Command{
		Use:               "delete NAME...",
		Aliases:           []string{"rm"},
		Short:             short,
		Args:              MinArgs("NAME"),
		ValidArgsFunction: o.CompleteNames(kind, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			if waiting && timeout <= 0 {
				return FlagError("timeout", "%s is not positive: use a duration such as 5m", timeout)
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			project := o.Project()
			out := cmd.OutOrStdout()
			var errs []error
			var deleting []string
			for _, n := range args {
				if err := c.Delete(cmd.Context(), kind, project, n); err != nil {
					errs = append(errs, fmt.Errorf("delete %s %s: %w", output.HumanName(kind), n, err))
					continue
				}
				deleting = append(deleting, n)
				fmt.Fprintf(out, "%s/%s%s\n", singular, n, done)
			}
			if waiting && len(deleting) > 0 {
				ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
				defer cancel()
				if err := wait(ctx, c, project, deleting, out); err != nil {
					errs = append(errs, err)
				}
			}
			if len(errs) == 1 {
				return errs[0]
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVar(&waiting, "wait", false, waitHelp)
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long --wait waits")
	return cmd
}
