package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/apiserver"
	"github.com/ouroboros-cloud/ouro/driver/container"
)

// The environment variables the daemons read a join token from when its
// flag is not given, so that a service manager's environment file can
// carry a one-time secret without it showing in the process list or in a
// unit file that is compared again later (package bootstrap writes them).
const (
	EnvJoinToken  = "OURO_JOIN_TOKEN"
	EnvServerJoin = "OURO_SERVER_JOIN"
)

// Commands returns the daemon subcommands of ouro: up, server, agent and
// the container shim.
func Commands() []*cobra.Command {
	return []*cobra.Command{upCommand(), serverCommand(), agentCommand(), shimCommand()}
}

// AddCommands adds the daemon subcommands to root. A server command root
// already has (the CLI's, whose subcommands manage servers) gives its
// subcommands to the daemon's: `ouro server` runs a server, `ouro server
// list` lists them.
func AddCommands(root *cobra.Command) {
	cmds := Commands()
	for _, c := range root.Commands() {
		for _, d := range cmds {
			if c.Name() != d.Name() {
				continue
			}
			for _, sub := range c.Commands() {
				c.RemoveCommand(sub)
				d.AddCommand(sub)
			}
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(cmds...)
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
	// Packages that log through slog.Default (election) speak the same way.
	slog.SetDefault(log)
	return log, nil
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func upCommand() *cobra.Command {
	var cfg UpConfig
	var level string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a whole cloud on this machine: server, agent and embedded etcd in one process",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(level)
			if err != nil {
				return err
			}
			cfg.Logger, cfg.Out = log, cmd.OutOrStdout()
			ctx, stop := signalContext()
			defer stop()
			return Up(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "/var/lib/ouro", "where the cloud keeps its state")
	f.StringVar(&cfg.Listen, "listen", ":7443", "HTTPS address of the API")
	f.StringVar(&cfg.AgentListen, "agent-listen", ":7444", "HTTPS address of the agent endpoint (logs, exec)")
	f.StringVar(&cfg.EtcdClientURL, "etcd-client-url", "http://127.0.0.1:2379", "client URL of the embedded etcd")
	f.StringVar(&cfg.EtcdPeerURL, "etcd-peer-url", "http://127.0.0.1:2380", "peer URL of the embedded etcd")
	f.StringVar(&cfg.APIVIP, "api-vip", "", "virtual address ADDR/PREFIX of the API (see ouro server --help)")
	f.StringVar(&cfg.APIVIPInterface, "api-vip-interface", "", "interface for --api-vip (default: the one whose subnet holds it)")
	f.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func serverCommand() *cobra.Command {
	var cfg ServerConfig
	var level, endpoints string
	var maxBlobGiB int64
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run an API server with the controllers, or manage the servers (join-token, list, remove)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(level)
			if err != nil {
				return err
			}
			cfg.Logger = log
			if cfg.Join == "" {
				cfg.Join = os.Getenv(EnvServerJoin)
			}
			if endpoints != "" {
				cfg.EtcdEndpoints = strings.Split(endpoints, ",")
			}
			if maxBlobGiB < 1 || maxBlobGiB > 1<<20 {
				return fmt.Errorf("--max-blob-gib: %d is out of range; give 1 to %d", maxBlobGiB, 1<<20)
			}
			cfg.MaxBlobBytes = maxBlobGiB << 30
			ctx, stop := signalContext()
			defer stop()
			s, err := StartServer(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "API server at %s; admin token in %s/admin.token\n", s.URL, cfg.DataDir)
			if s.APIURL != s.URL {
				fmt.Fprintf(cmd.OutOrStdout(), "Clients and agents use the API VIP: %s\n", s.APIURL)
			}
			return s.Wait()
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "/var/lib/ouro/server", "where the server keeps its state")
	f.StringVar(&cfg.Listen, "listen", ":7443", "HTTPS address of the API")
	f.StringVar(&endpoints, "etcd-endpoints", "", "comma-separated URLs of an external etcd cluster (default: embedded etcd)")
	f.StringVar(&cfg.EtcdClientURL, "etcd-client-url", "http://127.0.0.1:2379", "client URL of the embedded etcd")
	f.StringVar(&cfg.EtcdPeerURL, "etcd-peer-url", "http://127.0.0.1:2380", "peer URL of the embedded etcd; https://ADDRESS:PORT (TLS with the cluster CA) lets other servers join")
	f.StringVar(&cfg.Name, "name", "", "server name, in elections and as its etcd member (default: hostname)")
	f.StringSliceVar(&cfg.CertHosts, "cert-host", nil, "extra name or address for the server certificate (repeatable)")
	f.StringVar(&cfg.APIVIP, "api-vip", "", "virtual address ADDR/PREFIX of the API, held by one ready server at a time")
	f.StringVar(&cfg.APIVIPInterface, "api-vip-interface", "", "interface for --api-vip (default: the one whose subnet holds it)")
	f.StringVar(&cfg.Join, "join", "", "server join token (from 'ouro server join-token'): join that cluster (first start only; needs an https --etcd-peer-url; env "+EnvServerJoin+")")
	f.Int64Var(&maxBlobGiB, "max-blob-gib", apiserver.DefaultMaxBlobBytes>>30, "largest blob (image layer or disk image) the server accepts, in GiB")
	f.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func agentCommand() *cobra.Command {
	var cfg AgentConfig
	var level, caFile string
	var labels []string
	var hollowN int
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the host agent that runs instances on this machine",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(level)
			if err != nil {
				return err
			}
			cfg.Logger = log
			if caFile != "" {
				pem, err := os.ReadFile(caFile)
				if err != nil {
					return fmt.Errorf("--ca-cert: %w", err)
				}
				cfg.CACert = pem
			}
			if hollowN != 0 {
				// Hollow hosts start nothing, so they need no root.
				ctx, stop := signalContext()
				defer stop()
				return RunHollow(ctx, HollowConfig{Server: cfg.Server, CACert: cfg.CACert, JoinToken: cfg.JoinToken,
					DataDir: cfg.DataDir, Count: hollowN, NamePrefix: cfg.Name, Logger: log})
			}
			if os.Geteuid() != 0 {
				return fmt.Errorf("ouro agent needs root: it runs containers with runc, mounts overlay filesystems and sets cgroup limits; run it with sudo")
			}
			if cfg.JoinToken == "" {
				cfg.JoinToken = os.Getenv(EnvJoinToken)
			}
			cfg.Labels = map[string]string{}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok {
					return fmt.Errorf("--label %q: want key=value", l)
				}
				cfg.Labels[k] = v
			}
			ctx, stop := signalContext()
			defer stop()
			return RunAgent(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Server, "server", "", "URL of an API server, e.g. https://10.0.0.1:7443")
	f.StringVar(&caFile, "ca-cert", "", "PEM file of the cluster CA (from the server's data dir, pki/ca.crt)")
	f.StringVar(&cfg.JoinToken, "join-token", "", "join token from `ouro host join-token` (needed on first start only; env "+EnvJoinToken+")")
	f.StringVar(&cfg.DataDir, "data-dir", "/var/lib/ouro/agent", "where the agent keeps credentials and instances")
	f.StringVar(&cfg.Name, "name", "", "host name (default: hostname)")
	f.StringVar(&cfg.AdvertiseAddress, "advertise-address", "", "underlay address of this host (default: the default route's)")
	f.StringVar(&cfg.Listen, "listen", ":7444", "HTTPS address of the agent endpoint (logs, exec)")
	f.StringSliceVar(&labels, "label", nil, "host label key=value (repeatable)")
	f.StringSliceVar(&cfg.Taints, "taint", nil, "host taint key (repeatable)")
	f.IntVar(&hollowN, "hollow", 0, "run N simulated hosts (hollow hosts, for load tests only) instead of a real agent; --name is their prefix")
	f.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func shimCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "container-shim",
		Short:              "Internal: supervises one runc container for the agent",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			os.Exit(container.ShimMain(args))
			return nil
		},
	}
}
