// Package network holds the ouro commands of networking: private
// networks and the VPCs they are subnets of, security groups and their
// rules, floating IPs and the pools they come from.
package network

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/client"
)

// Bounds of a network's prefix length (see api.NetworkSpec.CIDR).
const (
	minNetworkBits = 16
	maxNetworkBits = 29
)

// NewNetworkCommand returns the network command and its subcommands.
func NewNetworkCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "network",
		Aliases: []string{"networks", "net"},
		Short:   "Manage private networks",
	}
	cmd.AddCommand(
		newNetworkCreateCommand(o),
		command.NewList(o, api.NetworkKind, "List networks", networkTable),
		command.NewGet(o, api.NetworkKind, "Show a network", networkTable),
		command.NewDelete(o, api.NetworkKind, "Delete networks"),
	)
	return cmd
}

// networkTable writes networks as NAME CIDR GATEWAY NAT VPC VNI AGE.
func networkTable(items []*api.Network) func(*output.Table) {
	return func(t *output.Table) {
		now := time.Now()
		t.Row("NAME", "CIDR", "GATEWAY", "NAT", "VPC", "VNI", "AGE")
		for _, n := range items {
			vni := ""
			if n.Status.VNI != 0 {
				vni = strconv.Itoa(n.Status.VNI)
			}
			vpc := n.Spec.VPC
			if vpc == "" {
				vpc = "-"
			}
			t.Row(n.Metadata.Name, n.Spec.CIDR, networkGateway(n), output.YesNo(n.NATEnabled()), vpc, vni,
				output.Age(n.Metadata.CreationTimestamp, now))
		}
	}
}

// networkGateway returns the network's gateway: the one in its spec, else
// the default, the first host address of its CIDR.
func networkGateway(n *api.Network) string {
	if n.Spec.Gateway != "" {
		return n.Spec.Gateway
	}
	p, err := netip.ParsePrefix(n.Spec.CIDR)
	if err != nil {
		return ""
	}
	return p.Masked().Addr().Next().String()
}

type networkFlags struct {
	cidr, gateway, vpc string
	dns                []string
	noNAT              bool
}

// spec checks the flags of network create and returns the spec they ask
// for.
func (f *networkFlags) spec() (api.NetworkSpec, error) {
	if f.cidr == "" {
		return api.NetworkSpec{}, command.FlagError("cidr", "required: give the network's IPv4 prefix, e.g. --cidr 10.20.0.0/24")
	}
	p, err := parseIPv4Prefix("cidr", f.cidr)
	if err != nil {
		return api.NetworkSpec{}, err
	}
	if p.Bits() < minNetworkBits || p.Bits() > maxNetworkBits {
		return api.NetworkSpec{}, command.FlagError("cidr", "%s is a /%d: use a prefix from /%d to /%d", f.cidr, p.Bits(), minNetworkBits, maxNetworkBits)
	}
	spec := api.NetworkSpec{CIDR: p.String(), VPC: f.vpc}
	if f.vpc != "" {
		if e := api.ValidateName("vpc", f.vpc); e != nil {
			return api.NetworkSpec{}, command.FlagError("vpc", "%q: %s", f.vpc, e.Message)
		}
	}
	if f.gateway != "" {
		gw, err := netip.ParseAddr(f.gateway)
		if err != nil || !gw.Is4() {
			return api.NetworkSpec{}, command.FlagError("gateway", "%q is not an IPv4 address", f.gateway)
		}
		if !p.Contains(gw) {
			return api.NetworkSpec{}, command.FlagError("gateway", "%s is outside --cidr %s", gw, p)
		}
		if gw == p.Addr() || gw == lastAddr(p) {
			return api.NetworkSpec{}, command.FlagError("gateway", "%s is the network or broadcast address of %s: use a host address", gw, p)
		}
		spec.Gateway = gw.String()
	}
	for _, d := range f.dns {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return api.NetworkSpec{}, command.FlagError("dns", "%q is not an IP address", d)
		}
		spec.DNS = append(spec.DNS, a.String())
	}
	if f.noNAT {
		nat := false
		spec.NAT = &nat
	}
	return spec, nil
}

func newNetworkCreateCommand(o *command.Options) *cobra.Command {
	f := &networkFlags{}
	cmd := &cobra.Command{
		Use:   "create NAME --cidr PREFIX [--vpc VPC] [--gateway IP] [--dns IP]... [--no-nat]",
		Short: "Create a network",
		Long: "Create a private network. Instances on it reach each other on every host, and the\n" +
			"outside through NAT unless --no-nat is given. With --vpc it is a subnet of that VPC:\n" +
			"its prefix lies inside the VPC's, and its instances reach those of the VPC's other subnets.",
		Example: "  ouro network create backend --cidr 10.20.0.0/24\n" +
			"  ouro network create web --vpc prod --cidr 10.0.1.0/24\n" +
			"  ouro network create isolated --cidr 10.30.0.0/24 --gateway 10.30.0.254 --dns 10.0.0.53 --no-nat",
		Args: command.ExactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := f.spec()
			if err != nil {
				return err
			}
			if e := api.ValidateName("metadata.name", args[0]); e != nil {
				return command.ArgError("network name %q: %s (%s)", args[0], e.Message, e.Hint)
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			n := &api.Network{Kind: api.NetworkKind.Name,
				Metadata: api.ObjectMeta{Name: args[0], Project: o.Project()}, Spec: spec}
			if _, err := c.Create(cmd.Context(), n, client.CreateOptions{IdempotencyKey: command.NewInvocationID()}); err != nil {
				return err
			}
			return o.Render(cmd.OutOrStdout(), n, networkTable([]*api.Network{n}))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.cidr, "cidr", "", fmt.Sprintf("IPv4 prefix of the network, /%d to /%d (required)", minNetworkBits, maxNetworkBits))
	fl.StringVar(&f.gateway, "gateway", "", "router address inside the prefix (default: its first host address)")
	fl.StringArrayVar(&f.dns, "dns", nil, "upstream DNS resolver (repeatable; default: the host's)")
	fl.BoolVar(&f.noNAT, "no-nat", false, "give instances no route to the outside")
	fl.StringVar(&f.vpc, "vpc", "", "make the network a subnet of this VPC (its prefix inside the VPC's)")
	cmd.RegisterFlagCompletionFunc("vpc", o.CompleteNames(api.VPCKind, true))
	return cmd
}

// parseIPv4Prefix parses the value of flag as an IPv4 prefix whose host
// bits are zero.
func parseIPv4Prefix(flag, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, command.FlagError(flag, "%q is not a prefix such as 10.20.0.0/24", s)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, command.FlagError(flag, "%s is not IPv4: only IPv4 prefixes are supported", s)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, command.FlagError(flag, "%s has host bits set: did you mean %s?", s, m)
	}
	return p, nil
}

// lastAddr returns the highest address of p (the broadcast address of an
// IPv4 prefix).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom4(b)
}
