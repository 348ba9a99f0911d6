// Package group holds the ouro group commands: create, scale, update and
// delete instance groups, list their members, and follow, pause, resume
// and undo their rollouts.
package group

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/instance"
	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/cli/wait"
	"github.com/ouroboros-cloud/ouro/client"
)

// NewCommand returns the group command and its subcommands.
func NewCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "group",
		Aliases: []string{"groups", "instancegroup", "ig"},
		Short:   "Manage instance groups: a count of like instances, kept running, rolled out and autoscaled",
	}
	cmd.AddCommand(
		newGroupCreateCommand(o),
		command.NewList[api.InstanceGroup](o, api.InstanceGroupKind, "List instance groups", groupTable),
		command.NewGet[api.InstanceGroup](o, api.InstanceGroupKind, "Show an instance group", groupTable),
		newGroupScaleCommand(o),
		newGroupUpdateCommand(o),
		newGroupDeleteCommand(o),
		newGroupMembersCommand(o),
		newRolloutCommand(o),
	)
	return cmd
}

// groupTable writes groups as NAME DESIRED RUNNING HEALTHY UPDATED
// REVISION ROLLOUT.
func groupTable(items []*api.InstanceGroup) func(*output.Table) {
	return func(t *output.Table) {
		t.Row("NAME", "DESIRED", "RUNNING", "HEALTHY", "UPDATED", "REVISION", "ROLLOUT")
		for _, g := range items {
			st := g.Status
			rollout := st.Rollout
			if st.RolloutReason != "" {
				rollout += " (" + st.RolloutReason + ")"
			}
			t.Row(g.Metadata.Name, strconv.Itoa(desiredOf(g)), strconv.Itoa(st.Running), strconv.Itoa(st.Healthy),
				strconv.Itoa(st.Updated), strconv.FormatInt(st.Revision, 10), rollout)
		}
	}
}

// desiredOf is the count a group works toward: the controller's once it
// has seen the group, else the spec's.
func desiredOf(g *api.InstanceGroup) int {
	if g.Status.ObservedGeneration == 0 {
		return g.Spec.Count
	}
	return g.Status.Desired
}

// templateFlags are the flags of create and update that shape members.
type templateFlags struct {
	image, flavor, key, userData, health, restartPolicy string
	env, labels                                         []string
	networks                                            instance.Attachments
	minCount, maxCount, targetCPU                       int
}

func (f *templateFlags) register(fl *pflag.FlagSet, creating bool) {
	fl.StringVar(&f.image, "image", "", "image members start from")
	fl.StringVar(&f.flavor, "flavor", "", "flavor giving the members' size")
	fl.StringVar(&f.userData, "user-data", "", "file with cloud-init user-data for the members (- reads stdin)")
	fl.StringVar(&f.health, "health", "", "health check: running, tcp:PORT, http:PORT[/PATH] (e.g. http:8080/healthz) or lb:LOADBALANCER (the load balancer's checks)")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "environment variable KEY=VALUE (repeatable; replaces the template's)")
	fl.IntVar(&f.minCount, "min", 0, "autoscaling: fewest members")
	fl.IntVar(&f.maxCount, "max", 0, "autoscaling: most members")
	fl.IntVar(&f.targetCPU, "target-cpu", 0, "autoscaling: mean CPU use to aim at, in percent (1-100)")
	if creating {
		fl.StringVar(&f.key, "key", "", "key pair whose public key members get")
		fl.StringVar(&f.restartPolicy, "restart-policy", "", "what members do when their process ends: Always (default), OnFailure or Never")
		fl.StringArrayVarP(&f.labels, "label", "l", nil, "label KEY=VALUE of the members (repeatable)")
		fl.Var(f.networks.NetworkFlag(), "network", "network to attach members to (repeatable, first is primary; default: default)")
		fl.Var(f.networks.GroupFlag(), "security-group", "security group of the interface on the --network before it (repeatable)")
	}
}

