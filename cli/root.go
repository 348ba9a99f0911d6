// Package cli is the ouro command line: the commands users type to manage
// instances, instance groups, images, flavors, networks, security groups,
// floating IPs, hosts, projects, tokens and users, built with cobra on top
// of package client. The daemon subcommands (up, server, agent) are added
// by package main.
//
// Run it with
//
//	root := cli.NewRootCommand()
//	os.Exit(cli.Execute(ctx, root))
//
// so that errors are printed as "Error: <message> (field: ...; hint: ...)"
// and exec's exit codes reach the shell.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/clientconfig"
)

// Environment variables the CLI reads.
const (
	EnvToken  = "OURO_TOKEN"
	EnvServer = "OURO_SERVER"
)

// DefaultProject is used when neither --project nor the context names one.
const DefaultProject = "default"

// Version is the version of the ouro binary; release builds set it with
// -ldflags "-X github.com/ouroboros-cloud/ouro/cli.Version=v1.2.3".
var Version = ""

// errNoConfig is returned when there is no way to reach a cloud.
var errNoConfig = errors.New("no cloud configured: run `ouro up` or set OURO_CONFIG")

// options are the global flags and what they resolve to.
type options struct {
	contextName string
	project     string
	token       string
	server      string
	output      string

	// resolved lazily by client()
	c       *client.Client
	current *clientconfig.Context
}

// NewRootCommand returns the ouro command with every client subcommand.
func NewRootCommand() *cobra.Command {
	o := &options{}
	root := &cobra.Command{
		Use:   "ouro",
		Short: "Ouroboros: a private cloud in one binary",
		Long: "ouro manages an Ouroboros cloud: instances, instance groups, images, flavors, networks,\n" +
			"security groups, floating IPs, key pairs, hosts, projects and tokens.\n" +
			"Run `ouro up` to start a cloud on this machine.",
		// Execute prints errors itself; a plain root.Execute() leaves it to
		// cobra, which then prints the displayError text.
		SilenceUsage: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return o.validate()
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&o.contextName, "context", "", "context of the client configuration to use (default: the current context)")
	pf.StringVar(&o.project, "project", "", "project to act in (default: the context's project, else \"default\")")
	pf.StringVar(&o.token, "token", "", "bearer token to act as another user, with the context's server and CA (env "+EnvToken+")")
	pf.StringVar(&o.server, "server", "", "API server URL, overriding the context's (env "+EnvServer+")")
	pf.StringVarP(&o.output, "output", "o", "table", "output format: table, json or yaml")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{msg: err.Error()} })
	root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
	root.RegisterFlagCompletionFunc("context", o.completeContexts)
	root.RegisterFlagCompletionFunc("project", o.completeNames(api.ProjectKind, false))

	root.AddCommand(
		newInstanceCommand(o),
		newGroupCommand(o),
		newImageCommand(o),
		newFlavorCommand(o),
		newNetworkCommand(o),
		newSecurityGroupCommand(o),
		newFloatingIPCommand(o),
		newKeyPairCommand(o),
		newHostCommand(o),
		newProjectCommand(o),
		newTokenCommand(o),
		newUserCommand(o),
		newEventsCommand(o),
		newWhoamiCommand(o),
		newContextCommand(o),
		newVersionCommand(),
	)
	wrapErrors(root)
	return root
}

// displayError makes an error print as FormatError renders it, also when
// cobra prints it.
type displayError struct{ err error }

func (e *displayError) Error() string { return FormatError(e.err) }
func (e *displayError) Unwrap() error { return e.err }

