package network

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/client"
)

// Rule directions and protocols (see api.SecurityGroupRule).
const (
	directionIngress = "ingress"
	directionEgress  = "egress"
)

var ruleProtocols = []string{"tcp", "udp", "icmp", "all"}

// NewSecurityGroupCommand returns the sg command and its subcommands.
func NewSecurityGroupCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "sg",
		Aliases: []string{"securitygroup", "securitygroups", "security-group"},
		Short:   "Manage security groups (stateful firewalls of instances)",
	}
	rule := &cobra.Command{
		Use:     "rule",
		Aliases: []string{"rules"},
		Short:   "Add and delete the rules of a security group",
	}
	rule.AddCommand(newRuleAddCommand(o), newRuleDeleteCommand(o))
	cmd.AddCommand(
		newSecurityGroupCreateCommand(o),
		command.NewList(o, api.SecurityGroupKind, "List security groups", securityGroupTable),
		newSecurityGroupGetCommand(o),
		command.NewDelete(o, api.SecurityGroupKind, "Delete security groups"),
		rule,
	)
	return cmd
}

// securityGroupTable writes groups as NAME RULES DESCRIPTION AGE.
func securityGroupTable(items []*api.SecurityGroup) func(*output.Table) {
	return func(t *output.Table) {
		now := time.Now()
		t.Row("NAME", "RULES", "DESCRIPTION", "AGE")
		for _, g := range items {
			t.Row(g.Metadata.Name, strconv.Itoa(len(g.Spec.Rules)), g.Spec.Description,
				output.Age(g.Metadata.CreationTimestamp, now))
		}
	}
}

// ruleTable writes rules as ID DIRECTION PROTOCOL PORTS REMOTE.
func ruleTable(rules []api.SecurityGroupRule) func(*output.Table) {
	return func(t *output.Table) {
		t.Row("ID", "DIRECTION", "PROTOCOL", "PORTS", "REMOTE")
		for _, r := range rules {
			t.Row(r.ID, r.Direction, r.Protocol, rulePorts(r), ruleRemote(r))
		}
	}
}

// rulePorts renders a rule's port range: "80", "8000-8080", "all" for
// tcp and udp without bounds, "" for protocols without ports.
func rulePorts(r api.SecurityGroupRule) string {
	switch {
	case r.PortMin == 0 && r.PortMax == 0:
		if r.Protocol == "tcp" || r.Protocol == "udp" {
			return "all"
		}
		return ""
	case r.PortMin == 1 && r.PortMax == maxPort:
		return "all"
	case r.PortMax == 0 || r.PortMin == r.PortMax:
		return strconv.Itoa(r.PortMin)
	default:
		return strconv.Itoa(r.PortMin) + "-" + strconv.Itoa(r.PortMax)
	}
}

// ruleRemote renders the other side of a rule: its CIDR, or "sg:NAME"
// for a source group.
func ruleRemote(r api.SecurityGroupRule) string {
	if r.SourceGroup != "" {
		return "sg:" + r.SourceGroup
	}
	return r.CIDR
}

// renderSecurityGroup prints one group; in table format its summary and
// then its rules.
func renderSecurityGroup(o *command.Options, w io.Writer, g *api.SecurityGroup) error {
	if o.Output != "table" {
		return o.Render(w, g, nil)
	}
	if err := o.Render(w, g, securityGroupTable([]*api.SecurityGroup{g})); err != nil {
		return err
	}
	if len(g.Spec.Rules) == 0 {
		_, err := fmt.Fprintln(w, "\nNo rules: all ingress is denied, all egress allowed.")
		return err
	}
	fmt.Fprintln(w)
	return o.Render(w, g, ruleTable(g.Spec.Rules))
}

func newSecurityGroupGetCommand(o *command.Options) *cobra.Command {
	return command.NewShow(o, api.SecurityGroupKind, "get", "Show a security group and its rules",
		func(cmd *cobra.Command, g *api.SecurityGroup) error {
			return renderSecurityGroup(o, cmd.OutOrStdout(), g)
		})
}