// apply writes the flags that were given into g, reading files named by
// flags with in as stdin.
func (f *templateFlags) apply(fl *pflag.FlagSet, in io.Reader, g *api.InstanceGroup) error {
	t := &g.Spec.Template
	if fl.Changed("image") {
		t.Image = f.image
	}
	if fl.Changed("flavor") {
		t.Flavor = f.flavor
	}
	if fl.Changed("key") {
		t.KeyName = f.key
	}
	if fl.Changed("user-data") {
		data, err := readFileArg(in, f.userData)
		if err != nil {
			return command.FlagError("user-data", "%v", err)
		}
		t.UserData = string(data)
	}
	if fl.Changed("env") {
		for _, kv := range f.env {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				return command.FlagError("env", "%q is not KEY=VALUE", kv)
			}
		}
		t.Env = f.env
	}
	if fl.Changed("label") {
		labels, err := command.ParseKeyValues("label", f.labels)
		if err != nil {
			return err
		}
		if e := api.ValidateLabels("metadata.labels", labels); e != nil {
			return command.FlagError("label", "%s (%s)", e.Message, e.Hint)
		}
		t.Labels = labels
	}
	if fl.Changed("network") || fl.Changed("security-group") {
		if err := f.networks.Validate(); err != nil {
			return err
		}
		t.Networks = f.networks.List
	}
	if fl.Changed("restart-policy") {
		p, err := parseRestartPolicy(f.restartPolicy)
		if err != nil {
			return err
		}
		t.RestartPolicy = p
	}
	if fl.Changed("health") {
		h, err := parseHealth(f.health)
		if err != nil {
			return err
		}
		g.Spec.HealthCheck = h
	}
	return f.applyAutoscaling(fl, g)
}

// applyAutoscaling sets spec.autoscaling from --min, --max and
// --target-cpu; a new autoscaling needs --max and --target-cpu.
func (f *templateFlags) applyAutoscaling(fl *pflag.FlagSet, g *api.InstanceGroup) error {
	if !fl.Changed("min") && !fl.Changed("max") && !fl.Changed("target-cpu") {
		return nil
	}
	a := g.Spec.Autoscaling
	if a == nil {
		if !fl.Changed("max") || !fl.Changed("target-cpu") {
			return command.FlagError("max", "autoscaling needs --max and --target-cpu (and optionally --min, default 1)")
		}
		a = &api.Autoscaling{Min: 1}
	}
	if fl.Changed("min") {
		a.Min = f.minCount
	}
	if fl.Changed("max") {
		a.Max = f.maxCount
	}
	if fl.Changed("target-cpu") {
		a.TargetCPUPercent = f.targetCPU
	}
	switch {
	case a.Min < 0:
		return command.FlagError("min", "%d is negative", a.Min)
	case a.Max < 1 || a.Max > api.MaxGroupCount:
		return command.FlagError("max", "%d is out of range: use 1 to %d", a.Max, api.MaxGroupCount)
	case a.Min > a.Max:
		return command.FlagError("min", "min %d is above max %d", a.Min, a.Max)
	case a.TargetCPUPercent < 1 || a.TargetCPUPercent > 100:
		return command.FlagError("target-cpu", "%d is out of range: use 1 to 100", a.TargetCPUPercent)
	}
	g.Spec.Autoscaling = a
	return nil
}

// healthForms lists what --health accepts.
const healthForms = "use running, tcp:PORT or http:PORT[/PATH], or lb:LOADBALANCER to trust a load balancer's checks, e.g. tcp:22, http:8080/healthz or lb:web"

