// Package instance holds the ouro instance commands: create, list, get,
// start, stop, reboot and delete instances, read their logs and console
// output, run commands in them and attach to their consoles.
package instance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/cli/volume"
	"github.com/ouroboros-cloud/ouro/cli/wait"
	"github.com/ouroboros-cloud/ouro/client"
)

// maxCount bounds instance create --count.
const maxCount = 100

// NewCommand returns the instance command and its subcommands.
func NewCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "instance",
		Aliases: []string{"instances", "i"},
		Short:   "Manage instances (containers and virtual machines)",
	}
	cmd.AddCommand(
		newInstanceCreateCommand(o),
		newInstanceListCommand(o),
		newInstanceGetCommand(o),
		newInstanceActionCommand(o, "start", "Power an instance on"),
		newInstanceActionCommand(o, "stop", "Power an instance off"),
		newInstanceActionCommand(o, "reboot", "Reboot an instance"),
		newInstanceCrashCommand(o),
		newInstanceDeleteCommand(o),
		newInstanceLogsCommand(o),
		newInstanceExecCommand(o),
		newInstanceConsoleCommand(o),
		newInstanceConsoleLogCommand(o),
		newInstancePortForwardCommand(o),
		newInstanceSSHCommand(o),
	)
	return cmd
}

type createFlags struct {
	image, flavor string
	count         int
	labels, env   []string
	wait          bool
	timeout       time.Duration
	networks      Attachments
	key, userData string
	volumes       []string
}

func newInstanceCreateCommand(o *command.Options) *cobra.Command {
	f := &createFlags{}
	cmd := &cobra.Command{
		Use:   "create NAME --image IMAGE --flavor FLAVOR [flags] [-- COMMAND ARGS...]",
		Short: "Create instances",
		Long: "Create an instance, or with --count N the instances NAME-1 to NAME-N.\n" +
			"Arguments after -- replace the image's command.\n" +
			"Running the same command again within a day (after an interruption, say)\n" +
			"creates only the instances still missing.",
		Example: "  ouro instance create web --image nginx --flavor small --count 3 --wait\n" +
			"  ouro instance create job --image busybox --flavor tiny -- sh -c 'echo hi'\n" +
			"  ouro instance create app --image alpine --flavor small \\\n" +
			"      --network front --security-group web --network back --security-group db",
		Args: command.NameThenCommand,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInstanceCreate(cmd, o, f, args[0], args[1:])
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.image, "image", "", "image to start from (required)")
	fl.StringVar(&f.flavor, "flavor", "", "flavor giving the size (required)")
	fl.IntVar(&f.count, "count", 1, fmt.Sprintf("number of instances to create (1-%d)", maxCount))
	fl.StringArrayVarP(&f.labels, "label", "l", nil, "label KEY=VALUE (repeatable)")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "environment variable KEY=VALUE (repeatable)")
	fl.BoolVar(&f.wait, "wait", false, "wait until every instance is Running")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Minute, "how long --wait waits")
	fl.Var(f.networks.NetworkFlag(), "network", "network to attach an interface to (repeatable, first is primary; default: default)")
	fl.Var(f.networks.GroupFlag(), "security-group", "security group of the interface on the --network before it (repeatable; default: default)")
	fl.StringVar(&f.key, "key", "", "key pair whose public key the instance gets (see `ouro keypair`)")
	fl.StringVar(&f.userData, "user-data", "", "file of user-data for cloud-init, at most 16 KiB (- for standard input)")
	fl.StringArrayVar(&f.volumes, "volume", nil, "volume to attach: NAME, NAME:boot (a VM's root disk) or NAME:/path (a container mount; repeatable)")
	cmd.RegisterFlagCompletionFunc("volume", o.CompleteNames(api.VolumeKind, true))
	cmd.RegisterFlagCompletionFunc("key", o.CompleteNames(api.KeyPairKind, true))
	cmd.RegisterFlagCompletionFunc("image", o.CompleteNames(api.ImageKind, true))
	cmd.RegisterFlagCompletionFunc("network", o.CompleteNames(api.NetworkKind, true))
	cmd.RegisterFlagCompletionFunc("security-group", o.CompleteNames(api.SecurityGroupKind, true))
	cmd.RegisterFlagCompletionFunc("flavor", o.CompleteNames(api.FlavorKind, true))
	return cmd
}

