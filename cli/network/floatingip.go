package network

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/client"
)

// NewFloatingIPCommand returns the fip command and its subcommands.
func NewFloatingIPCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "fip",
		Aliases: []string{"floatingip", "floatingips", "floating-ip"},
		Short:   "Manage floating IPs (external addresses of instances)",
	}
	pool := &cobra.Command{
		Use:     "pool",
		Aliases: []string{"pools"},
		Short:   "Manage the pools floating IPs come from (cluster admins)",
	}
	pool.AddCommand(
		newPoolCreateCommand(o),
		command.NewList(o, api.FloatingIPPoolKind, "List floating IP pools", poolTable),
		command.NewGet(o, api.FloatingIPPoolKind, "Show a floating IP pool", poolTable),
		command.NewDelete(o, api.FloatingIPPoolKind, "Delete floating IP pools"),
	)
	cmd.AddCommand(
		pool,
		newFloatingIPAllocateCommand(o),
		command.NewList(o, api.FloatingIPKind, "List floating IPs", floatingIPTable),
		command.NewGet(o, api.FloatingIPKind, "Show a floating IP", floatingIPTable),
		newFloatingIPAssociateCommand(o),
		newFloatingIPDisassociateCommand(o),
		newFloatingIPReleaseCommand(o),
	)
	return cmd
}

// poolTable writes pools as NAME CIDR RANGE ALLOCATED.
func poolTable(items []*api.FloatingIPPool) func(*output.Table) {
	return func(t *output.Table) {
		t.Row("NAME", "CIDR", "RANGE", "ALLOCATED")
		for _, p := range items {
			allocated := strconv.Itoa(p.Status.Allocated)
			if n, ok := rangeSize(p.Spec.Start, p.Spec.End); ok {
				allocated += "/" + strconv.FormatUint(n, 10)
			}
			t.Row(p.Metadata.Name, p.Spec.CIDR, p.Spec.Start+"-"+p.Spec.End, allocated)
		}
	}
}

// rangeSize returns how many IPv4 addresses lie from start to end.
func rangeSize(start, end string) (uint64, bool) {
	a, err1 := netip.ParseAddr(start)
	b, err2 := netip.ParseAddr(end)
	if err1 != nil || err2 != nil || !a.Is4() || !b.Is4() || b.Less(a) {
		return 0, false
	}
	return uint64(addrUint32(b)-addrUint32(a)) + 1, true
}

func addrUint32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// floatingIPTable writes floating IPs as NAME ADDRESS INSTANCE INSTANCE-IP
// HOST AGE.
func floatingIPTable(items []*api.FloatingIP) func(*output.Table) {
	return func(t *output.Table) {
		now := time.Now()
		t.Row("NAME", "ADDRESS", "INSTANCE", "INSTANCE-IP", "HOST", "AGE")
		for _, f := range items {
			t.Row(f.Metadata.Name, f.Status.Address, f.Spec.Instance, f.Status.InstanceIP, f.Status.Host,
				output.Age(f.Metadata.CreationTimestamp, now))
		}
	}
}

// poolSpec checks the flags of fip pool create and returns the spec they
// ask for. rng is "START-END".
func poolSpec(cidr, rng string) (api.FloatingIPPoolSpec, error) {
	if cidr == "" {
		return api.FloatingIPPoolSpec{}, command.FlagError("cidr", "required: give the external subnet, e.g. --cidr 10.99.0.0/24")
	}
	p, err := parseIPv4Prefix("cidr", cidr)
	if err != nil {
		return api.FloatingIPPoolSpec{}, err
	}
	if rng == "" {
		return api.FloatingIPPoolSpec{}, command.FlagError("range", "required: give the addresses to hand out, e.g. --range 10.99.0.200-10.99.0.250")
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return api.FloatingIPPoolSpec{}, command.FlagError("range", "%q is not START-END, e.g. 10.99.0.200-10.99.0.250", rng)
	}
	var ends [2]netip.Addr
	for i, s := range []string{a, b} {
		ip, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil || !ip.Is4() {
			return api.FloatingIPPoolSpec{}, command.FlagError("range", "%q is not an IPv4 address", s)
		}
		if !p.Contains(ip) {
			return api.FloatingIPPoolSpec{}, command.FlagError("range", "%s is outside --cidr %s", ip, p)
		}
		if ip == p.Addr() || ip == lastAddr(p) {
			return api.FloatingIPPoolSpec{}, command.FlagError("range", "%s is the network or broadcast address of %s", ip, p)
		}
		ends[i] = ip
	}
	if ends[1].Less(ends[0]) {
		return api.FloatingIPPoolSpec{}, command.FlagError("range", "%s is backwards: write the lower address first (%s-%s)", rng, ends[1], ends[0])
	}
	return api.FloatingIPPoolSpec{CIDR: p.String(), Start: ends[0].String(), End: ends[1].String()}, nil
}

func newPoolCreateCommand(o *command.Options) *cobra.Command {
	var cidr, rng string
	cmd := &cobra.Command{
		Use:     "create NAME --cidr PREFIX --range START-END",
		Short:   "Create a pool of external addresses (cluster admins)",
		Example: "  ouro fip pool create public --cidr 10.99.0.0/24 --range 10.99.0.200-10.99.0.250",
		Args:    command.ExactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := poolSpec(cidr, rng)
			if err != nil {
				return err
			}
			if e := api.ValidateName("metadata.name", args[0]); e != nil {
				return command.ArgError("pool name %q: %s (%s)", args[0], e.Message, e.Hint)
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			p := &api.FloatingIPPool{Kind: api.FloatingIPPoolKind.Name, Metadata: api.ObjectMeta{Name: args[0]}, Spec: spec}
			if _, err := c.Create(cmd.Context(), p, client.CreateOptions{IdempotencyKey: command.NewInvocationID()}); err != nil {
				return err
			}
			return o.Render(cmd.OutOrStdout(), p, poolTable([]*api.FloatingIPPool{p}))
		},
	}
	cmd.Flags().StringVar(&cidr, "cidr", "", "external IPv4 subnet the addresses live in (required)")
	cmd.Flags().StringVar(&rng, "range", "", "addresses to hand out, START-END inclusive (required)")
	return cmd
}

