package instance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/upgrade"
)

func newInstancePortForwardCommand(o *command.Options) *cobra.Command {
	var address string
	var stdio bool
	cmd := &cobra.Command{
		Use:   "port-forward NAME [LOCAL:]REMOTE",
		Short: "Reach a port of an instance that has no public address",
		Long: "Listen on a local port and tunnel each connection to port REMOTE of the instance,\n" +
			"through the API server and the instance's agent (which connects to the instance's\n" +
			"first address from inside its network). LOCAL defaults to REMOTE; 0 picks a free\n" +
			"port. --stdio tunnels one connection over standard input and output instead, for\n" +
			"ssh's ProxyCommand:\n\n" +
			"  ssh -o ProxyCommand='ouro instance port-forward web-1 22 --stdio' root@web-1\n\n" +
			"Needs the rights of exec in the instance's project.",
		Args:              command.ExactArgs("NAME", "[LOCAL:]REMOTE"),
		ValidArgsFunction: o.CompleteNames(api.InstanceKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			local, remote, err := parsePorts(args[1])
			if err != nil {
				return err
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			name := args[0]
			if stdio {
				conn, err := c.PortForward(ctx, o.Project(), name, remote)
				if err != nil {
					return err
				}
				return pipeStdio(ctx, conn, cmd.InOrStdin(), cmd.OutOrStdout())
			}
			ln, err := net.Listen("tcp", net.JoinHostPort(address, local))
			if err != nil {
				return command.FlagError("address", "listen on %s: %v", net.JoinHostPort(address, local), err)
			}
			context.AfterFunc(ctx, func() { ln.Close() })
			fmt.Fprintf(cmd.OutOrStdout(), "Forwarding %s to port %d of %s; Ctrl-C ends.\n", ln.Addr(), remote, name)
			return serveForwards(ctx, ln, c, o.Project(), name, remote, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&address, "address", "127.0.0.1", "local address to listen on")
	cmd.Flags().BoolVar(&stdio, "stdio", false, "tunnel one connection over standard input and output instead of listening")
	return cmd
}

// serveForwards tunnels each connection accepted on ln until ctx ends.
func serveForwards(ctx context.Context, ln net.Listener, c *client.Client, project, name string, port int, log io.Writer) error {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		go func() {
			defer conn.Close()
			stream, err := c.PortForward(ctx, project, name, port)
			if err != nil {
				fmt.Fprintf(log, "connection from %s: %v\n", conn.RemoteAddr(), err)
				return
			}
			upgrade.Splice(ctx, conn, stream)
		}()
	}
}

// parsePorts reads [LOCAL:]REMOTE; LOCAL may be 0 (any free port).
func parsePorts(s string) (local string, remote int, err error) {
	l, r, found := strings.Cut(s, ":")
	if !found {
		l, r = s, s
	}
	remote, err = strconv.Atoi(r)
	if err != nil || remote < 1 || remote > 65535 {
		return "", 0, command.ArgError("REMOTE %q is not a TCP port (1-65535): give [LOCAL:]REMOTE, as 8080:80", r)
	}
	if n, err := strconv.Atoi(l); err != nil || n < 0 || n > 65535 {
		return "", 0, command.ArgError("LOCAL %q is not a TCP port (0-65535): give [LOCAL:]REMOTE, as 8080:80", l)
	}
	return l, remote, nil
}

// pipeStdio copies in to the tunnel and the tunnel to out until the far
// end closes it (or ctx ends). The end of in is not the end: a pipe whose
// writer is done (`printf 'GET / HTTP/1.0\r\n\r\n' | ...`) still wants
// the answer, so only the tunnel's end or an error stops the copy.
func pipeStdio(ctx context.Context, tunnel io.ReadWriteCloser, in io.Reader, out io.Writer) error {
	defer tunnel.Close()
	stop := context.AfterFunc(ctx, func() { tunnel.Close() })
	defer stop()
	go func() {
		if _, err := io.Copy(tunnel, in); err != nil {
			tunnel.Close()
		}
	}()
	if _, err := io.Copy(out, tunnel); err != nil && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("port forward: %w", err)
	}
	return nil
}

func newInstanceSSHCommand(o *command.Options) *cobra.Command {
	var user, identity string
	var port int
	cmd := &cobra.Command{
		Use:   "ssh NAME [-- SSH-ARGS...]",
		Short: "Open an SSH session to an instance through the API",
		Long: "Run ssh to the instance with `ouro instance port-forward NAME PORT --stdio` as its\n" +
			"ProxyCommand, so instances without a public address are reached through the API\n" +
			"server and their agent. The host key is remembered under the alias\n" +
			"ouro-PROJECT-NAME. Arguments after -- go to ssh (a command to run, -L, ...).",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: o.CompleteNames(api.InstanceKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			if d := cmd.ArgsLenAtDash(); d > 1 || (d < 0 && len(args) > 1) {
				return command.ArgError("%s wants NAME, then -- and ssh's arguments", cmd.CommandPath())
			}
			name, extra := args[0], args[1:]
			argv, env, err := sshArgv(o, name, user, identity, port, extra)
			if err != nil {
				return err
			}
			ssh := exec.CommandContext(cmd.Context(), argv[0], argv[1:]...)
			ssh.Stdin, ssh.Stdout, ssh.Stderr = cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
			ssh.Env = append(os.Environ(), env...)
			err = ssh.Run()
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				return &command.ExitError{Code: exit.ExitCode()}
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&user, "user", "l", "root", "user to log in as")
	cmd.Flags().StringVarP(&identity, "identity", "i", "", "private key file (default: ssh's own choice)")
	cmd.Flags().IntVar(&port, "port", 22, "the instance's SSH port")
	return cmd
}

// sshArgv is the ssh command line for an instance. ssh hands its
// ProxyCommand to the user's shell, so every word of it is quoted, and
// the instance and project are checked as the API would first.
func sshArgv(o *command.Options, name, user, identity string, port int, extra []string) (argv, env []string, err error) {
	if err := api.ValidateName("NAME", name); err != nil {
		return nil, nil, command.ArgError("NAME: %s", err.Message)
	}
	if port < 1 || port > 65535 {
		return nil, nil, command.FlagError("port", "%d is not a TCP port (1-65535)", port)
	}
	if user == "" || strings.ContainsAny(user, "@ \t\n") || strings.HasPrefix(user, "-") {
		return nil, nil, command.FlagError("user", "%q is not a user name", user)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("find the ouro binary for ssh's ProxyCommand: %w", err)
	}
	inherit, env := o.Inherit()
	words := append([]string{self}, inherit...)
	words = append(words, "instance", "port-forward", name, strconv.Itoa(port), "--stdio")
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = shellQuote(w)
	}
	argv = []string{"ssh", "-o", "ProxyCommand=" + strings.Join(quoted, " "),
		"-o", "HostKeyAlias=ouro-" + o.Project() + "-" + name, "-l", user}
	if identity != "" {
		argv = append(argv, "-i", identity)
	}
	argv = append(argv, append([]string{"--", name}, extra...)...)
	return argv, env, nil
}

// shellQuote quotes s as one word for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