// parseHealth parses --health.
func parseHealth(s string) (api.HealthCheck, error) {
	kind, rest, hasRest := strings.Cut(s, ":")
	switch {
	case s == api.HealthRunning:
		return api.HealthCheck{Kind: api.HealthRunning}, nil
	case kind == "lb" && hasRest:
		if e := api.ValidateName("health", rest); e != nil {
			return api.HealthCheck{}, command.FlagError("health", "%q: load balancer name %q is not valid (%s)", s, rest, healthForms)
		}
		return api.HealthCheck{Kind: api.HealthLoadBalancer, LoadBalancer: rest}, nil
	case (kind == api.HealthTCP || kind == api.HealthHTTP) && hasRest:
		port, path := rest, ""
		if kind == api.HealthHTTP {
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				port, path = rest[:i], rest[i:]
			} else {
				path = "/"
			}
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return api.HealthCheck{}, command.FlagError("health", "%q: port %q is not a number from 1 to 65535 (%s)", s, port, healthForms)
		}
		return api.HealthCheck{Kind: kind, Port: n, Path: path}, nil
	}
	return api.HealthCheck{}, command.FlagError("health", "%q is not a health check: %s", s, healthForms)
}

func parseRestartPolicy(s string) (api.RestartPolicy, error) {
	for _, p := range []api.RestartPolicy{api.RestartAlways, api.RestartOnFailure, api.RestartNever} {
		if strings.EqualFold(s, string(p)) {
			return p, nil
		}
	}
	return "", command.FlagError("restart-policy", "%q is not a restart policy: use Always, OnFailure or Never", s)
}

// readFileArg reads a file named on the command line; "-" reads in.
func readFileArg(in io.Reader, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(io.LimitReader(in, 1<<20))
	}
	return os.ReadFile(path)
}

type groupCreateFlags struct {
	templateFlags
	count                           int
	stateful, wait                  bool
	antiAffinity, hostSelector      string
	maxSurge, maxUnavailable        int
	progressDeadline, stabilization time.Duration
	timeout                         time.Duration
}