// nameAlphabet is what random name suffixes are made of.
const nameAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// randomName returns prefix followed by n random lower-case letters and
// digits.
func randomName(prefix string, n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		rand.Read(buf) // never fails (crypto/rand)
		for _, c := range buf {
			// Skip the bytes past the last whole multiple of the
			// alphabet's size, so every character is equally likely.
			if int(c) < 256/len(nameAlphabet)*len(nameAlphabet) && len(out) < n {
				out = append(out, nameAlphabet[int(c)%len(nameAlphabet)])
			}
		}
	}
	return prefix + string(out)
}

func newFloatingIPAllocateCommand(o *command.Options) *cobra.Command {
	var pool, instance string
	cmd := &cobra.Command{
		Use:   "allocate [NAME] [--pool POOL] [--instance INSTANCE]",
		Short: "Allocate a floating IP, and associate it with an instance",
		Long: "Allocate an external address from a pool (default: the only pool). NAME defaults to\n" +
			"fip-<5 random characters>. With --instance the address goes to that instance at once.",
		Example: "  ouro fip allocate web-ip --instance web-1\n" +
			"  ouro fip allocate --pool public",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return command.ArgError("%s wants at most one NAME, got %d arguments", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name := randomName("fip-", 5)
			if len(args) == 1 {
				name = args[0]
			}
			if e := api.ValidateName("metadata.name", name); e != nil {
				return command.ArgError("floating IP name %q: %s (%s)", name, e.Message, e.Hint)
			}
			if pool != "" {
				if e := api.ValidateName("spec.pool", pool); e != nil {
					return command.FlagError("pool", "%s (%s)", e.Message, e.Hint)
				}
			}
			if instance != "" {
				if e := api.ValidateName("spec.instance", instance); e != nil {
					return command.FlagError("instance", "%s (%s)", e.Message, e.Hint)
				}
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			f := &api.FloatingIP{Kind: api.FloatingIPKind.Name,
				Metadata: api.ObjectMeta{Name: name, Project: o.Project()},
				Spec:     api.FloatingIPSpec{Pool: pool, Instance: instance}}
			if _, err := c.Create(cmd.Context(), f, client.CreateOptions{IdempotencyKey: command.NewInvocationID()}); err != nil {
				return err
			}
			return o.Render(cmd.OutOrStdout(), f, floatingIPTable([]*api.FloatingIP{f}))
		},
	}
	cmd.Flags().StringVar(&pool, "pool", "", "pool to allocate from (default: the only pool)")
	cmd.Flags().StringVar(&instance, "instance", "", "instance to associate the address with")
	cmd.RegisterFlagCompletionFunc("pool", o.CompleteNames(api.FloatingIPPoolKind, true))
	cmd.RegisterFlagCompletionFunc("instance", o.CompleteNames(api.InstanceKind, true))
	return cmd
}

// floatingIPAction posts an action (associate, disassociate) of a floating
// IP with body in (may be nil) and prints the floating IP it answers with.
func floatingIPAction(o *command.Options, cmd *cobra.Command, name, action string, in any) error {
	c, err := o.Client()
	if err != nil {
		return err
	}
	var f api.FloatingIP
	path := client.Path(api.FloatingIPKind, o.Project(), name) + "/" + action
	if _, err := c.Do(cmd.Context(), http.MethodPost, path, nil, in, &f); err != nil {
		return fmt.Errorf("%s floating IP %s: %w", action, name, err)
	}
	return o.Render(cmd.OutOrStdout(), &f, floatingIPTable([]*api.FloatingIP{&f}))
}

// associateRequest is the body of POST .../floatingips/{name}/associate.
type associateRequest struct {
	Instance string `json:"instance"`
}

func newFloatingIPAssociateCommand(o *command.Options) *cobra.Command {
	return &cobra.Command{
		Use:               "associate FIP INSTANCE",
		Short:             "Send a floating IP's traffic to an instance",
		Args:              command.ExactArgs("FIP", "INSTANCE"),
		ValidArgsFunction: o.CompleteArgs(api.FloatingIPKind, api.InstanceKind),
		RunE: func(cmd *cobra.Command, args []string) error {
			if e := api.ValidateName("instance", args[1]); e != nil {
				return command.ArgError("instance name %q: %s (%s)", args[1], e.Message, e.Hint)
			}
			return floatingIPAction(o, cmd, args[0], "associate", associateRequest{Instance: args[1]})
		},
	}
}

func newFloatingIPDisassociateCommand(o *command.Options) *cobra.Command {
	return &cobra.Command{
		Use:               "disassociate FIP",
		Short:             "Detach a floating IP from its instance, keeping the address",
		Args:              command.ExactArgs("FIP"),
		ValidArgsFunction: o.CompleteNames(api.FloatingIPKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			return floatingIPAction(o, cmd, args[0], "disassociate", nil)
		},
	}
}

func newFloatingIPReleaseCommand(o *command.Options) *cobra.Command {
	return command.NewRemove(o, api.FloatingIPKind, "release", "released",
		"Release floating IPs: their addresses go back to the pool")
}
