package loadbalancer

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
)

// The listener and pool commands change a load balancer by
// read-modify-write at the version read (client.UpdateLoadBalancer),
// starting again from a fresh read when another change came in between.

func newListenerCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "listener",
		Aliases: []string{"listeners"},
		Short:   "Add or delete a load balancer's listeners (its ports)",
	}
	cmd.AddCommand(newListenerAddCommand(o), newListenerDeleteCommand(o))
	return cmd
}

func newPoolCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "pool",
		Aliases: []string{"pools"},
		Short:   "Add or delete a load balancer's pools of members",
	}
	cmd.AddCommand(newPoolAddCommand(o), newPoolDeleteCommand(o))
	return cmd
}

type listenerFlags struct {
	port              int
	protocol, pool    string
	name              string
	certFile, keyFile string
	rules             []string
}

func newListenerAddCommand(o *command.Options) *cobra.Command {
	f := &listenerFlags{}
	cmd := &cobra.Command{
		Use:   "add LB --port PORT [--protocol tcp|http|https] --pool POOL [--name NAME] [--cert FILE --key FILE] [--rule host=H,path=/P,pool=POOL ...]",
		Short: "Add a listener to a load balancer",
		Long: "Add a port the VIP serves, sending to --pool. An https listener terminates TLS with the PEM\n" +
			"certificate chain of --cert and the private key of --key (never shown again). http and https\n" +
			"listeners may route requests by host or path prefix with --rule; the first that matches wins.",
		Example: "  ouro lb listener add web --port 443 --protocol https --pool default --cert web.crt --key web.key\n" +
			"  ouro lb listener add web --port 8080 --protocol http --pool default --rule path=/api,pool=api",
		Args:              command.ExactArgs("LB"),
		ValidArgsFunction: o.CompleteNames(api.LoadBalancerKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := f.listener(cmd)
			if err != nil {
				return err
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			lb, err := c.UpdateLoadBalancer(cmd.Context(), o.Project(), args[0], func(lb *api.LoadBalancer) error {
				name := listenerName(l)
				// The port first: a listener left unnamed takes its name
				// from its port, and the port is what is in use.
				for _, ol := range lb.Spec.Listeners {
					if ol.Port == l.Port {
						return command.FlagError("port", "%d is already used by listener %q", l.Port, ol.Name)
					}
				}
				for _, ol := range lb.Spec.Listeners {
					if ol.Name == name {
						return command.FlagError("name", "load balancer %s already has a listener %q", args[0], name)
					}
				}
				lb.Spec.Listeners = append(lb.Spec.Listeners, l)
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "loadbalancer/%s: listener %s added\n", lb.Metadata.Name, listenerName(l))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.port, "port", 0, "the VIP's port (required)")
	fl.StringVar(&f.protocol, "protocol", api.ListenerTCP, "tcp, http or https")
	fl.StringVar(&f.pool, "pool", "", "the pool requests go to when no rule matches (required)")
	fl.StringVar(&f.name, "name", "", "the listener's name (default <protocol>-<port>)")
	fl.StringVar(&f.certFile, "cert", "", "https: PEM file of the certificate chain, leaf first")
	fl.StringVar(&f.keyFile, "key", "", "https: PEM file of the certificate's private key")
	fl.StringArrayVar(&f.rules, "rule", nil, "http/https: host=H,path=/P,pool=POOL sends matching requests to POOL (repeatable)")
	cmd.RegisterFlagCompletionFunc("protocol", cobra.FixedCompletions([]string{api.ListenerTCP, api.ListenerHTTP, api.ListenerHTTPS}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("pool", completeParts(o, poolNames))
	cmd.RegisterFlagCompletionFunc("cert", cobra.FixedCompletions(nil, cobra.ShellCompDirectiveDefault))
	cmd.RegisterFlagCompletionFunc("key", cobra.FixedCompletions(nil, cobra.ShellCompDirectiveDefault))
	return cmd
}

// listener returns the listener the flags ask for, with the certificate
// and key read from their files.
func (f *listenerFlags) listener(cmd *cobra.Command) (api.Listener, error) {
	l := api.Listener{Name: f.name, Protocol: f.protocol, Port: f.port, DefaultPool: f.pool}
	switch {
	case f.port < 1 || f.port > 65535:
		if f.port == 0 {
			return l, command.FlagError("port", "required: give the port the VIP serves, e.g. --port 443")
		}
		return l, command.FlagError("port", "%d is out of range: use 1 to 65535", f.port)
	case f.pool == "":
		return l, command.FlagError("pool", "required: name the pool requests go to (see `ouro lb get LB`)")
	}
	if f.name != "" {
		if e := api.ValidateName("name", f.name); e != nil {
			return l, command.FlagError("name", "%q: %s (%s)", f.name, e.Message, e.Hint)
		}
	}
	switch f.protocol {
	case api.ListenerTCP, api.ListenerHTTP, api.ListenerHTTPS:
	default:
		return l, command.FlagError("protocol", "%q: use tcp, http or https", f.protocol)
	}
	if f.protocol == api.ListenerTCP && len(f.rules) > 0 {
		return l, command.FlagError("rule", "rules route http requests: use --protocol http or https")
	}
	for _, s := range f.rules {
		r, err := parseRule(s)
		if err != nil {
			return l, err
		}
		l.Rules = append(l.Rules, r)
	}
	if f.protocol != api.ListenerHTTPS {
		if f.certFile != "" || f.keyFile != "" {
			return l, command.FlagError("cert", "--cert and --key are for --protocol https")
		}
		return l, nil
	}
	switch {
	case f.certFile == "":
		return l, command.FlagError("cert", "required with --protocol https: give the PEM certificate file")
	case f.keyFile == "":
		return l, command.FlagError("key", "required with --protocol https: give the PEM private key file")
	}
	cert, err := command.ReadInputFile(cmd, f.certFile, maxPEMBytes)
	if err != nil {
		return l, command.FlagError("cert", "%v", err)
	}
	key, err := command.ReadInputFile(cmd, f.keyFile, maxPEMBytes)
	if err != nil {
		return l, command.FlagError("key", "%v", err)
	}
	l.Certificate, l.Key = string(cert), string(key)
	return l, nil
}

func newListenerDeleteCommand(o *command.Options) *cobra.Command {
	return newPartDeleteCommand(o, "listener", "Delete a listener of a load balancer", listenerNames,
		func(lb *api.LoadBalancer, i int) { lb.Spec.Listeners = slices.Delete(lb.Spec.Listeners, i, i+1) })
}

func newPoolAddCommand(o *command.Options) *cobra.Command {
	f := &poolFlags{}
	cmd := &cobra.Command{
		Use:   "add LB NAME (--group G | --instance I[:WEIGHT] ...) --port PORT [--health tcp|http:/PATH] [--algorithm ALG]",
		Short: "Add a pool of members to a load balancer",
		Long: "Add a pool that listeners and rules can send to: the members of an instance group, or the\n" +
			"instances listed (each with an optional weight), on --port, checked by --health.",
		Example: "  ouro lb pool add web api --group api --port 9000 --health http:/healthz\n" +
			"  ouro lb pool add web legacy --instance old-0:3 --instance old-1 --port 80 --algorithm least-connections",
		Args:              command.ExactArgs("LB", "NAME"),
		ValidArgsFunction: o.CompleteNames(api.LoadBalancerKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			if e := api.ValidateName("name", args[1]); e != nil {
				return command.ArgError("pool name %q: %s (%s)", args[1], e.Message, e.Hint)
			}
			p, err := f.pool(args[1])
			if err != nil {
				return err
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			lb, err := c.UpdateLoadBalancer(cmd.Context(), o.Project(), args[0], func(lb *api.LoadBalancer) error {
				if slices.Contains(poolNames(lb), p.Name) {
					return command.ArgError("load balancer %s already has a pool %q", args[0], p.Name)
				}
				lb.Spec.Pools = append(lb.Spec.Pools, p)
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "loadbalancer/%s: pool %s added\n", lb.Metadata.Name, p.Name)
			return nil
		},
	}
	f.register(cmd.Flags())
	registerPoolCompletions(cmd, o)
	return cmd
}

func newPoolDeleteCommand(o *command.Options) *cobra.Command {
	return newPartDeleteCommand(o, "pool", "Delete a pool of a load balancer (no listener or rule may send to it)", poolNames,
		func(lb *api.LoadBalancer, i int) { lb.Spec.Pools = slices.Delete(lb.Spec.Pools, i, i+1) })
}

// newPartDeleteCommand returns "delete LB NAME", which deletes the
// listener or pool (what) named NAME from load balancer LB: names lists
// the parts, remove takes out the i-th.
func newPartDeleteCommand(o *command.Options, what, short string,
	names func(*api.LoadBalancer) []string, remove func(*api.LoadBalancer, int)) *cobra.Command {
	return &cobra.Command{
		Use:               "delete LB NAME",
		Aliases:           []string{"rm"},
		Short:             short,
		Args:              command.ExactArgs("LB", "NAME"),
		ValidArgsFunction: completeParts(o, names),
		RunE: func(cmd *cobra.Command, args []string) error {
			lbName, name := args[0], args[1]
			c, err := o.Client()
			if err != nil {
				return err
			}
			_, err = c.UpdateLoadBalancer(cmd.Context(), o.Project(), lbName, func(lb *api.LoadBalancer) error {
				have := names(lb)
				i := slices.Index(have, name)
				if i < 0 {
					return command.ArgError("load balancer %s has no %s %q (it has: %s)", lbName, what, name, command.KnownList(have))
				}
				remove(lb, i)
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "loadbalancer/%s: %s %s deleted\n", lbName, what, name)
			return nil
		},
	}
}

func listenerNames(lb *api.LoadBalancer) []string {
	out := make([]string, len(lb.Spec.Listeners))
	for i, l := range lb.Spec.Listeners {
		out[i] = listenerName(l)
	}
	return out
}

func poolNames(lb *api.LoadBalancer) []string {
	out := make([]string, len(lb.Spec.Pools))
	for i, p := range lb.Spec.Pools {
		out[i] = p.Name
	}
	return out
}

// completeParts completes "LB NAME": load balancers first, then the
// parts names lists of the load balancer given (also for a flag, once
// the load balancer is the first argument).
func completeParts(o *command.Options, names func(*api.LoadBalancer) []string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return o.CompleteNames(api.LoadBalancerKind, false)(cmd, args, toComplete)
		}
		if len(args) > 1 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := o.Client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		ctx, cancel := command.CompletionContext(cmd)
		defer cancel()
		lb, err := c.GetLoadBalancer(ctx, o.Project(), args[0])
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		var out []cobra.Completion
		for _, n := range names(lb) {
			if strings.HasPrefix(n, toComplete) {
				out = append(out, n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