// validate checks the flags of instance create and returns the labels.
func (f *createFlags) validate() (map[string]string, error) {
	if f.count < 1 || f.count > maxCount {
		return nil, command.FlagError("count", "%d is out of range: use 1 to %d", f.count, maxCount)
	}
	if f.image == "" {
		return nil, command.FlagError("image", "required: name the image to start from (see `ouro image list`)")
	}
	if f.flavor == "" {
		return nil, command.FlagError("flavor", "required: name the size (see `ouro flavor list`)")
	}
	if f.wait && f.timeout <= 0 {
		return nil, command.FlagError("timeout", "%s is not positive: use a duration such as 5m", f.timeout)
	}
	labels, err := command.ParseKeyValues("label", f.labels)
	if err != nil {
		return nil, err
	}
	if e := api.ValidateLabels("metadata.labels", labels); e != nil {
		return nil, command.FlagError("label", "%s (%s)", e.Message, e.Hint)
	}
	for _, kv := range f.env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, command.FlagError("env", "%q is not KEY=VALUE", kv)
		}
	}
	if err := f.networks.Validate(); err != nil {
		return nil, err
	}
	if f.key != "" {
		if e := api.ValidateName("key", f.key); e != nil {
			return nil, command.FlagError("key", "%s (%s)", e.Message, e.Hint)
		}
	}
	return labels, nil
}

// instanceNames returns NAME alone for one instance, else NAME-1..NAME-N.
func instanceNames(name string, count int) []string {
	if count == 1 {
		return []string{name}
	}
	names := make([]string, count)
	for i := range names {
		names[i] = name + "-" + strconv.Itoa(i+1)
	}
	return names
}

// createKey returns the idempotency key of an instance create: a hash of
// the project and the request body. Running the same command again (after
// an interruption, or to finish an interrupted --count) sends the same
// keys, so the server answers the creates that were made with the
// instances made then and makes only the missing ones; a different
// request for an existing name gets a different key and fails with
// "already exists". The server remembers a key for a day.
func createKey(project string, inst *api.Instance) string {
	b, _ := json.Marshal(inst) // API types always marshal
	h := sha256.New()
	h.Write([]byte(project + "\x00"))
	h.Write(b)
	return "ouro-cli-" + hex.EncodeToString(h.Sum(nil))
}

// createInstance creates inst with the key of its content (createKey).
// When the instance that key made once was deleted since, the server
// answers not found; inst is then a new request and is sent again with a
// fresh key.
func createInstance(ctx context.Context, c *client.Client, project string, inst *api.Instance) error {
	_, err := c.Create(ctx, inst, client.CreateOptions{IdempotencyKey: createKey(project, inst)})
	if api.IsNotFound(err) {
		_, err = c.Create(ctx, inst, client.CreateOptions{IdempotencyKey: command.NewInvocationID()})
	}
	return err
}

func runInstanceCreate(cmd *cobra.Command, o *command.Options, f *createFlags, name string, argv []string) error {
	labels, err := f.validate()
	if err != nil {
		return err
	}
	names := instanceNames(name, f.count)
	for _, n := range names {
		if e := api.ValidateName("metadata.name", n); e != nil {
			return command.ArgError("instance name %q: %s (%s)", n, e.Message, e.Hint)
		}
	}
	userData, err := f.readUserData(cmd)
	if err != nil {
		return err
	}
	var volumes []api.InstanceVolume
	for _, v := range f.volumes {
		name, boot, path, err := volume.ParseInstanceVolume(v)
		if err != nil {
			return command.FlagError("volume", "%v", err)
		}
		volumes = append(volumes, api.InstanceVolume{Name: name, Boot: boot, Path: path})
	}
	if len(volumes) > 0 && len(names) > 1 {
		return command.FlagError("volume", "a volume is attached to one instance: use --count 1")
	}
	c, err := o.Client()
	if err != nil {
		return err
	}
	project := o.Project()
	ctx := cmd.Context()
	created := make([]*api.Instance, 0, len(names))
	for _, n := range names {
		inst := &api.Instance{
			Kind:     api.InstanceKind.Name,
			Metadata: api.ObjectMeta{Name: n, Project: project, Labels: labels},
			Spec: api.InstanceSpec{Image: f.image, Flavor: f.flavor, Command: argv, Env: f.env,
				Networks: f.networks.List, KeyName: f.key, UserData: userData, Volumes: volumes},
		}
		if err := createInstance(ctx, c, project, inst); err != nil {
			if len(created) > 0 {
				renderInstances(cmd, o, created)
			}
			if len(names) == 1 {
				return err
			}
			return fmt.Errorf("create instance %s: %w", n, err)
		}
		created = append(created, inst)
	}
	if !f.wait {
		return renderInstances(cmd, o, created)
	}
	if o.Output == "table" {
		if err := renderInstances(cmd, o, created); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	progress := cmd.OutOrStdout()
	if o.Output != "table" {
		progress = cmd.ErrOrStderr()
	}
	last, err := wait.Running(ctx, c, project, names, func(inst *api.Instance) {
		fmt.Fprintf(progress, "instance/%s is Running on %s\n", inst.Metadata.Name, orDash(inst.Status.Host))
	})
	if err != nil {
		return err
	}
	if o.Output == "table" {
		return nil
	}
	final := make([]*api.Instance, 0, len(names))
	for _, n := range names {
		final = append(final, last[n])
	}
	return renderInstances(cmd, o, final)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// renderInstances prints one instance as an object and several as a list.
func renderInstances(cmd *cobra.Command, o *command.Options, items []*api.Instance) error {
	if len(items) == 1 {
		return o.Render(cmd.OutOrStdout(), items[0], instanceTable(items, false))
	}
	return output.RenderList(cmd.OutOrStdout(), cmd.ErrOrStderr(), o.Output, "instances", items, instanceTable(items, false))
}

// instanceTable writes instances as NAME PHASE HOST IMAGE FLAVOR IP AGE,
// with PROJECT in front for lists across projects and REASON at the end
// when any instance has one.
func instanceTable(items []*api.Instance, allProjects bool) func(*output.Table) {
	return func(t *output.Table) {
		now := time.Now()
		withReason := false
		for _, it := range items {
			if it.Status.Reason != "" {
				withReason = true
			}
		}
		head := []string{"NAME", "PHASE", "HOST", "IMAGE", "FLAVOR", "IP", "AGE"}
		if allProjects {
			head = append([]string{"PROJECT"}, head...)
		}
		if withReason {
			head = append(head, "REASON")
		}
		t.Row(head...)
		for _, it := range items {
			ip := ""
			if len(it.Status.Interfaces) > 0 {
				ip = it.Status.Interfaces[0].IP
			}
			row := []string{it.Metadata.Name, string(it.Status.Phase), it.Status.Host, it.Spec.Image,
				it.Spec.Flavor, ip, output.Age(it.Metadata.CreationTimestamp, now)}
			if allProjects {
				row = append([]string{it.Metadata.Project}, row...)
			}
			if withReason {
				row = append(row, it.Status.Reason)
			}
			t.Row(row...)
		}
	}
}

func newInstanceListCommand(o *command.Options) *cobra.Command {
	var selector string
	var all bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List instances",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := api.ParseSelector(selector); err != nil {
				return command.FlagError("selector", "%s", command.FormatError(err))
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			project := ""
			if !all {
				project = o.Project()
			}
			items, _, err := client.ListAll[api.Instance](cmd.Context(), c, api.InstanceKind, project,
				client.ListOptions{LabelSelector: selector, View: command.TableView(o, api.InstanceKind)})
			if err != nil {
				return err
			}
			ptrs := make([]*api.Instance, len(items))
			for i := range items {
				ptrs[i] = &items[i]
			}
			return output.RenderList(cmd.OutOrStdout(), cmd.ErrOrStderr(), o.Output, "instances", ptrs, instanceTable(ptrs, all))
		},
	}
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "label selector, e.g. app=web,tier!=db")
	cmd.Flags().BoolVarP(&all, "all-projects", "A", false, "list instances of every project (cluster admins)")
	return cmd
}

