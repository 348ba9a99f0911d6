package admin

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
)

// NewTokenCommand returns the token command and its subcommands.
func NewTokenCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "token",
		Aliases: []string{"tokens"},
		Short:   "Issue API tokens",
	}
	cmd.AddCommand(newTokenCreateCommand(o))
	return cmd
}

func newTokenCreateCommand(o *command.Options) *cobra.Command {
	var role, user, description string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "create --project P --role admin|member|viewer [--user NAME]",
		Short: "Grant a user a role in a project and issue a token for them",
		Long: "Grant a user a role in the project and issue an API token for them. Without --user a new\n" +
			"user named <project>-<role>-<random> is made, so the token has exactly that role and no\n" +
			"other grant. The secret is printed once and never again.",
		Example: "  ouro token create --project web --role member --user ci --ttl 720h",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !api.Role(role).Valid() {
				return command.FlagError("role", "%q is not a role: use admin, member or viewer", role)
			}
			if ttl < 0 {
				return command.FlagError("ttl", "%s is negative: use a duration such as 720h, or 0 for no expiry", ttl)
			}
			if user != "" {
				if e := api.ValidateName("user", user); e != nil {
					return command.FlagError("user", "%s (%s)", e.Message, e.Hint)
				}
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if user == "" {
				user = newUserName(o.Project(), role)
			}
			req := api.TokenRequest{User: user, Project: o.Project(), Role: api.Role(role), Description: description}
			if ttl > 0 {
				req.TTL = ttl.String()
			}
			tok, err := c.CreateToken(ctx, req)
			if err != nil {
				return err
			}
			if tok.Status.Secret == "" {
				return errors.New("create token: the server returned no secret")
			}
			if o.Output != "table" {
				return o.Render(cmd.OutOrStdout(), tok, nil)
			}
			w := cmd.OutOrStdout()
			expiry := "never expires"
			if tok.Spec.ExpiresAt != nil {
				expiry = "valid until " + tok.Spec.ExpiresAt.Local().Format(time.RFC3339)
			}
			fmt.Fprintf(w, "Token for user %s, %s in project %s (%s):\n\n  %s\n\n", user, role, req.Project, expiry, tok.Status.Secret)
			fmt.Fprintf(w, "Store it now: it is not shown again. Use it with --token or %s.\n", command.EnvToken)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&role, "role", "", "role to grant: admin, member or viewer (required)")
	fl.StringVar(&user, "user", "", "user to grant the role to and issue the token for (default: yourself)")
	fl.DurationVar(&ttl, "ttl", 0, "how long the token stays valid (0: no expiry)")
	fl.StringVar(&description, "description", "", "what the token is for")
	cmd.RegisterFlagCompletionFunc("role", cobra.FixedCompletions([]string{"admin", "member", "viewer"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("user", o.CompleteNames(api.UserKind, true))
	return cmd
}

// NewUserCommand returns the user command and its subcommands.
func NewUserCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "user",
		Aliases: []string{"users"},
		Short:   "Manage users (cluster admins)",
	}
	cmd.AddCommand(
		newUserCreateCommand(o),
		newUserPasswdCommand(o),
		command.NewList(o, api.UserKind, "List users", userTable),
		command.NewGet(o, api.UserKind, "Show a user", userTable),
		command.NewDelete(o, api.UserKind, "Delete users"),
	)
	return cmd
}

func userTable(items []*api.User) func(*output.Table) {
	return func(t *output.Table) {
		now := time.Now()
		t.Row("NAME", "CLUSTER-ADMIN", "ROLES", "PASSWORD", "AGE")
		for _, u := range items {
			admin := "no"
			if u.Spec.ClusterAdmin {
				admin = "yes"
			}
			roles := make([]string, 0, len(u.Spec.Roles))
			for _, p := range output.SortedKeys(u.Spec.Roles) {
				roles = append(roles, p+"="+string(u.Spec.Roles[p]))
			}
			t.Row(u.Metadata.Name, admin, strings.Join(roles, ","), output.YesNo(u.Status.PasswordSet), output.Age(u.Metadata.CreationTimestamp, now))
		}
	}
}

// newUserName names a fresh user for a token that should carry exactly one
// grant: "<project>-<role>-<5 random letters>", cut to a valid name.
func newUserName(project, role string) string {
	b := make([]byte, 5)
	rand.Read(b)
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	prefix := project + "-" + role
	if len(prefix) > api.MaxNameLength-6 {
		prefix = strings.TrimRight(prefix[:api.MaxNameLength-6], "-")
	}
	return prefix + "-" + string(b)
}