func newSecurityGroupCreateCommand(o *command.Options) *cobra.Command {
	var description string
	cmd := &cobra.Command{
		Use:   "create NAME [--description TEXT]",
		Short: "Create a security group without rules",
		Long: "Create a security group. A new group has no rules: it denies all ingress and allows all\n" +
			"egress. Add rules with `ouro sg rule add`.",
		Example: "  ouro sg create web --description 'public web servers'\n" +
			"  ouro sg rule add web --protocol tcp --port 443 --cidr 0.0.0.0/0",
		Args: command.ExactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if e := api.ValidateName("metadata.name", args[0]); e != nil {
				return command.ArgError("security group name %q: %s (%s)", args[0], e.Message, e.Hint)
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			g := &api.SecurityGroup{Kind: api.SecurityGroupKind.Name,
				Metadata: api.ObjectMeta{Name: args[0], Project: o.Project()},
				Spec:     api.SecurityGroupSpec{Description: description}}
			if _, err := c.Create(cmd.Context(), g, client.CreateOptions{IdempotencyKey: command.NewInvocationID()}); err != nil {
				return err
			}
			return o.Render(cmd.OutOrStdout(), g, securityGroupTable([]*api.SecurityGroup{g}))
		},
	}
	cmd.Flags().StringVar(&description, "description", "", "what the group is for")
	return cmd
}

// ruleFlags are the flags of sg rule add.
type ruleFlags struct {
	protocol, port, cidr, sourceGroup string
	egress                            bool
}

// rule checks the flags of sg rule add and returns the rule they ask for.
func (f *ruleFlags) rule() (api.SecurityGroupRule, error) {
	r := api.SecurityGroupRule{Direction: directionIngress, Protocol: strings.ToLower(f.protocol)}
	if f.egress {
		r.Direction = directionEgress
	}
	switch r.Protocol {
	case "tcp", "udp":
		if f.port == "" {
			r.PortMin, r.PortMax = 1, maxPort
		} else {
			lo, hi, err := parsePortRange("port", f.port)
			if err != nil {
				return r, err
			}
			r.PortMin, r.PortMax = lo, hi
		}
	case "icmp", "all":
		if f.port != "" {
			return r, command.FlagError("port", "protocol %s has no ports: leave --port out, or use --protocol tcp or udp", r.Protocol)
		}
	case "":
		return r, command.FlagError("protocol", "required: use one of %s", strings.Join(ruleProtocols, ", "))
	default:
		return r, command.FlagError("protocol", "unknown protocol %q: use one of %s", f.protocol, strings.Join(ruleProtocols, ", "))
	}
	switch {
	case f.cidr != "" && f.sourceGroup != "":
		return r, command.FlagError("source-group", "give either --cidr or --source-group, not both")
	case f.cidr != "":
		p, err := parseIPv4Prefix("cidr", f.cidr)
		if err != nil {
			return r, err
		}
		r.CIDR = p.String()
	case f.sourceGroup != "":
		if e := api.ValidateName("sourceGroup", f.sourceGroup); e != nil {
			return r, command.FlagError("source-group", "%s (%s)", e.Message, e.Hint)
		}
		r.SourceGroup = f.sourceGroup
	default:
		return r, command.FlagError("cidr", "required: give the remote side with --cidr PREFIX (0.0.0.0/0 for anywhere) or --source-group SG")
	}
	return r, nil
}

// maxPort is the highest TCP and UDP port.
const maxPort = 65535

// parsePortRange parses the value of flag, "PORT" or "MIN-MAX".
func parsePortRange(flag, s string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if lo, err = parsePort(flag, a); err != nil {
		return 0, 0, err
	}
	if !isRange {
		return lo, lo, nil
	}
	if hi, err = parsePort(flag, b); err != nil {
		return 0, 0, err
	}
	if lo > hi {
		return 0, 0, command.FlagError(flag, "range %s is backwards: write the lower port first, e.g. %d-%d", s, hi, lo)
	}
	return lo, hi, nil
}

func parsePort(flag, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, command.FlagError(flag, "%q is not a port number: use PORT or MIN-MAX, e.g. 80 or 8000-8080", s)
	}
	if n < 1 || n > maxPort {
		return 0, command.FlagError(flag, "port %d is out of range: use 1 to %d", n, maxPort)
	}
	return n, nil
}

