// Package bootstrap holds `ouro bootstrap`: install a cloud onto machines
// (or onto instances of the current cloud) from an inventory file, and
// roll a new binary through it.
package bootstrap

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/bootstrap"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/clientconfig"
)

// flags are the options both commands share.
type flags struct {
	inventory, knownHosts, binaryDir string
	contextServer                    string
	acceptNew, check                 bool
	timeout                          time.Duration
}

func (f *flags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVarP(&f.inventory, "inventory", "i", "", "inventory file (YAML: the hosts, their roles and how to reach them)")
	fs.StringVar(&f.knownHosts, "known-hosts", "", "known_hosts file the hosts' keys are checked against (default ~/.ssh/known_hosts)")
	fs.BoolVar(&f.acceptNew, "accept-new-host-keys", false, "trust and record the key of a host seen for the first time (a changed key is always refused)")
	fs.StringVar(&f.binaryDir, "binary-dir", "", "directory with ouro-linux-amd64 / ouro-linux-arm64 (make release); default: this binary for its own architecture")
	fs.StringVar(&f.contextServer, "context-server", "", "API URL for the written context instead of the API VIP or first server (e.g. https://127.0.0.1:17443, a local port forward to a server)")
	fs.BoolVar(&f.check, "check", false, "show what would change, change nothing")
	fs.DurationVar(&f.timeout, "ready-timeout", 5*time.Minute, "how long a started server or agent may take to be ready")
}

// options turns the flags into bootstrap options.
func (f *flags) options(cmd *cobra.Command, o *command.Options) (*bootstrap.Inventory, bootstrap.Options, error) {
	if f.inventory == "" {
		return nil, bootstrap.Options{}, command.FlagError("inventory", "give the inventory file: ouro bootstrap -i inventory.yaml")
	}
	if f.timeout < 10*time.Second || f.timeout > time.Hour {
		return nil, bootstrap.Options{}, command.FlagError("ready-timeout", "%s is out of range: give 10s to 1h", f.timeout)
	}
	inv, err := bootstrap.LoadInventory(f.inventory)
	if err != nil {
		return nil, bootstrap.Options{}, err
	}
	known := f.knownHosts
	if known == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, bootstrap.Options{}, command.FlagError("known-hosts", "no home directory to find ~/.ssh/known_hosts in: give the file")
		}
		known = filepath.Join(home, ".ssh", "known_hosts")
	}
	cfgPath, err := clientconfig.DefaultPath()
	if err != nil {
		return nil, bootstrap.Options{}, err
	}
	opts := bootstrap.Options{
		Check:        f.check,
		Binary:       f.binary,
		Known:        &bootstrap.KnownHosts{File: known, AcceptNew: f.acceptNew, DontRecord: f.check},
		Out:          cmd.OutOrStdout(),
		Config:       cfgPath,
		ReadyTimeout: f.timeout,
	}
	if f.contextServer != "" {
		u, err := url.Parse(f.contextServer)
		if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, bootstrap.Options{}, command.FlagError("context-server", "%q is not an https://HOST:PORT URL", f.contextServer)
		}
		opts.ContextServer = strings.TrimSuffix(f.contextServer, "/")
	}
	for _, h := range inv.Hosts {
		if h.Instance != "" {
			// Hosts that are instances of the current cloud are reached
			// through its API.
			t := tunnel{o: o}
			opts.Dial, opts.Address = t.dial, t.address
			break
		}
	}
	return inv, opts, nil
}

// binary finds the ouro binary for arch.
func (f *flags) binary(arch string) (string, error) {
	name := "ouro-linux-" + arch
	if f.binaryDir != "" {
		p := filepath.Join(f.binaryDir, name)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("no binary for %s: %w (build it with make release)", arch, err)
		}
		return p, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find this binary: %w", err)
	}
	if arch == runtime.GOARCH && runtime.GOOS == "linux" {
		return self, nil
	}
	if p := filepath.Join(filepath.Dir(self), name); fileExists(p) {
		return p, nil
	}
	return "", fmt.Errorf("no ouro binary for %s: build them with make release and give --binary-dir bin/release", arch)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// NewCommand returns `ouro bootstrap`.
func NewCommand(o *command.Options) *cobra.Command {
	var f flags
	cmd := &cobra.Command{
		Use:   "bootstrap -i INVENTORY",
		Short: "Install a cloud onto machines from an inventory, over SSH",
		Long: "Install Ouroboros onto the hosts of an inventory over SSH: packages, the binary for\n" +
			"each host's architecture, systemd units (processes started directly where there is no\n" +
			"systemd), the first server, the other servers joined one at a time, every agent joined.\n" +
			"Every step changes only what differs: a second run says \"unchanged\" everywhere, a host\n" +
			"added to the inventory is the only one touched, --check shows what would change.\n" +
			"The cloud's admin context is written to the client configuration.\n\n" +
			"Inventory (docs/bootstrap.md):\n\n" +
			"  cloud: lab\n  apiVIP: 10.0.0.100/24        # optional\n  ssh: {user: root, key: ~/.ssh/id_ed25519}\n" +
			"  hosts:\n  - {name: s1, address: 10.0.0.11, roles: [server, agent]}\n" +
			"  - {name: pi1, address: 10.0.0.21, roles: [agent], labels: {zone: a}}\n" +
			"  - {name: vm1, instance: nested-1, roles: [agent]}   # an instance of the current cloud",
		Args: cobra.NoArgs,
		RunE: f.runE(o, bootstrap.Run),
	}
	f.add(cmd)
	cmd.AddCommand(newUpgradeCommand(o))
	return cmd
}

