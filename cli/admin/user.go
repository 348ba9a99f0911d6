package admin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/client"
)

func newUserCreateCommand(o *command.Options) *cobra.Command {
	var clusterAdmin, passwordStdin bool
	var roles []string
	cmd := &cobra.Command{
		Use:   "create NAME [--role PROJECT=ROLE]... [--cluster-admin] [--password-stdin]",
		Short: "Create a user, optionally with a password for the web console (cluster admins)",
		Example: "  ouro user create alice --role web=member\n" +
			"  printf '%s\\n' \"$PASSWORD\" | ouro user create bob --role web=viewer --password-stdin",
		Args: command.ExactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if e := api.ValidateName("metadata.name", args[0]); e != nil {
				return command.ArgError("user name %q: %s (%s)", args[0], e.Message, e.Hint)
			}
			u := &api.User{Kind: api.UserKind.Name, Metadata: api.ObjectMeta{Name: args[0]},
				Spec: api.UserSpec{ClusterAdmin: clusterAdmin}}
			kv, err := command.ParseKeyValues("role", roles)
			if err != nil {
				return err
			}
			for p, r := range kv {
				if !api.Role(r).Valid() {
					return command.FlagError("role", "%s=%s: %q is not a role: use admin, member or viewer", p, r, r)
				}
				if u.Spec.Roles == nil {
					u.Spec.Roles = map[string]api.Role{}
				}
				u.Spec.Roles[p] = api.Role(r)
			}
			var password string
			if passwordStdin {
				if password, err = readPassword(cmd); err != nil {
					return err
				}
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if _, err := c.Create(ctx, u, client.CreateOptions{IdempotencyKey: command.NewInvocationID()}); err != nil {
				return err
			}
			if passwordStdin {
				if err := c.SetPassword(ctx, u.Metadata.Name, password); err != nil {
					return fmt.Errorf("user %s was created, but setting the password failed: %w", u.Metadata.Name, err)
				}
				u.Status.PasswordSet = true
			}
			return o.Render(cmd.OutOrStdout(), u, userTable([]*api.User{u}))
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&clusterAdmin, "cluster-admin", false, "the user may do anything anywhere")
	fl.StringArrayVar(&roles, "role", nil, "PROJECT=ROLE (admin, member or viewer); repeatable")
	fl.BoolVar(&passwordStdin, "password-stdin", false, "read the console password from standard input (first line)")
	return cmd
}

func newUserPasswdCommand(o *command.Options) *cobra.Command {
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "passwd [NAME] --password-stdin",
		Short: "Set the web console password of a user (yourself by default; cluster admins: anyone)",
		Long: "Set the password a user signs in to the web console with. Without NAME it is your own.\n" +
			"The password is read from the first line of standard input and must have at least\n" +
			fmt.Sprint(auth.MinPasswordLength) + " characters. Every console session signed in with the old one ends.",
		Example: "  printf '%s\\n' \"$PASSWORD\" | ouro user passwd --password-stdin",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !passwordStdin {
				return command.FlagError("password-stdin", "is required: pipe the new password in, e.g. printf '%%s\\n' \"$PASSWORD\" | ouro user passwd --password-stdin")
			}
			var name string
			if len(args) == 1 {
				name = args[0]
				if e := api.ValidateName("metadata.name", name); e != nil {
					return command.ArgError("user name %q: %s (%s)", name, e.Message, e.Hint)
				}
			}
			password, err := readPassword(cmd)
			if err != nil {
				return err
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if name == "" {
				who, err := c.Whoami(ctx)
				if err != nil {
					return err
				}
				if who.User == "" {
					return errors.New("this token is not a user's: name the user")
				}
				name = who.User
			}
			if err := c.SetPassword(ctx, name, password); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Password of user %s set.\n", name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the new password from standard input (first line)")
	cmd.ValidArgsFunction = o.CompleteNames(api.UserKind, false)
	return cmd
}

// readPassword reads a password from the first line of standard input
// and checks it as the server will.
func readPassword(cmd *cobra.Command) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), auth.MaxPasswordLength+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from standard input: %w", err)
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if pw == "" {
		return "", command.FlagError("password-stdin", "password: standard input is empty; pipe the password in")
	}
	if err := auth.ValidatePassword(pw); err != nil {
		return "", command.FlagError("password-stdin", "password: %v", err)
	}
	return pw, nil
}