func newInstanceGetCommand(o *command.Options) *cobra.Command {
	return command.NewShow(o, api.InstanceKind, "get", "Show an instance", func(cmd *cobra.Command, inst *api.Instance) error {
		return renderInstances(cmd, o, []*api.Instance{inst})
	})
}

func newInstanceActionCommand(o *command.Options, action, short string) *cobra.Command {
	return &cobra.Command{
		Use:               action + " NAME",
		Short:             short,
		Args:              command.ExactArgs("NAME"),
		ValidArgsFunction: o.CompleteNames(api.InstanceKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			var inst api.Instance
			if err := c.Action(cmd.Context(), o.Project(), args[0], action, &inst); err != nil {
				return err
			}
			if o.Output != "table" {
				return renderInstances(cmd, o, []*api.Instance{&inst})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "instance/%s: %s requested\n", args[0], action)
			return nil
		},
	}
}

func newInstanceCrashCommand(o *command.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "crash NAME",
		Short: "Kill an instance's main process, to watch it restart (cluster admins; a teaching action)",
		Long: "Have the instance's agent kill its main process with SIGKILL (a container's init, a VM's\n" +
			"QEMU), as a crash would. The agent then restarts it by its restart policy, with back-off.",
		Args:              command.ExactArgs("NAME"),
		ValidArgsFunction: o.CompleteNames(api.InstanceKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			if err := c.Crash(cmd.Context(), o.Project(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "instance/%s: main process killed\n", args[0])
			return nil
		},
	}
}

func newInstanceDeleteCommand(o *command.Options) *cobra.Command {
	return command.NewDeleteWait(o, api.InstanceKind, "Delete instances", ": deletion requested",
		"wait until the instances are gone", func(ctx context.Context, c *client.Client, project string, names []string, out io.Writer) error {
			return wait.Gone(ctx, c, project, names, func(n string) { fmt.Fprintf(out, "instance/%s deleted\n", n) })
		})
}

// maxUserData is the server's bound on spec.userData.
const maxUserData = 16 << 10

// readUserData reads the --user-data file ("" when none was given).
func (f *createFlags) readUserData(cmd *cobra.Command) (string, error) {
	if f.userData == "" {
		return "", nil
	}
	data, err := command.ReadInputFile(cmd, f.userData, maxUserData)
	if err != nil {
		return "", command.FlagError("user-data", "%v", err)
	}
	return string(data), nil
}
