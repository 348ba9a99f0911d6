package instance

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
)

// detachKey is Ctrl-], which ends an interactive console as telnet's
// escape does.
const detachKey = 0x1d

func newInstanceConsoleLogCommand(o *command.Options) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "console-log NAME",
		Short: "Print an instance's console output",
		Long: "Print what an instance wrote to its console: the serial console of a virtual machine,\n" +
			"the output of a container (the same as `ouro instance logs`).",
		Args:              command.ExactArgs("NAME"),
		ValidArgsFunction: o.CompleteNames(api.InstanceKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
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
			rc, err := c.Logs(ctx, o.Project(), args[0], follow, -1)
			if err != nil {
				return err
			}
			defer rc.Close()
			if _, err := io.Copy(cmd.OutOrStdout(), rc); err != nil && ctx.Err() == nil {
				return fmt.Errorf("read the console log of %s: %w", args[0], err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming new output until interrupted")
	return cmd
}

func newInstanceConsoleCommand(o *command.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "console NAME",
		Short: "Attach to an instance's interactive console",
		Long: "Attach the terminal to the serial console of a running virtual machine.\n" +
			"Everything typed goes to the instance, Ctrl-C included; press Ctrl-] to detach.\n" +
			"Input from a pipe is sent as typed; once it ends, the console's output is shown\n" +
			"until it has been quiet for a second.\n" +
			"Containers have no console: use `ouro instance exec NAME -- sh`.",
		Args:              command.ExactArgs("NAME"),
		ValidArgsFunction: o.CompleteNames(api.InstanceKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			conn, err := c.Console(cmd.Context(), o.Project(), args[0])
			if err != nil {
				return err
			}
			defer conn.Close()
			fmt.Fprintf(cmd.ErrOrStderr(), "Connected to the console of %s; press Ctrl-] to detach.\r\n", args[0])
			in := cmd.InOrStdin()
			if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				state, err := term.MakeRaw(int(f.Fd()))
				if err != nil {
					return fmt.Errorf("put the terminal in raw mode: %w", err)
				}
				defer term.Restore(int(f.Fd()), state)
			}
			detached := runConsole(in, cmd.OutOrStdout(), conn, consoleLinger)
			if detached {
				fmt.Fprintf(cmd.ErrOrStderr(), "\r\nDetached from %s.\r\n", args[0])
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "\r\nThe console of %s closed.\r\n", args[0])
			}
			return nil
		},
	}
}

// consoleLinger is how long a console whose input has ended (a pipe, not a
// terminal) stays attached without output before the command exits.
const consoleLinger = time.Second

// runConsole copies in to conn and conn to out until the user presses the
// detach key (detached is true), conn ends, or in ends. Input ending still
// shows the console's answer: the output goes on until the console has
// been quiet for linger, as a console never closes by itself.
func runConsole(in io.Reader, out io.Writer, conn io.ReadWriteCloser, linger time.Duration) (detached bool) {
	outDone := make(chan struct{})
	active := make(chan struct{}, 1)
	go func() {
		io.Copy(activityWriter{out, active}, conn)
		close(outDone)
	}()
	inDone := make(chan bool, 1)
	go func() { inDone <- copyUntilDetach(conn, in) }()
	select {
	case <-outDone:
		return false
	case detached = <-inDone:
	}
	if !detached {
		quiet := time.NewTimer(linger)
		defer quiet.Stop()
	wait:
		for {
			select {
			case <-outDone:
				return false
			case <-active:
				quiet.Reset(linger)
			case <-quiet.C:
				break wait
			}
		}
	}
	conn.Close()
	<-outDone
	return detached
}

// activityWriter writes to w and signals each write on active, without
// waiting for anyone to take the signal.
type activityWriter struct {
	w      io.Writer
	active chan<- struct{}
}

func (a activityWriter) Write(p []byte) (int, error) {
	n, err := a.w.Write(p)
	select {
	case a.active <- struct{}{}:
	default:
	}
	return n, err
}

// copyUntilDetach copies in to w until in ends (false) or yields the
// detach key (true); what came before the key in the same read is sent.
func copyUntilDetach(w io.Writer, in io.Reader) bool {
	buf := make([]byte, 4096)
	for {
		n, err := in.Read(buf)
		if i := bytes.IndexByte(buf[:n], detachKey); i >= 0 {
			w.Write(buf[:i])
			return true
		}
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return false
			}
		}
		if err != nil {
			return false
		}
	}
}
