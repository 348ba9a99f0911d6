package bootstrap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/clientconfig"
	"github.com/ouroboros-cloud/ouro/daemon"
)

// Options are how a bootstrap reaches hosts and what it does there.
type Options struct {
	// Check reports what would change and changes nothing.
	Check bool
	// Binary returns the local ouro binary for a Go architecture
	// (amd64, arm64).
	Binary func(arch string) (string, error)
	// Dial connects to a host's SSH server (default DialAddress).
	Dial DialFunc
	// Address returns the address a host advertises to the cloud when
	// it is an instance (Host.Instance); hosts with an address use it.
	Address func(ctx context.Context, h *Host) (string, error)
	// Known checks the hosts' keys.
	Known *KnownHosts
	// Out gets one line per host and step.
	Out io.Writer
	// Config is the client configuration file the cloud's context is
	// written to; "" writes none.
	Config string
	// ContextServer is the API URL written into the context instead of
	// the API VIP's or the first server's: a local port forward to a
	// server not reachable from here (its certificate names 127.0.0.1).
	ContextServer string
	// ReadyTimeout bounds the wait for a started server or agent to be
	// ready (default 5 minutes: emulated machines are slow).
	ReadyTimeout time.Duration
}

// Step outcomes, as reported.
const (
	Unchanged   = "unchanged"
	Changed     = "changed"
	WouldChange = "would change"
)

// node is a host being bootstrapped: its connection and what it is.
type node struct {
	h    *Host
	addr string
	r    Runner
	f    facts
	svc  serviceManager
}

func (n *node) bin() string               { return n.h.Paths.Binary }
func (n *node) dataOf(role string) string { return path.Join(n.h.Paths.Data, role) }
func (n *node) clientConfig() string      { return path.Join(n.h.Paths.Data, "bootstrap-client.yaml") }
func (n *node) caFile() string            { return path.Join(n.h.Paths.Data, "ca.crt") }
func (n *node) cli(args ...string) string {
	return "OURO_CONFIG=" + quote(n.clientConfig()) + " " + sh(append([]string{n.bin()}, args...)...)
}
func (n *node) serverURL() string { return "https://" + n.addr + ":" + strconv.Itoa(DefaultAPIPort) }
func (n *node) test(ctx context.Context, p string) bool {
	out, err := n.r.Run(ctx, "test -s "+quote(p)+" && echo y || echo n", nil)
	return err == nil && strings.TrimSpace(out) == "y"
}

// run is one bootstrap in progress.
type run struct {
	inv  *Inventory
	opts Options
	mu   sync.Mutex
	errs []error
	// changes counts the steps that changed (or would).
	changes int
}

// report prints one step's outcome.
func (b *run) report(host, step, outcome string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if strings.HasPrefix(outcome, Changed) || strings.HasPrefix(outcome, WouldChange) {
		b.changes++
	}
	if b.opts.Out != nil {
		fmt.Fprintf(b.opts.Out, "%-16s %-10s %s\n", host, step, outcome)
	}
}

// fail records a failed step, naming the host and the step.
func (b *run) fail(host, step string, err error) error {
	err = fmt.Errorf("%s: %s: %w", host, step, err)
	b.report(host, step, "FAILED: "+strings.TrimPrefix(err.Error(), host+": "+step+": "))
	b.mu.Lock()
	b.errs = append(b.errs, err)
	b.mu.Unlock()
	return err
}

// outcome names a step's result.
func (b *run) outcome(changed bool, detail string) string {
	switch {
	case !changed:
		return Unchanged
	case b.opts.Check:
		return WouldChange + detail
	}
	return Changed + detail
}

// Result says what a bootstrap did.
type Result struct {
	// Changes counts the steps that changed something (in check mode:
	// would change).
	Changes int
	// Context is the client context written for the cloud ("" if none).
	Context string
}

// Run brings the inventory's hosts to what it says: packages, binary,
// services, the servers' cluster and the agents joined. Steps run in
// parallel across hosts where safe (preparation, agents) and in order
// where not (servers join one at a time). A failed host is reported and
// left out of what follows; the error joins every failure.
func Run(ctx context.Context, inv *Inventory, opts Options) (Result, error) {
	if opts.Dial == nil {
		opts.Dial = DialAddress
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 5 * time.Minute
	}
	b := &run{inv: inv, opts: opts}
	nodes := b.prepare(ctx)
	defer func() {
		for _, n := range nodes {
			n.r.Close()
		}
	}()
	res, err := b.cluster(ctx, nodes)
	res.Changes = b.changes
	return res, errors.Join(append(b.errs, err)...)
}