// wrapErrors makes the RunE of c and its subcommands return displayErrors.
func wrapErrors(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if err := run(cmd, args); err != nil {
				return &displayError{err: err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		wrapErrors(sub)
	}
}

// validate checks the global flags before any request is sent.
func (o *options) validate() error {
	switch o.output {
	case "table", "json", "yaml":
	default:
		return flagError("output", "unknown output format %q: use table, json or yaml", o.output)
	}
	return nil
}

// client returns the API client for the selected context, building it on
// first use.
func (o *options) client() (*client.Client, error) {
	if o.c != nil {
		return o.c, nil
	}
	path, cfg, err := loadConfig()
	if err != nil {
		return nil, err
	}
	var cur *clientconfig.Context
	switch {
	case o.contextName != "":
		if cur = cfg.Find(o.contextName); cur == nil {
			return nil, flagError("context", "context %q is not in %s (known: %s)", o.contextName, path, knownList(cfg.Names()))
		}
	case cfg.CurrentContext != "":
		if cur, err = cfg.Current(); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	case len(cfg.Contexts) == 1:
		cur = &cfg.Contexts[0]
	}
	cc := client.Config{UserAgent: "ouro/" + version()}
	if cur != nil {
		cc.Server, cc.Token, cc.CACert = cur.Server, cur.Token, []byte(cur.CACert)
	}
	if s := firstNonEmpty(o.server, os.Getenv(EnvServer)); s != "" {
		cc.Server = s
	}
	if t := firstNonEmpty(o.token, os.Getenv(EnvToken)); t != "" {
		cc.Token = t
	}
	if cc.Server == "" {
		if len(cfg.Contexts) > 1 {
			return nil, fmt.Errorf("no current context in %s: pick one with --context (known: %s)", path, knownList(cfg.Names()))
		}
		return nil, errNoConfig
	}
	c, err := client.New(cc)
	if err != nil {
		return nil, err
	}
	o.c, o.current = c, cur
	return c, nil
}

// projectName returns the project commands act in.
func (o *options) projectName() string {
	if o.project != "" {
		return o.project
	}
	if o.current == nil {
		// Resolve the context for its project; errors surface in client().
		o.client()
	}
	if o.current != nil && o.current.Project != "" {
		return o.current.Project
	}
	return DefaultProject
}

func knownList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// version returns the binary's version: Version when set by the linker,
// else the module version or VCS revision recorded by the Go toolchain.
func version() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "devel-" + s.Value[:12]
		}
	}
	return "devel"
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of ouro",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "ouro %s (%s, %s/%s)\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}

func newWhoamiCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the token in use is and what it may do",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			w, err := c.Whoami(cmd.Context())
			if err != nil {
				return err
			}
			return o.render(cmd.OutOrStdout(), w, func(t *table) {
				who := w.User
				kind := "user"
				if w.Host != "" {
					who, kind = w.Host, "host"
				}
				t.row("SERVER", c.Server())
				t.row(strings.ToUpper(kind), who)
				if w.ClusterAdmin {
					t.row("CLUSTER ADMIN", "yes")
				}
				for _, p := range sortedKeys(w.Roles) {
					t.row("ROLE", p+": "+string(w.Roles[p]))
				}
			})
		},
	}
}

// ExitError asks Execute to exit with Code without printing anything; exec
// uses it to pass on the exit code of the remote command.
type ExitError struct {
	Code int
}

// Error says which exit code the command asks for.
func (e *ExitError) Error() string { return fmt.Sprintf("the command exited with status %d", e.Code) }

// Execute runs root with ctx, prints an error the way users should read it
// on root's error stream, and returns the process exit code: 0 on success,
// the remote command's code for exec, 1 for any other failure.
func Execute(ctx context.Context, root *cobra.Command) int {
	root.SilenceErrors = true
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		return exit.Code
	}
	PrintError(root.ErrOrStderr(), err)
	if cmd != nil && isUsageError(err) {
		fmt.Fprintf(root.ErrOrStderr(), "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return 1
}

// PrintError writes err as "Error: <message> (field: <field>; hint: <hint>)"
// followed by a newline. An API error wrapped with context keeps the
// context in front of its message.
func PrintError(w io.Writer, err error) {
	fmt.Fprintf(w, "Error: %s\n", FormatError(err))
}

// FormatError renders err for people: API errors show their field and hint.
func FormatError(err error) string {
	if d, ok := err.(*displayError); ok {
		err = d.err
	}
	var ae *api.Error
	if !errors.As(err, &ae) {
		return err.Error()
	}
	msg := ae.Message
	var extra []string
	if ae.Field != "" {
		extra = append(extra, "field: "+ae.Field)
	}
	if ae.Hint != "" {
		extra = append(extra, "hint: "+ae.Hint)
	}
	if len(extra) > 0 {
		msg += " (" + strings.Join(extra, "; ") + ")"
	}
	// Keep context wrapped around the API error ("create web-2: ...").
	if outer := err.Error(); outer != ae.Error() && strings.HasSuffix(outer, ae.Error()) {
		msg = strings.TrimSuffix(outer, ae.Error()) + msg
	}
	return msg
}

// usageError marks bad command-line input.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// flagError returns an error about a flag's value.
func flagError(flag, format string, args ...any) error {
	return &usageError{msg: "--" + flag + ": " + fmt.Sprintf(format, args...)}
}

// argError returns an error about a positional argument.
func argError(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func isUsageError(err error) bool {
	var u *usageError
	return errors.As(err, &u) || strings.HasPrefix(err.Error(), "unknown command")
}

// exactArgs accepts exactly the named positional arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		n := len(args)
		if d := cmd.ArgsLenAtDash(); d >= 0 {
			n = d
		}
		if n != len(names) {
			return argError("%s wants %s, got %d argument(s)", cmd.CommandPath(), strings.Join(names, " "), n)
		}
		return nil
	}
}

// minArgs accepts at least one argument, described by name.
func minArgs(name string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return argError("%s wants at least one %s", cmd.CommandPath(), name)
		}
		return nil
	}
}
