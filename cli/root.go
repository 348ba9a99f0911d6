// Package cli is the ouro command line: the commands users type to manage
// instances, instance groups, images, flavors, networks, security groups,
// floating IPs, load balancers, hosts, projects, tokens and users, built
// with cobra on top of package client. The daemon subcommands (up,
// server, agent) are added by package main.
//
// The commands live in packages by family (cli/instance, cli/group,
// cli/network, cli/loadbalancer, cli/catalog, cli/admin, cli/events),
// each with a constructor that NewRootCommand calls; what they share is
// in cli/command, cli/output and cli/wait.
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
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/admin"
	clibootstrap "github.com/ouroboros-cloud/ouro/cli/bootstrap"
	"github.com/ouroboros-cloud/ouro/cli/catalog"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/events"
	"github.com/ouroboros-cloud/ouro/cli/group"
	"github.com/ouroboros-cloud/ouro/cli/instance"
	"github.com/ouroboros-cloud/ouro/cli/loadbalancer"
	"github.com/ouroboros-cloud/ouro/cli/network"
	"github.com/ouroboros-cloud/ouro/cli/stack"
	"github.com/ouroboros-cloud/ouro/cli/volume"
)

// Version is the version of the ouro binary; release builds set it with
// -ldflags "-X github.com/ouroboros-cloud/ouro/cli.Version=v1.2.3".
var Version = ""

// NewRootCommand returns the ouro command with every client subcommand.
// It is the one place that wires the command families together.
func NewRootCommand() *cobra.Command {
	o := &command.Options{UserAgent: "ouro/" + version()}
	root := &cobra.Command{
		Use:   "ouro",
		Short: "Ouroboros: a private cloud in one binary",
		Long: "ouro manages an Ouroboros cloud: instances, instance groups, images, flavors, networks,\n" +
			"security groups, floating IPs, load balancers, key pairs, hosts, projects and tokens.\n" +
			"Run `ouro up` to start a cloud on this machine.",
		// Execute prints errors itself; a plain root.Execute() leaves it to
		// cobra, which then prints the text command.WrapErrors gives them.
		SilenceUsage: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return o.Validate()
		},
	}
	o.AddFlags(root)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return command.UsageError(err.Error()) })
	root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
	root.RegisterFlagCompletionFunc("context", o.CompleteContexts)
	root.RegisterFlagCompletionFunc("project", o.CompleteNames(api.ProjectKind, false))

	root.AddCommand(
		instance.NewCommand(o),
		group.NewCommand(o),
		catalog.NewImageCommand(o),
		catalog.NewFlavorCommand(o),
		network.NewNetworkCommand(o),
		network.NewVPCCommand(o),
		network.NewSecurityGroupCommand(o),
		network.NewFloatingIPCommand(o),
		loadbalancer.NewCommand(o),
		volume.NewCommand(o),
		volume.NewSnapshotCommand(o),
		volume.NewPoolCommand(o),
		stack.NewCommand(o),
		stack.NewApplyCommand(o),
		clibootstrap.NewCommand(o),
		catalog.NewKeyPairCommand(o),
		admin.NewHostCommand(o),
		admin.NewServerCommand(o),
		admin.NewProjectCommand(o),
		admin.NewTokenCommand(o),
		admin.NewCredentialsCommand(o),
		admin.NewUserCommand(o),
		events.NewCommand(o),
		admin.NewWhoamiCommand(o),
		newContextCommand(o),
		newVersionCommand(),
	)
	command.WrapErrors(root)
	return root
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

// Execute runs root with ctx, prints an error the way users should read it
// on root's error stream, and returns the process exit code: 0 on success,
// the remote command's code for exec, 1 for any other failure.
func Execute(ctx context.Context, root *cobra.Command) int {
	root.SilenceErrors = true
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var exit *command.ExitError
	if errors.As(err, &exit) {
		return exit.Code
	}
	command.PrintError(root.ErrOrStderr(), err)
	if cmd != nil && command.IsUsageError(err) {
		fmt.Fprintf(root.ErrOrStderr(), "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return 1
}