func newUpgradeCommand(o *command.Options) *cobra.Command {
	var f flags
	cmd := &cobra.Command{
		Use:   "upgrade -i INVENTORY",
		Short: "Roll a new ouro binary through a bootstrapped cloud, one host at a time",
		Long: "Replace the ouro binary on every host whose binary differs, one host at a time: the\n" +
			"servers first, each ready in the cluster again before the next (three servers keep\n" +
			"their quorum), then the agents, each Ready again before the next; instances run on\n" +
			"through an agent's restart and are adopted.",
		Args: cobra.NoArgs,
		RunE: f.runE(o, bootstrap.Upgrade),
	}
	f.add(cmd)
	return cmd
}

// runE runs do with the flags' inventory and options until it is done or
// interrupted, and sums up.
func (f *flags) runE(o *command.Options, do func(context.Context, *bootstrap.Inventory, bootstrap.Options) (bootstrap.Result, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		inv, opts, err := f.options(cmd, o)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		res, err := do(ctx, inv, opts)
		if err != nil {
			return err
		}
		summary(cmd.OutOrStdout(), f.check, res)
		return nil
	}
}

func summary(w io.Writer, check bool, res bootstrap.Result) {
	switch {
	case res.Changes == 0:
		fmt.Fprintln(w, "Nothing to change.")
	case check:
		fmt.Fprintf(w, "%d step(s) would change.\n", res.Changes)
	default:
		fmt.Fprintf(w, "%d step(s) changed.\n", res.Changes)
	}
	if res.Context != "" {
		fmt.Fprintf(w, "Use the cloud with: ouro --context %s host list\n", res.Context)
	}
}

// tunnel reaches hosts that are instances of the current cloud through
// its API's port forward.
type tunnel struct{ o *command.Options }

func (t tunnel) ref(h *bootstrap.Host) (project, name string) {
	project, name = t.o.Project(), h.Instance
	if p, n, ok := cutRef(h.Instance); ok {
		project, name = p, n
	}
	return project, name
}

// address is the instance's first address: what it advertises to the
// nested cloud.
func (t tunnel) address(ctx context.Context, h *bootstrap.Host) (string, error) {
	c, err := t.o.Client()
	if err != nil {
		return "", err
	}
	project, name := t.ref(h)
	var inst api.Instance
	if err := c.Get(ctx, api.InstanceKind, project, name, &inst); err != nil {
		return "", fmt.Errorf("instance %s/%s: %w", project, name, err)
	}
	if inst.Status.Phase != api.PhaseRunning || len(inst.Status.Interfaces) == 0 || inst.Status.Interfaces[0].IP == "" {
		return "", fmt.Errorf("instance %s/%s is %s without an address yet: wait until it is Running", project, name, inst.Status.Phase)
	}
	return inst.Status.Interfaces[0].IP, nil
}

// dial opens the SSH port of an instance host through the API, or the
// address of any other host.
func (t tunnel) dial(ctx context.Context, h *bootstrap.Host) (bootstrap.Conn, error) {
	if h.Instance == "" {
		return bootstrap.DialAddress(ctx, h)
	}
	c, err := t.o.Client()
	if err != nil {
		return bootstrap.Conn{}, err
	}
	project, name := t.ref(h)
	stream, err := c.PortForward(ctx, project, name, h.SSH.Port)
	if err != nil {
		return bootstrap.Conn{}, fmt.Errorf("port forward to %s/%s: %w", project, name, err)
	}
	// The host key is known under the alias `ouro instance ssh` uses.
	return bootstrap.Conn{Conn: streamConn{stream}, KeyName: fmt.Sprintf("ouro-%s-%s:%d", project, name, h.SSH.Port)}, nil
}

func cutRef(s string) (string, string, bool) {
	for i := range len(s) {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return "", s, false
}

// streamConn is a tunnel stream as a net.Conn for the SSH client:
// deadlines are not supported (the SSH handshake's own timeout and the
// command's context bound it).
type streamConn struct{ io.ReadWriteCloser }

func (streamConn) LocalAddr() net.Addr              { return tunnelAddr{} }
func (streamConn) RemoteAddr() net.Addr             { return tunnelAddr{} }
func (streamConn) SetDeadline(time.Time) error      { return nil }
func (streamConn) SetReadDeadline(time.Time) error  { return nil }
func (streamConn) SetWriteDeadline(time.Time) error { return nil }

type tunnelAddr struct{}

func (tunnelAddr) Network() string { return "ouro-portforward" }
func (tunnelAddr) String() string  { return "tunnel" }
