package bootstrap

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// Upgrade rolls the local binaries through a bootstrapped cloud, one host
// at a time: the servers first, each restarted and ready in the cluster
// before the next (so a cluster of three keeps its quorum and the API
// VIP keeps answering), then the agents, each restarted (its instances
// run on: the agent adopts them) and Ready before the next. Hosts whose
// binary is already the one asked for are left alone.
func Upgrade(ctx context.Context, inv *Inventory, opts Options) (Result, error) {
	if opts.Dial == nil {
		opts.Dial = DialAddress
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 5 * time.Minute
	}
	b := &run{inv: inv, opts: opts}
	nodes := map[string]*node{}
	defer func() {
		for _, n := range nodes {
			n.r.Close()
		}
	}()
	for i := range inv.Hosts {
		h := &inv.Hosts[i]
		n, err := b.connect(ctx, h)
		if err != nil {
			b.fail(h.Name, "connect", err)
			return Result{Changes: b.changes}, errors.Join(b.errs...)
		}
		nodes[h.Name] = n
	}
	servers := inv.Servers()
	first := nodes[servers[0].Name]
	admin, ca, err := b.firstServerReady(ctx, first)
	if err != nil {
		b.fail(first.h.Name, "server", err)
		return Result{Changes: b.changes}, errors.Join(b.errs...)
	}
	for _, h := range servers {
		n := nodes[h.Name]
		// Each server is asked about itself once restarted: a list asked
		// elsewhere may still show it ready from before its restart.
		if err := writeServerClientConfig(ctx, n, admin, ca); err != nil {
			b.fail(h.Name, "upgrade", err)
			return Result{Changes: b.changes}, errors.Join(b.errs...)
		}
		if err := b.upgradeOne(ctx, n, b.serverService(n, ""), func() error { return b.serverBack(ctx, n, len(servers)) }); err != nil {
			b.fail(h.Name, "upgrade", err)
			return Result{Changes: b.changes}, errors.Join(b.errs...)
		}
	}
	for _, h := range inv.Agents() {
		n := nodes[h.Name]
		// The host may stay Ready through its agent's restart: what
		// tells the new agent is up is a start time other than this.
		before, err := b.agentStarted(ctx, first, h.Name)
		if err != nil {
			b.fail(h.Name, "upgrade", err)
			return Result{Changes: b.changes}, errors.Join(b.errs...)
		}
		if err := b.upgradeOne(ctx, n, b.agentService(n, b.apiURL(first), ""), func() error { return b.agentBack(ctx, first, h.Name, before) }); err != nil {
			b.fail(h.Name, "upgrade", err)
			return Result{Changes: b.changes}, errors.Join(b.errs...)
		}
	}
	return Result{Changes: b.changes}, nil
}

// connect logs into h and reads what it is.
func (b *run) connect(ctx context.Context, h *Host) (*node, error) {
	n := &node{h: h, addr: h.Address}
	if h.Instance != "" {
		if b.opts.Address == nil {
			return nil, errors.New("the host is an instance, and no cloud to find it in was given")
		}
		addr, err := b.opts.Address(ctx, h)
		if err != nil {
			return nil, err
		}
		n.addr = addr
	}
	r, err := dialSSH(ctx, h, b.opts.Dial, b.opts.Known)
	if err != nil {
		return nil, err
	}
	n.r = r
	if n.f, err = readFacts(ctx, r); err != nil {
		r.Close()
		return nil, err
	}
	n.svc = serviceManager{r: r, systemd: n.f.systemd, data: h.Paths.Data}
	return n, nil
}

// upgradeOne replaces n's binary if it differs, restarts the service s
// and waits for ready.
func (b *run) upgradeOne(ctx context.Context, n *node, s service, ready func() error) error {
	changed, sum, err := b.ensureBinary(ctx, n)
	if err != nil {
		return err
	}
	if !changed || b.opts.Check {
		b.report(n.h.Name, "upgrade "+s.role, b.outcome(changed, ""))
		return nil
	}
	if err := n.svc.restart(ctx, s); err != nil {
		return err
	}
	if err := ready(); err != nil {
		return err
	}
	b.report(n.h.Name, "upgrade "+s.role, Changed+" ("+sum[:12]+")")
	return nil
}

// serverBack waits until the restarted server n answers on its own
// address and count servers are ready in the cluster, asked on n: the
// next server is restarted only then, so etcd keeps its quorum.
func (b *run) serverBack(ctx context.Context, n *node, count int) error {
	return b.poll(ctx, "server "+n.h.Name+" back and every server ready", func() (bool, error) {
		if _, err := n.r.Run(ctx, n.cli("whoami"), nil); err != nil {
			return false, nil
		}
		out, err := n.r.Run(ctx, n.cli("server", "list", "-o", "json"), nil)
		if err != nil {
			return false, nil
		}
		var l api.ServerList
		if json.Unmarshal([]byte(out), &l) != nil {
			return false, nil
		}
		ready := 0
		for _, s := range l.Items {
			if s.Ready {
				ready++
			}
		}
		return ready >= count, nil
	})
}

// agentStarted reads when host name's agent started, asked on first.
func (b *run) agentStarted(ctx context.Context, first *node, name string) (time.Time, error) {
	var started time.Time
	err := b.poll(ctx, "host "+name+" read", func() (bool, error) {
		h, err := readHost(ctx, first, name)
		if err != nil {
			return false, nil
		}
		started = h.Status.AgentStartTime
		return true, nil
	})
	return started, err
}

// agentBack waits until host name is Ready with an agent started at
// another time than before: the restarted agent has reported itself.
func (b *run) agentBack(ctx context.Context, first *node, name string, before time.Time) error {
	return b.poll(ctx, "agent of "+name+" restarted and Ready", func() (bool, error) {
		h, err := readHost(ctx, first, name)
		if err != nil {
			return false, nil
		}
		started := h.Status.AgentStartTime
		return h.Status.Phase == api.HostReady && !started.IsZero() && !started.Equal(before), nil
	})
}
