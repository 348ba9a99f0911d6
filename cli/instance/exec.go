package instance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
)

// maxExecStdin bounds what instance exec reads from its standard input.
const maxExecStdin = 16 << 20

func newInstanceLogsCommand(o *command.Options) *cobra.Command {
	var follow bool
	var tail int
	cmd := &cobra.Command{
		Use:               "logs NAME",
		Short:             "Print an instance's output",
		Args:              command.ExactArgs("NAME"),
		ValidArgsFunction: o.CompleteNames(api.InstanceKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tail < -1 {
				return command.FlagError("tail", "%d is negative: use a number of lines, or -1 for all", tail)
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if follow {
				var stop context.CancelFunc
				ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
				defer stop()
			}
			rc, err := c.Logs(ctx, o.Project(), args[0], follow, tail)
			if err != nil {
				return err
			}
			defer rc.Close()
			if _, err := io.Copy(cmd.OutOrStdout(), rc); err != nil && ctx.Err() == nil {
				return fmt.Errorf("read logs of %s: %w", args[0], err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming new output until interrupted")
	cmd.Flags().IntVar(&tail, "tail", -1, "print only the last N lines (-1: all)")
	return cmd
}

func newInstanceExecCommand(o *command.Options) *cobra.Command {
	var timeout time.Duration
	var tty, interactive bool
	cmd := &cobra.Command{
		Use:   "exec NAME -- COMMAND [ARGS...]",
		Short: "Run a command in a running instance",
		Long: "Run a command in a running instance and exit with its exit code.\n" +
			"Standard input is sent along when it is not a terminal (at most 16 MiB).\n" +
			"With -t (or -it) the command runs on a terminal of its own, as an interactive\n" +
			"shell wants: the local terminal is put in raw mode (Ctrl-C goes to the command),\n" +
			"its size follows the window's, and it is restored when the command ends.\n" +
			"Commands on a terminal run in containers and have no timeout.",
		Example: "  echo hello | ouro instance exec web -- cat\n" +
			"  ouro instance exec -it web -- sh",
		ValidArgsFunction: o.CompleteNames(api.InstanceKind, false),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return command.ArgError("%s wants NAME -- COMMAND [ARGS...]", cmd.CommandPath())
			}
			if d := cmd.ArgsLenAtDash(); d > 1 {
				return command.ArgError("%s wants one NAME before --", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if tty {
				if cmd.Flags().Changed("timeout") {
					return command.FlagError("timeout", "a command on a terminal (-t) runs until it ends or you leave it")
				}
				return execTTY(cmd, o, args)
			}
			if interactive {
				return command.FlagError("interactive", "-i goes with -t (-it): without a terminal, standard input is sent when it is not a terminal")
			}
			if timeout < 0 || timeout > time.Hour {
				return command.FlagError("timeout", "%s is out of range: use up to 1h (0: the server's default of 60s)", timeout)
			}
			req := api.ExecRequest{Command: args[1:], TimeoutSeconds: int((timeout + time.Second - 1) / time.Second)}
			if in := cmd.InOrStdin(); !output.IsTerminal(in) {
				data, err := io.ReadAll(io.LimitReader(in, maxExecStdin+1))
				if err != nil {
					return fmt.Errorf("read standard input: %w", err)
				}
				if len(data) > maxExecStdin {
					return errors.New("standard input is larger than 16 MiB: copy large data another way")
				}
				req.Stdin = data
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			resp, err := c.Exec(cmd.Context(), o.Project(), args[0], req)
			if err != nil {
				return err
			}
			cmd.OutOrStdout().Write(resp.Stdout)
			cmd.ErrOrStderr().Write(resp.Stderr)
			if resp.Truncated {
				fmt.Fprintln(cmd.ErrOrStderr(), "ouro: output was cut at 4 MiB per stream")
			}
			if resp.ExitCode != 0 {
				return &command.ExitError{Code: resp.ExitCode}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "stop the command after this long (up to 1h; default: the server's 60s)")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "run the command on a terminal, interactively")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "with -t: send what is typed (as docker's -it; -t alone does too)")
	return cmd
}