// prepare connects to every host and gives it its packages and binary,
// all hosts at once; it returns the hosts that are ready for services.
func (b *run) prepare(ctx context.Context) map[string]*node {
	var mu sync.Mutex
	nodes := map[string]*node{}
	var wg sync.WaitGroup
	for i := range b.inv.Hosts {
		h := &b.inv.Hosts[i]
		wg.Go(func() {
			if n := b.prepareHost(ctx, h); n != nil {
				mu.Lock()
				nodes[h.Name] = n
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return nodes
}

func (b *run) prepareHost(ctx context.Context, h *Host) *node {
	n, err := b.connect(ctx, h)
	if err != nil {
		b.fail(h.Name, "connect", err)
		return nil
	}
	r := n.r
	manager := "systemd"
	if !n.f.systemd {
		manager = "no systemd: processes started directly"
	}
	b.report(h.Name, "connect", fmt.Sprintf("ok (%s, %s, %s)", n.f.os, n.f.arch, manager))
	if err := b.packages(ctx, n); err != nil {
		r.Close()
		b.fail(h.Name, "packages", err)
		return nil
	}
	if err := b.binary(ctx, n); err != nil {
		r.Close()
		b.fail(h.Name, "binary", err)
		return nil
	}
	return n
}

func (b *run) packages(ctx context.Context, n *node) error {
	missing, err := missingPackages(ctx, n.r, Packages(n.f.arch, n.h.Roles, n.h.Drivers, b.inv.Ceph))
	if err != nil {
		return err
	}
	if len(missing) == 0 {
		b.report(n.h.Name, "packages", Unchanged)
		return nil
	}
	detail := " (" + strings.Join(missing, ", ") + ")"
	if b.opts.Check {
		b.report(n.h.Name, "packages", b.outcome(true, detail))
		return nil
	}
	if b.inv.Packages == "check" {
		return fmt.Errorf("missing %s: install them (the inventory says packages: check)", strings.Join(missing, ", "))
	}
	if err := installPackages(ctx, n.r, n.f, missing); err != nil {
		return err
	}
	b.report(n.h.Name, "packages", b.outcome(true, detail))
	return nil
}

func (b *run) binary(ctx context.Context, n *node) error {
	changed, sum, err := b.ensureBinary(ctx, n)
	if err != nil {
		return err
	}
	b.report(n.h.Name, "binary", b.outcome(changed, " ("+sum[:12]+")"))
	return nil
}

// ensureBinary makes n's binary the local one for its architecture (in
// check mode, only compares); it reports whether it differed and the
// binary's SHA-256.
func (b *run) ensureBinary(ctx context.Context, n *node) (changed bool, sum string, err error) {
	local, err := b.opts.Binary(n.f.arch)
	if err != nil {
		return false, "", err
	}
	want, err := fileSum(local)
	if err != nil {
		return false, "", fmt.Errorf("local binary: %w", err)
	}
	have, err := remoteSum(ctx, n.r, n.bin())
	if err != nil || have == want || b.opts.Check {
		return have != want, want, err
	}
	f, err := os.Open(local)
	if err != nil {
		return true, want, fmt.Errorf("local binary: %w", err)
	}
	defer f.Close()
	// The running process keeps its old executable: the new file takes
	// its name by rename, and a restart runs it.
	if err := upload(ctx, n.r, n.bin(), f, "0755"); err != nil {
		return true, want, err
	}
	if got, err := remoteSum(ctx, n.r, n.bin()); err != nil || got != want {
		return true, want, fmt.Errorf("copied %s but it reads back as sha256 %q (%v)", n.bin(), got, err)
	}
	return true, want, nil
}

// apiURL is the URL agents and the CLI use: the API VIP's, else the first
// server's.
func (b *run) apiURL(first *node) string {
	if b.inv.APIVIP != "" {
		p := netip.MustParsePrefix(b.inv.APIVIP)
		return "https://" + p.Addr().String() + ":" + strconv.Itoa(DefaultAPIPort)
	}
	return first.serverURL()
}

// serverService is the server daemon of n; join is the token of a server
// joining the cluster (first start only).
func (b *run) serverService(n *node, join string) service {
	argv := []string{n.bin(), "server", "--data-dir", n.dataOf("server"), "--name", n.h.Name,
		"--listen", ":" + strconv.Itoa(DefaultAPIPort), "--etcd-peer-url", "https://" + n.addr + ":2380",
		"--cert-host", n.addr}
	if b.inv.APIVIP != "" {
		argv = append(argv, "--api-vip", b.inv.APIVIP, "--cert-host", netip.MustParsePrefix(b.inv.APIVIP).Addr().String())
	}
	s := service{role: RoleServer, argv: argv}
	if join != "" {
		s.env = map[string]string{daemon.EnvServerJoin: join}
	}
	return s
}

// agentService is the agent daemon of n.
func (b *run) agentService(n *node, server, join string) service {
	argv := []string{n.bin(), "agent", "--server", server, "--ca-cert", n.caFile(), "--data-dir", n.dataOf("agent"),
		"--name", n.h.Name, "--advertise-address", n.addr}
	for _, k := range sortedKeys(n.h.Labels) {
		argv = append(argv, "--label", k+"="+n.h.Labels[k])
	}
	s := service{role: RoleAgent, argv: argv}
	if join != "" {
		s.env = map[string]string{daemon.EnvJoinToken: join}
	}
	return s
}

// cluster starts the first server, joins the others one at a time, then
// the agents, and writes the client context.
func (b *run) cluster(ctx context.Context, nodes map[string]*node) (Result, error) {
	servers := b.inv.Servers()
	first, ok := nodes[servers[0].Name]
	if !ok {
		return Result{}, fmt.Errorf("the first server, %s, is not ready: nothing more can be done", servers[0].Name)
	}
	changed, err := first.svc.ensure(ctx, b.serverService(first, ""), b.opts.Check)
	if err != nil {
		return Result{}, b.fail(first.h.Name, "server", err)
	}
	b.report(first.h.Name, "server", b.outcome(changed, " (started)"))
	if b.opts.Check && changed {
		// Nothing to ask a server that is not there yet.
		for _, h := range b.inv.Hosts[1:] {
			b.report(h.Name, "join", WouldChange)
		}
		return Result{}, nil
	}
	admin, ca, err := b.firstServerReady(ctx, first)
	if err != nil {
		return Result{}, b.fail(first.h.Name, "server", err)
	}
	for _, h := range servers[1:] {
		n, ok := nodes[h.Name]
		if !ok {
			continue
		}
		if err := b.joinServer(ctx, first, n); err != nil {
			b.fail(h.Name, "server", err)
		}
	}
	var wg sync.WaitGroup
	for _, h := range b.inv.Agents() {
		n, ok := nodes[h.Name]
		if !ok {
			continue
		}
		wg.Go(func() {
			if err := b.joinAgent(ctx, first, n, ca); err != nil {
				b.fail(h.Name, "agent", err)
			}
		})
	}
	wg.Wait()
	res := Result{}
	if b.opts.Config != "" && !b.opts.Check {
		server := b.apiURL(first)
		if b.opts.ContextServer != "" {
			server = b.opts.ContextServer
		}
		changed, err := writeContext(b.opts.Config, clientconfig.Context{Name: b.inv.Cloud, Server: server,
			Token: admin, Project: "default", CACert: ca})
		if err != nil {
			return res, fmt.Errorf("client context: %w", err)
		}
		b.report(b.inv.Cloud, "context", b.outcome(changed, " ("+b.opts.Config+")"))
		res.Context = b.inv.Cloud
	}
	return res, nil
}

// firstServerReady waits until the first server answers, and returns its
// admin token and CA; it leaves a client configuration on the server for
// the commands bootstrap runs there.
func (b *run) firstServerReady(ctx context.Context, first *node) (admin, ca string, err error) {
	dir := first.dataOf("server")
	err = b.poll(ctx, "the first server's admin token", func() (bool, error) {
		return first.test(ctx, path.Join(dir, "admin.token")) && first.test(ctx, path.Join(dir, "pki", "ca.crt")), nil
	})
	if err != nil {
		return "", "", err
	}
	tok, _, err := readRemote(ctx, first.r, path.Join(dir, "admin.token"))
	if err != nil {
		return "", "", err
	}
	ca, _, err = readRemote(ctx, first.r, path.Join(dir, "pki", "ca.crt"))
	if err != nil {
		return "", "", err
	}
	admin = strings.TrimSpace(tok)
	if err := writeServerClientConfig(ctx, first, admin, ca); err != nil {
		return "", "", err
	}
	err = b.poll(ctx, "the first server's API", func() (bool, error) {
		_, err := first.r.Run(ctx, first.cli("whoami"), nil)
		return err == nil, nil
	})
	return admin, ca, err
}

// writeServerClientConfig leaves on server n the client configuration
// bootstrap's commands there use: its own API on loopback, as admin
// (mode 0600, in the data directory).
func writeServerClientConfig(ctx context.Context, n *node, admin, ca string) error {
	cfg := &clientconfig.Config{}
	cfg.Upsert(clientconfig.Context{Name: "bootstrap", Server: "https://127.0.0.1:" + strconv.Itoa(DefaultAPIPort),
		Token: admin, Project: "default", CACert: ca}, true)
	text, err := cfg.Encode()
	if err != nil {
		return err
	}
	_, err = ensureFile(ctx, n.r, n.clientConfig(), string(text), "0600", false)
	return err
}

// joinServer joins n to the cluster the first server started, unless it
// already is a member, and waits until it is ready.
func (b *run) joinServer(ctx context.Context, first, n *node) error {
	joined := n.test(ctx, path.Join(n.dataOf("server"), "pki", "ca.crt"))
	token := ""
	if !joined && !b.opts.Check {
		out, err := first.r.Run(ctx, first.cli("server", "join-token", "-o", "json"), nil)
		if err != nil {
			return fmt.Errorf("server join token: %w", err)
		}
		var jt api.ServerJoinToken
		if err := json.Unmarshal([]byte(out), &jt); err != nil || jt.Token == "" {
			return fmt.Errorf("server join token: unexpected answer %q", out)
		}
		token = jt.Token
	}
	s := b.serverService(n, token)
	changed, err := n.svc.ensure(ctx, s, b.opts.Check)
	if err != nil {
		return err
	}
	b.report(n.h.Name, "server", b.outcome(changed, map[bool]string{true: "", false: " (joined the cluster)"}[joined]))
	if b.opts.Check {
		return nil
	}
	err = b.poll(ctx, "server "+n.h.Name+" ready in the cluster", func() (bool, error) {
		out, err := first.r.Run(ctx, first.cli("server", "list", "-o", "json"), nil)
		if err != nil {
			return false, nil
		}
		var l api.ServerList
		if json.Unmarshal([]byte(out), &l) != nil {
			return false, nil
		}
		for _, s := range l.Items {
			if s.Name == n.h.Name && s.Ready {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	if token != "" {
		return n.svc.forgetEnv(ctx, s)
	}
	return nil
}

// joinAgent gives n the cluster CA and its agent, joined with a new host
// join token unless it already has credentials, and waits until its host
// is Ready.
func (b *run) joinAgent(ctx context.Context, first, n *node, ca string) error {
	caChanged, err := ensureFile(ctx, n.r, n.caFile(), ca, "0644", b.opts.Check)
	if err != nil {
		return err
	}
	joined := n.test(ctx, path.Join(n.dataOf("agent"), "credentials.json"))
	token := ""
	if !joined && !b.opts.Check {
		out, err := first.r.Run(ctx, first.cli("host", "join-token", "-o", "json"), nil)
		if err != nil {
			return fmt.Errorf("host join token: %w", err)
		}
		var jt api.JoinToken
		if err := json.Unmarshal([]byte(out), &jt); err != nil || jt.Status.Secret == "" {
			return fmt.Errorf("host join token: unexpected answer")
		}
		token = jt.Status.Secret
	}
	s := b.agentService(n, b.apiURL(first), token)
	changed, err := n.svc.ensure(ctx, s, b.opts.Check)
	if err != nil {
		return err
	}
	if caChanged && !changed && !b.opts.Check {
		// A new CA with an unchanged unit: the agent must read it again.
		if err := n.svc.restart(ctx, s); err != nil {
			return err
		}
		changed = true
	}
	b.report(n.h.Name, "agent", b.outcome(changed, map[bool]string{true: "", false: " (joined the cluster)"}[joined]))
	if b.opts.Check {
		return nil
	}
	if err := b.hostReady(ctx, first, n.h.Name); err != nil {
		return err
	}
	if token != "" {
		return n.svc.forgetEnv(ctx, s)
	}
	return nil
}

// hostReady waits until the host's phase is Ready, asked on the first
// server.
func (b *run) hostReady(ctx context.Context, first *node, name string) error {
	return b.poll(ctx, "host "+name+" Ready", func() (bool, error) {
		h, err := readHost(ctx, first, name)
		if err != nil {
			return false, nil
		}
		return h.Status.Phase == api.HostReady, nil
	})
}

// readHost reads host name with the CLI on first.
func readHost(ctx context.Context, first *node, name string) (*api.Host, error) {
	out, err := first.r.Run(ctx, first.cli("host", "get", name, "-o", "json"), nil)
	if err != nil {
		return nil, err
	}
	var h api.Host
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		return nil, fmt.Errorf("decode host %s: %w", name, err)
	}
	return &h, nil
}

// poll calls cond every half second until it holds, fails, or
// ReadyTimeout passes.
func (b *run) poll(ctx context.Context, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.ReadyTimeout)
	defer cancel()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: gave up after %s", what, b.opts.ReadyTimeout)
		case <-t.C:
		}
	}
}

// writeContext puts c into the client configuration at file, keeping the
// current context unless there is none; it reports whether it changed.
func writeContext(file string, c clientconfig.Context) (bool, error) {
	cfg, err := clientconfig.Load(file)
	if err != nil {
		return false, err
	}
	if old := cfg.Find(c.Name); old != nil && *old == c {
		return false, nil
	}
	cfg.Upsert(c, cfg.CurrentContext == "")
	return true, cfg.Save(file)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
