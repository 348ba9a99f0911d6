package command

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
)

// completionTimeout bounds the API call behind a shell completion, so a
// cloud that does not answer never hangs the user's shell.
const completionTimeout = 5 * time.Second

// CompleteNames returns a completion function offering the names of
// objects of kind (in the selected project for namespaced kinds). With
// many set it completes every argument, skipping names already given;
// otherwise only the first.
func (o *Options) CompleteNames(kind *api.Kind, many bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if !many && len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		names, err := o.listNames(cmd.Context(), kind)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		var out []cobra.Completion
		for _, n := range names {
			if strings.HasPrefix(n, toComplete) && !slices.Contains(args, n) {
				out = append(out, n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// CompleteArgs returns a completion function offering, for the i-th
// positional argument, the names of objects of kinds[i].
func (o *Options) CompleteArgs(kinds ...*api.Kind) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) >= len(kinds) {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return o.CompleteNames(kinds[len(args)], true)(cmd, nil, toComplete)
	}
}

// CompletionContext returns the context of an API call behind a shell
// completion, bounded by completionTimeout.
func CompletionContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, completionTimeout)
}

// listNames lists the names of a kind's objects through the API.
func (o *Options) listNames(ctx context.Context, kind *api.Kind) ([]string, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	defer cancel()
	c, err := o.Client()
	if err != nil {
		return nil, err
	}
	project := ""
	if kind.Namespaced {
		project = o.Project()
	}
	// Every object has metadata.name; decode only that.
	items, _, err := client.ListAll[struct {
		Metadata api.ObjectMeta `json:"metadata"`
	}](ctx, c, kind, project, client.ListOptions{})
	if err != nil {
		return nil, err
	}
	names := make([]string, len(items))
	for i, it := range items {
		names[i] = it.Metadata.Name
	}
	return names, nil
}

// CompleteContexts offers the context names of the client configuration.
func (o *Options) CompleteContexts(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	_, cfg, err := LoadConfig()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	var out []cobra.Completion
	for _, n := range cfg.Names() {
		if strings.HasPrefix(n, toComplete) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