func newGroupCreateCommand(o *command.Options) *cobra.Command {
	f := &groupCreateFlags{}
	cmd := &cobra.Command{
		Use:   "create NAME --image IMAGE --flavor FLAVOR --count N [flags] [-- COMMAND ARGS...]",
		Short: "Create an instance group",
		Long: "Create a group whose members NAME-0, NAME-1, … run the same template. The group keeps --count\n" +
			"members running, replaces those lost with their host, rolls template changes out and, with\n" +
			"--min/--max/--target-cpu, scales on CPU use. Arguments after -- replace the image's command.",
		Example: "  ouro group create web --image nginx --flavor small --count 3 --health http:80/\n" +
			"  ouro group create worker --image busybox --flavor tiny --count 2 --min 1 --max 10 --target-cpu 60 -- sleep 3600\n" +
			"  ouro group create db --image postgres --flavor medium --count 3 --stateful --anti-affinity hard",
		Args: command.NameThenCommand,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGroupCreate(cmd, o, f, args[0], args[1:])
		},
	}
	fl := cmd.Flags()
	f.register(fl, true)
	fl.IntVar(&f.count, "count", 1, fmt.Sprintf("members to keep running (0-%d; with autoscaling, where it starts)", api.MaxGroupCount))
	fl.BoolVar(&f.stateful, "stateful", false, "members keep their names and addresses when replaced")
	fl.StringVar(&f.antiAffinity, "anti-affinity", "", "spread members over hosts: soft (default: when possible) or hard (never two on a host)")
	fl.StringVar(&f.hostSelector, "host-selector", "", "place members on hosts whose labels match, e.g. zone=a,disk!=hdd")
	fl.IntVar(&f.maxSurge, "max-surge", api.DefaultMaxSurge, "rollouts: members allowed above the count")
	fl.IntVar(&f.maxUnavailable, "max-unavailable", api.DefaultMaxUnavailable, "rollouts: members allowed to be unavailable")
	fl.DurationVar(&f.progressDeadline, "progress-deadline", api.DefaultProgressDeadlineSeconds*time.Second, "rollouts: pause when no member became available for this long")
	fl.DurationVar(&f.stabilization, "scale-in-stabilization", api.DefaultScaleInStabilizationSeconds*time.Second, "autoscaling: scale in only to the highest recommendation of this window")
	fl.BoolVar(&f.wait, "wait", false, "wait until the first rollout is complete")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Minute, "how long --wait waits")
	for flag, kind := range map[string]*api.Kind{"image": api.ImageKind, "flavor": api.FlavorKind, "network": api.NetworkKind,
		"security-group": api.SecurityGroupKind, "key": api.KeyPairKind} {
		cmd.RegisterFlagCompletionFunc(flag, o.CompleteNames(kind, true))
	}
	cmd.RegisterFlagCompletionFunc("anti-affinity", cobra.FixedCompletions([]string{"hard", "soft"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runGroupCreate(cmd *cobra.Command, o *command.Options, f *groupCreateFlags, name string, argv []string) error {
	fl := cmd.Flags()
	switch {
	case f.image == "":
		return command.FlagError("image", "required: name the image members start from (see `ouro image list`)")
	case f.flavor == "":
		return command.FlagError("flavor", "required: name the members' size (see `ouro flavor list`)")
	case f.count < 0 || f.count > api.MaxGroupCount:
		return command.FlagError("count", "%d is out of range: use 0 to %d", f.count, api.MaxGroupCount)
	case f.antiAffinity != "" && f.antiAffinity != api.AntiAffinityHard && f.antiAffinity != api.AntiAffinitySoft:
		return command.FlagError("anti-affinity", "%q: use hard or soft", f.antiAffinity)
	case f.maxSurge < 0:
		return command.FlagError("max-surge", "%d is negative", f.maxSurge)
	case f.maxUnavailable < 0:
		return command.FlagError("max-unavailable", "%d is negative", f.maxUnavailable)
	case f.maxSurge == 0 && f.maxUnavailable == 0:
		return command.FlagError("max-surge", "--max-surge and --max-unavailable are both 0: a rollout could never replace a member")
	case f.progressDeadline < time.Second:
		return command.FlagError("progress-deadline", "%s is too short: use at least 1s", f.progressDeadline)
	case f.stabilization < 0:
		return command.FlagError("scale-in-stabilization", "%s is negative", f.stabilization)
	case f.wait && f.timeout <= 0:
		return command.FlagError("timeout", "%s is not positive: use a duration such as 5m", f.timeout)
	}
	if _, err := api.ParseSelector(f.hostSelector); err != nil {
		return command.FlagError("host-selector", "%s", command.FormatError(err))
	}
	if e := api.ValidateName("metadata.name", name); e != nil {
		return command.ArgError("group name %q: %s (%s)", name, e.Message, e.Hint)
	}
	g := &api.InstanceGroup{
		Kind:     api.InstanceGroupKind.Name,
		Metadata: api.ObjectMeta{Name: name, Project: o.Project()},
		Spec: api.InstanceGroupSpec{
			Count:     f.count,
			Stateful:  f.stateful,
			Placement: api.Placement{AntiAffinity: f.antiAffinity, HostSelector: f.hostSelector},
			Template:  api.InstanceTemplate{Command: argv},
		},
	}
	if fl.Changed("max-surge") {
		g.Spec.Update.MaxSurge = &f.maxSurge
	}
	if fl.Changed("max-unavailable") {
		g.Spec.Update.MaxUnavailable = &f.maxUnavailable
	}
	if fl.Changed("progress-deadline") {
		g.Spec.Update.ProgressDeadlineSeconds = int((f.progressDeadline + time.Second - 1) / time.Second)
	}
	if err := f.apply(fl, cmd.InOrStdin(), g); err != nil {
		return err
	}
	if a := g.Spec.Autoscaling; a != nil && fl.Changed("scale-in-stabilization") {
		a.ScaleInStabilizationSeconds = int((f.stabilization + time.Second - 1) / time.Second)
	}
	c, err := o.Client()
	if err != nil {
		return err
	}
	if _, err := c.Create(cmd.Context(), g, client.CreateOptions{IdempotencyKey: command.NewInvocationID()}); err != nil {
		return err
	}
	if !f.wait {
		return o.Render(cmd.OutOrStdout(), g, groupTable([]*api.InstanceGroup{g}))
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	if err := wait.Rollout(ctx, c, o.Project(), name, groupProgress(cmd, o)); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("group %s: the first rollout did not finish within %s", name, f.timeout)
		}
		return err
	}
	if o.Output == "table" {
		return nil
	}
	if err := c.Get(cmd.Context(), api.InstanceGroupKind, o.Project(), name, g); err != nil {
		return err
	}
	return o.Render(cmd.OutOrStdout(), g, nil)
}

func newGroupScaleCommand(o *command.Options) *cobra.Command {
	return &cobra.Command{
		Use:               "scale NAME COUNT",
		Short:             "Change the number of members of a group",
		Args:              command.ExactArgs("NAME", "COUNT"),
		ValidArgsFunction: o.CompleteNames(api.InstanceGroupKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 0 || n > api.MaxGroupCount {
				return command.ArgError("COUNT %q is not a number from 0 to %d", args[1], api.MaxGroupCount)
			}
			g, err := updateGroup(cmd.Context(), o, args[0], func(g *api.InstanceGroup) error {
				if a := g.Spec.Autoscaling; a != nil {
					return fmt.Errorf("group %s is autoscaled between %d and %d members: change the bounds with "+
						"`ouro group update %s --min N --max N`", args[0], a.Min, a.Max, args[0])
				}
				g.Spec.Count = n
				return nil
			})
			if err != nil {
				return err
			}
			if o.Output != "table" {
				return o.Render(cmd.OutOrStdout(), g, nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "group/%s scaled to %d\n", args[0], n)
			return nil
		},
	}
}

func newGroupUpdateCommand(o *command.Options) *cobra.Command {
	f := &templateFlags{}
	cmd := &cobra.Command{
		Use:   "update NAME [--image IMAGE] [--flavor FLAVOR] [--user-data FILE] [flags] [-- COMMAND ARGS...]",
		Short: "Change a group's template (a rollout) or its health check or autoscaling",
		Long: "Change what a group's members are made from. A change of image, flavor, user-data, environment\n" +
			"or command (after --) is a new revision, rolled out a few members at a time\n" +
			"(see `ouro group rollout status`). --health and --min/--max/--target-cpu apply without a rollout.",
		Example:           "  ouro group update web --image nginx-1.27\n  ouro group update worker -- sleep 7200",
		Args:              command.NameThenCommand,
		ValidArgsFunction: o.CompleteNames(api.InstanceGroupKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			argv := args[1:]
			changed := cmd.ArgsLenAtDash() >= 0
			for _, fl := range []string{"image", "flavor", "user-data", "health", "env", "min", "max", "target-cpu"} {
				changed = changed || cmd.Flags().Changed(fl)
			}
			if !changed {
				return command.ArgError("%s: say what to change (--image, --flavor, --user-data, --env, --health, --min/--max/--target-cpu or -- COMMAND)", cmd.CommandPath())
			}
			g, err := updateGroup(cmd.Context(), o, args[0], func(g *api.InstanceGroup) error {
				if cmd.ArgsLenAtDash() >= 0 {
					g.Spec.Template.Command = argv
				}
				return f.apply(cmd.Flags(), cmd.InOrStdin(), g)
			})
			if err != nil {
				return err
			}
			if o.Output != "table" {
				return o.Render(cmd.OutOrStdout(), g, nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "group/%s updated (generation %d)\n", args[0], g.Metadata.Generation)
			if g.Spec.Paused {
				fmt.Fprintf(cmd.OutOrStdout(), "its rollouts are paused: run `ouro group rollout resume %s`\n", args[0])
			}
			return nil
		},
	}
	f.register(cmd.Flags(), false)
	cmd.RegisterFlagCompletionFunc("image", o.CompleteNames(api.ImageKind, true))
	cmd.RegisterFlagCompletionFunc("flavor", o.CompleteNames(api.FlavorKind, true))
	return cmd
}

// updateGroup reads a group, lets fn change it and writes it back, again
// from a fresh read while the write conflicts.
func updateGroup(ctx context.Context, o *command.Options, name string, fn func(*api.InstanceGroup) error) (*api.InstanceGroup, error) {
	c, err := o.Client()
	if err != nil {
		return nil, err
	}
	for range 10 {
		var g api.InstanceGroup
		if err := c.Get(ctx, api.InstanceGroupKind, o.Project(), name, &g); err != nil {
			return nil, err
		}
		if err := fn(&g); err != nil {
			return nil, err
		}
		err := c.Update(ctx, &g)
		var ae *api.Error
		if errors.As(err, &ae) && ae.Code == api.CodeConflict {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &g, nil
	}
	return nil, fmt.Errorf("group %s changes too fast: try again", name)
}

func newGroupDeleteCommand(o *command.Options) *cobra.Command {
	return command.NewDeleteWait(o, api.InstanceGroupKind, "Delete instance groups and their members",
		" deleted (its members are being deleted)", "wait until every member of the groups is gone",
		func(ctx context.Context, c *client.Client, project string, names []string, out io.Writer) error {
			return wait.MembersGone(ctx, c, project, names, func(n string) { fmt.Fprintf(out, "instancegroup/%s: every member is gone\n", n) })
		})
}

func newGroupMembersCommand(o *command.Options) *cobra.Command {
	return &cobra.Command{
		Use:               "members NAME",
		Short:             "List the instances of a group with their host, phase, health and revision",
		Args:              command.ExactArgs("NAME"),
		ValidArgsFunction: o.CompleteNames(api.InstanceGroupKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			if e := api.ValidateName("NAME", args[0]); e != nil {
				return command.ArgError("group name %q: %s", args[0], e.Message)
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			items, _, err := client.ListAll[api.Instance](cmd.Context(), c, api.InstanceKind, o.Project(),
				client.ListOptions{LabelSelector: api.LabelGroup + "=" + args[0]})
			if err != nil {
				return err
			}
			ptrs := make([]*api.Instance, len(items))
			for i := range items {
				ptrs[i] = &items[i]
			}
			return output.RenderList(cmd.OutOrStdout(), cmd.ErrOrStderr(), o.Output, "instances", ptrs, memberTable(ptrs))
		},
	}
}

// memberTable writes group members as NAME PHASE HOST HEALTH REVISION IP
// AGE.
func memberTable(items []*api.Instance) func(*output.Table) {
	return func(t *output.Table) {
		now := time.Now()
		t.Row("NAME", "PHASE", "HOST", "HEALTH", "REVISION", "IP", "AGE")
		for _, in := range items {
			health := ""
			if c := api.FindCondition(in.Status.Conditions, api.ConditionHealthy); c != nil {
				health = "unhealthy"
				if c.Status {
					health = "healthy"
				} else if c.Reason != "" {
					health += " (" + c.Reason + ")"
				}
			}
			phase := string(in.Status.Phase)
			if in.Status.Reason != "" {
				phase += " (" + in.Status.Reason + ")"
			}
			ip := ""
			if len(in.Status.Interfaces) > 0 {
				ip = in.Status.Interfaces[0].IP
			}
			t.Row(in.Metadata.Name, phase, in.Status.Host, health, in.Metadata.Labels[api.LabelRevision], ip,
				output.Age(in.Metadata.CreationTimestamp, now))
		}
	}
}
