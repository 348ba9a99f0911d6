// Package loadbalancer is the `ouro lb` family of commands: load
// balancers with their listeners and pools, their members' health, and
// waiting for a new load balancer to serve.
package loadbalancer

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/cli/wait"
	"github.com/ouroboros-cloud/ouro/client"
)

// NewCommand returns the lb command and its subcommands.
func NewCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "lb",
		Aliases: []string{"loadbalancer", "loadbalancers", "load-balancer"},
		Short:   "Manage load balancers (one address for a group of instances)",
		Long: "A load balancer gives instances one address, its VIP on a network of the project (and,\n" +
			"with --fip, a floating IP for outside clients). Listeners are its ports; each sends to a\n" +
			"pool of members, an instance group or a list of instances, checked by a health monitor.",
	}
	cmd.AddCommand(
		newCreateCommand(o),
		command.NewList(o, api.LoadBalancerKind, "List load balancers", lbTable),
		command.NewGet(o, api.LoadBalancerKind, "Show a load balancer with its listeners and pools", lbDetail),
		command.NewDeleteWait(o, api.LoadBalancerKind, "Delete load balancers, releasing their addresses", " deleted",
			"wait until the load balancers are gone", waitGone),
		newMembersCommand(o),
		newListenerCommand(o),
		newPoolCommand(o),
	)
	return cmd
}

func waitGone(ctx context.Context, c *client.Client, project string, names []string, out io.Writer) error {
	return wait.Deleted[api.LoadBalancer](ctx, c, api.LoadBalancerKind, project, names, func(string) {})
}

// lbTable writes load balancers as NAME NETWORK VIP FLOATING-IP LISTENERS
// HOSTS PHASE AGE.
func lbTable(items []*api.LoadBalancer) func(*output.Table) {
	return func(t *output.Table) {
		now := time.Now()
		t.Row("NAME", "NETWORK", "VIP", "FLOATING-IP", "LISTENERS", "HOSTS", "PHASE", "AGE")
		for _, lb := range items {
			t.Row(lb.Metadata.Name, lb.Spec.Network, lb.Status.VIP, lb.Status.FloatingIP, listenerSummary(lb),
				hostSummary(lb), phaseOf(lb), output.Age(lb.Metadata.CreationTimestamp, now))
		}
	}
}

// lbDetail writes lbTable followed by the listeners and the pools.
func lbDetail(items []*api.LoadBalancer) func(*output.Table) {
	return func(t *output.Table) {
		lbTable(items)(t)
		for _, lb := range items {
			t.Row()
			t.Row("LISTENER", "PROTOCOL", "PORT", "POOL", "RULES")
			for _, l := range lb.Spec.Listeners {
				var rules []string
				for _, r := range l.Rules {
					rules = append(rules, ruleString(r))
				}
				t.Row(l.Name, l.Protocol, strconv.Itoa(l.Port), l.DefaultPool, strings.Join(rules, " "))
			}
			t.Row()
			t.Row("POOL", "MEMBERS", "PORT", "ALGORITHM", "HEALTH")
			for _, p := range lb.Spec.Pools {
				t.Row(p.Name, membersOf(p), strconv.Itoa(p.Port), p.Algorithm, monitorString(p.HealthMonitor))
			}
		}
	}
}

// listenerSummary writes listeners as "80/http,443/https".
func listenerSummary(lb *api.LoadBalancer) string {
	var out []string
	for _, l := range lb.Spec.Listeners {
		out = append(out, fmt.Sprintf("%d/%s", l.Port, l.Protocol))
	}
	return strings.Join(out, ",")
}

// hostSummary writes the hosts as "h1*,h2" (* holds the VIP), or the
// number asked for while none is placed.
func hostSummary(lb *api.LoadBalancer) string {
	if len(lb.Status.Hosts) == 0 {
		return fmt.Sprintf("0/%d", max(lb.Spec.Hosts, 1))
	}
	var out []string
	for _, h := range lb.Status.Hosts {
		n := h.Name
		if h.Active {
			n += "*"
		}
		out = append(out, n)
	}
	return strings.Join(out, ",")
}