// rulesPath returns the path of a security group's rules, or of one rule.
func rulesPath(project, group, id string) string {
	p := client.Path(api.SecurityGroupKind, project, group) + "/rules"
	if id != "" {
		p += "/" + url.PathEscape(id)
	}
	return p
}

func newRuleAddCommand(o *command.Options) *cobra.Command {
	f := &ruleFlags{}
	cmd := &cobra.Command{
		Use:   "add SG --protocol tcp|udp|icmp|all [--port PORT|MIN-MAX] (--cidr PREFIX | --source-group SG) [--egress]",
		Short: "Allow traffic to (or, with --egress, from) the members of a security group",
		Long: "Add a rule to a security group. Ingress rules allow traffic from --cidr or from members of\n" +
			"--source-group; egress rules (--egress) restrict outbound traffic to what they allow.\n" +
			"Without --port, tcp and udp rules cover every port.",
		Example: "  ouro sg rule add web --protocol tcp --port 443 --cidr 0.0.0.0/0\n" +
			"  ouro sg rule add db --protocol tcp --port 5432 --source-group web\n" +
			"  ouro sg rule add web --protocol icmp --cidr 10.0.0.0/8",
		Args:              command.ExactArgs("SG"),
		ValidArgsFunction: o.CompleteNames(api.SecurityGroupKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			rule, err := f.rule()
			if err != nil {
				return err
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			var g api.SecurityGroup
			if _, err := c.Do(cmd.Context(), http.MethodPost, rulesPath(o.Project(), args[0], ""), nil, rule, &g); err != nil {
				return fmt.Errorf("add rule to security group %s: %w", args[0], err)
			}
			return renderSecurityGroup(o, cmd.OutOrStdout(), &g)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.protocol, "protocol", "", "tcp, udp, icmp or all (required)")
	fl.StringVar(&f.port, "port", "", "destination port or range MIN-MAX, tcp and udp only (default: all)")
	fl.StringVar(&f.cidr, "cidr", "", "remote IPv4 prefix, e.g. 0.0.0.0/0 for anywhere")
	fl.StringVar(&f.sourceGroup, "source-group", "", "security group whose members are the remote side")
	fl.BoolVar(&f.egress, "egress", false, "restrict outbound traffic instead of allowing inbound")
	cmd.RegisterFlagCompletionFunc("protocol", cobra.FixedCompletions(ruleProtocols, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("source-group", o.CompleteNames(api.SecurityGroupKind, true))
	return cmd
}

func newRuleDeleteCommand(o *command.Options) *cobra.Command {
	return &cobra.Command{
		Use:               "delete SG RULE-ID",
		Aliases:           []string{"rm"},
		Short:             "Delete a rule of a security group (see the IDs with `ouro sg get`)",
		Args:              command.ExactArgs("SG", "RULE-ID"),
		ValidArgsFunction: completeRuleArgs(o),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			if _, err := c.Do(cmd.Context(), http.MethodDelete, rulesPath(o.Project(), args[0], args[1]), nil, nil, nil); err != nil {
				return fmt.Errorf("delete rule %s of security group %s: %w", args[1], args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "securitygroup/%s: rule %s deleted\n", args[0], args[1])
			return nil
		},
	}
}

// completeRuleArgs completes sg rule delete: the group, then its rule IDs.
func completeRuleArgs(o *command.Options) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		switch len(args) {
		case 0:
			return o.CompleteNames(api.SecurityGroupKind, false)(cmd, args, toComplete)
		case 1:
			ctx, cancel := command.CompletionContext(cmd)
			defer cancel()
			c, err := o.Client()
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
			}
			var g api.SecurityGroup
			if err := c.Get(ctx, api.SecurityGroupKind, o.Project(), args[0], &g); err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
			}
			var out []cobra.Completion
			for _, r := range g.Spec.Rules {
				if strings.HasPrefix(r.ID, toComplete) {
					out = append(out, cobra.CompletionWithDesc(r.ID, r.Direction+" "+r.Protocol+" "+rulePorts(r)+" "+ruleRemote(r)))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}