func phaseOf(lb *api.LoadBalancer) string {
	if lb.Status.Phase == "" {
		return api.LBPending
	}
	return lb.Status.Phase
}

func ruleString(r api.ListenerRule) string {
	var parts []string
	if r.Host != "" {
		parts = append(parts, "host="+r.Host)
	}
	if r.PathPrefix != "" {
		parts = append(parts, "path="+r.PathPrefix)
	}
	return strings.Join(parts, ",") + "→" + r.Pool
}

func membersOf(p api.Pool) string {
	if p.Group != "" {
		return "group " + p.Group
	}
	var out []string
	for _, pi := range p.Instances {
		s := pi.Instance
		if pi.Weight != 0 {
			s += ":" + strconv.Itoa(pi.Weight)
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

func monitorString(m api.HealthMonitor) string {
	if m.Type == api.MonitorHTTP {
		return fmt.Sprintf("http:%s %s", m.Path, m.ExpectedStatus)
	}
	return api.MonitorTCP
}

type createFlags struct {
	poolFlags
	network      string
	listen       []string
	fip          bool
	fipPool      string
	hosts        int
	vip          string
	drainTimeout time.Duration
	wait         bool
	timeout      time.Duration
}

func newCreateCommand(o *command.Options) *cobra.Command {
	f := &createFlags{}
	cmd := &cobra.Command{
		Use:   "create NAME --network NET --listen PORT[/tcp|http] (--group G | --instance I ...) --port MEMBER_PORT [flags]",
		Short: "Create a load balancer",
		Long: "Create a load balancer on a network with one pool, \"default\", of the given members, and a\n" +
			"listener \"<protocol>-<port>\" for each --listen sending to it (tcp unless /http is given).\n" +
			"Add https listeners, rules and more pools with `ouro lb listener add` and `ouro lb pool add`.",
		Example: "  ouro lb create web --network web --listen 80 --group web --port 8080 --health http:/ --fip\n" +
			"  ouro lb create db --network backend --listen 5432 --instance db-0 --instance db-1:2 --port 5432 --hosts 2 --wait",
		Args:              command.ExactArgs("NAME"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCreate(cmd, o, f, args[0])
		},
	}
	fl := cmd.Flags()
	f.register(fl)
	fl.StringVar(&f.network, "network", "", "the project's network the VIP lives on and the members are reached through (required)")
	fl.StringArrayVar(&f.listen, "listen", nil, "a port the VIP serves, PORT[/tcp|http] (required; repeat for more)")
	fl.BoolVar(&f.fip, "fip", false, "give the load balancer a floating IP for outside clients")
	fl.StringVar(&f.fipPool, "fip-pool", "", "the pool of the floating IP (default: the only pool)")
	fl.IntVar(&f.hosts, "hosts", 1, "LB hosts: 1, or 2 for active/standby on two hosts")
	fl.StringVar(&f.vip, "vip", "", "the VIP to claim (default: a free address of the network)")
	fl.DurationVar(&f.drainTimeout, "drain-timeout", 0, "how long a leaving member keeps its connections (default 30s)")
	fl.BoolVar(&f.wait, "wait", false, "wait until the load balancer is active on its hosts")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Minute, "how long --wait waits")
	registerPoolCompletions(cmd, o)
	cmd.RegisterFlagCompletionFunc("network", o.CompleteNames(api.NetworkKind, true))
	cmd.RegisterFlagCompletionFunc("fip-pool", o.CompleteNames(api.FloatingIPPoolKind, true))
	cmd.RegisterFlagCompletionFunc("hosts", cobra.FixedCompletions([]string{"1", "2"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("listen", cobra.NoFileCompletions)
	return cmd
}

// registerPoolCompletions completes the flags of poolFlags.
func registerPoolCompletions(cmd *cobra.Command, o *command.Options) {
	cmd.RegisterFlagCompletionFunc("group", o.CompleteNames(api.InstanceGroupKind, true))
	cmd.RegisterFlagCompletionFunc("instance", o.CompleteNames(api.InstanceKind, true))
	cmd.RegisterFlagCompletionFunc("health", cobra.FixedCompletions([]string{"tcp", "http:/"}, cobra.ShellCompDirectiveNoFileComp|cobra.ShellCompDirectiveNoSpace))
	cmd.RegisterFlagCompletionFunc("algorithm", cobra.FixedCompletions([]string{api.AlgorithmRoundRobin, api.AlgorithmLeastConnections, api.AlgorithmSourceHash}, cobra.ShellCompDirectiveNoFileComp))
}

func runCreate(cmd *cobra.Command, o *command.Options, f *createFlags, name string) error {
	if e := api.ValidateName("metadata.name", name); e != nil {
		return command.ArgError("load balancer name %q: %s (%s)", name, e.Message, e.Hint)
	}
	switch {
	case f.network == "":
		return command.FlagError("network", "required: name the network the load balancer serves (see `ouro network list`)")
	case len(f.listen) == 0:
		return command.FlagError("listen", "required: give a port to serve, e.g. --listen 80 or --listen 80/http")
	case f.hosts != 1 && f.hosts != 2:
		return command.FlagError("hosts", "%d: use 1, or 2 for active/standby", f.hosts)
	case f.fipPool != "" && !f.fip:
		return command.FlagError("fip-pool", "give --fip as well to ask for a floating IP")
	case f.wait && f.timeout <= 0:
		return command.FlagError("timeout", "%s is not positive: use a duration such as 5m", f.timeout)
	}
	if f.vip != "" {
		if a, err := netip.ParseAddr(f.vip); err != nil || !a.Is4() {
			return command.FlagError("vip", "%q is not an IPv4 address", f.vip)
		}
	}
	drain, err := drainSeconds(f.drainTimeout)
	if err != nil {
		return err
	}
	pool, err := f.pool(DefaultPool)
	if err != nil {
		return err
	}
	lb := &api.LoadBalancer{
		Kind:     api.LoadBalancerKind.Name,
		Metadata: api.ObjectMeta{Name: name, Project: o.Project()},
		Spec: api.LoadBalancerSpec{Network: f.network, VIP: f.vip, FloatingIP: f.fip, FloatingIPPool: f.fipPool,
			Hosts: f.hosts, DrainTimeoutSeconds: drain, Pools: []api.Pool{pool}},
	}
	for _, s := range f.listen {
		l, err := parseListen(s)
		if err != nil {
			return err
		}
		lb.Spec.Listeners = append(lb.Spec.Listeners, l)
	}
	c, err := o.Client()
	if err != nil {
		return err
	}
	if _, err := c.CreateLoadBalancer(cmd.Context(), lb, client.CreateOptions{IdempotencyKey: command.NewInvocationID()}); err != nil {
		return err
	}
	if f.wait {
		ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
		defer cancel()
		fmt.Fprintf(cmd.ErrOrStderr(), "waiting for load balancer %s to be active...\n", name)
		active, err := wait.LoadBalancerActive(ctx, c, lb.Metadata.Project, name)
		if err != nil {
			return err
		}
		lb = active
	}
	return o.Render(cmd.OutOrStdout(), lb, lbTable([]*api.LoadBalancer{lb}))
}

func newMembersCommand(o *command.Options) *cobra.Command {
	return command.NewShow(o, api.LoadBalancerKind, "members", "List a load balancer's members with their state and health",
		func(cmd *cobra.Command, lb *api.LoadBalancer) error {
			members := lb.Status.Members
			if members == nil {
				members = []api.LoadBalancerMember{}
			}
			return o.Render(cmd.OutOrStdout(), members, memberTable(members))
		})
}

// memberTable writes members as POOL INSTANCE ADDRESS PORT WEIGHT STATE
// HEALTH SINCE.
func memberTable(members []api.LoadBalancerMember) func(*output.Table) {
	return func(t *output.Table) {
		now := time.Now()
		t.Row("POOL", "INSTANCE", "ADDRESS", "PORT", "WEIGHT", "STATE", "HEALTH", "SINCE")
		for _, m := range members {
			since := ""
			if m.Since != nil {
				since = output.Age(*m.Since, now)
			}
			t.Row(m.Pool, m.Instance, m.Address, strconv.Itoa(m.Port), strconv.Itoa(m.Weight), m.State, m.Health, since)
		}
	}
}
