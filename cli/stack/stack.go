// Package stack holds the ouro stack commands: plan and apply stack files,
// show stacks, their outputs and drift, and delete them with what they own;
// and the top-level "ouro apply -f FILE".
package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"reflect"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/cli/wait"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/stack"
)

// ExitChanges is the exit code of "stack plan" when applying would change
// something (like terraform plan -detailed-exitcode).
const ExitChanges = 2

// NewCommand returns the stack command and its subcommands.
func NewCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "stack",
		Aliases: []string{"stacks"},
		Short:   "Manage stacks: resources described in files, kept applied by the cloud",
	}
	cmd.AddCommand(
		newPlanCommand(o),
		newApplyCommand(o, false),
		command.NewList[api.Stack](o, api.StackKind, "List stacks", stackTable),
		command.NewGet[api.Stack](o, api.StackKind, "Show a stack", stackTable),
		newOutputsCommand(o),
		newDriftCommand(o),
		command.NewDeleteWait(o, api.StackKind, "Delete stacks and everything they own", " deleting",
			"wait until the stacks and what they own are gone", waitDeleted),
	)
	return cmd
}

// NewApplyCommand returns the top-level "apply -f FILE..." command, which
// takes the stack's name from the files' Stack header.
func NewApplyCommand(o *command.Options) *cobra.Command { return newApplyCommand(o, true) }

// stackTable writes stacks as NAME PHASE RESOURCES GENERATION MESSAGE.
func stackTable(items []*api.Stack) func(*output.Table) {
	return func(t *output.Table) {
		t.Row("NAME", "PHASE", "RESOURCES", "DRIFT", "MESSAGE")
		for _, s := range items {
			phase := s.Status.Phase
			if phase == "" {
				phase = "-"
			}
			t.Row(s.Metadata.Name, phase, fmt.Sprint(len(s.Spec.Resources)), fmt.Sprint(len(s.Status.Drift)), s.Status.Message)
		}
	}
}

// files are the flags that name and render stack files.
type files struct {
	paths, values, sets []string
}

func (f *files) add(cmd *cobra.Command) {
	cmd.Flags().StringArrayVarP(&f.paths, "file", "f", nil, "stack file or directory (repeatable)")
	cmd.Flags().StringArrayVar(&f.values, "values", nil, "YAML file of parameter values (repeatable; later files win)")
	cmd.Flags().StringArrayVar(&f.sets, "set", nil, "parameter value KEY=VALUE (repeatable; wins over --values)")
}

// load renders the files.
func (f *files) load() (string, api.StackSpec, error) {
	if len(f.paths) == 0 {
		return "", api.StackSpec{}, command.FlagError("file", "give the stack's files with -f FILE")
	}
	sets, err := command.ParseKeyValues("set", f.sets)
	if err != nil {
		return "", api.StackSpec{}, err
	}
	return stack.Load(f.paths, f.values, sets)
}

// live reads live objects as the caller: each kind is listed once (a
// plan of hundreds of resources takes a request per kind, not per
// resource), or, when the caller may not list it, read object by object.
type live struct {
	ctx     context.Context
	c       *client.Client
	project string
	// listed holds the objects of each kind listed, by name.
	listed map[string]map[string]json.RawMessage
	// single holds the objects read one by one (nil: does not exist).
	single map[string]json.RawMessage
}

func newLive(ctx context.Context, c *client.Client, project string) *live {
	return &live{ctx: ctx, c: c, project: project, listed: map[string]map[string]json.RawMessage{}, single: map[string]json.RawMessage{}}
}

// get returns the JSON of kind/name, or false when it does not exist (or
// cannot be read).
func (l *live) get(kind, name string) (json.RawMessage, bool) {
	k := stack.KindOf(kind)
	if k == nil {
		return nil, false
	}
	project := ""
	if k.Namespaced {
		project = l.project
	}
	objs, ok := l.listed[kind]
	if !ok {
		objs = l.list(k, project)
		l.listed[kind] = objs
	}
	if objs != nil {
		raw, ok := objs[name]
		return raw, ok
	}
	id := kind + "/" + name
	if raw, ok := l.single[id]; ok {
		return raw, raw != nil
	}
	var raw json.RawMessage
	if _, err := l.c.Do(l.ctx, http.MethodGet, client.Path(k, project, name), nil, nil, &raw); err != nil {
		raw = nil
	}
	l.single[id] = raw
	return raw, raw != nil
}

// list returns the objects of a kind by name, or nil when they cannot be
// listed.
func (l *live) list(k *api.Kind, project string) map[string]json.RawMessage {
	items, _, err := client.ListAll[json.RawMessage](l.ctx, l.c, k, project, client.ListOptions{})
	if err != nil {
		return nil
	}
	out := make(map[string]json.RawMessage, len(items))
	for _, raw := range items {
		var obj struct {
			Metadata api.ObjectMeta `json:"metadata"`
		}
		if json.Unmarshal(raw, &obj) == nil {
			out[obj.Metadata.Name] = raw
		}
	}
	return out
}

// owner returns the stack that owns kind/name (its LabelStack), or "".
func (l *live) owner(kind, name string) string {
	raw, ok := l.get(kind, name)
	if !ok {
		return ""
	}
	var obj struct {
		Metadata api.ObjectMeta `json:"metadata"`
	}
	if json.Unmarshal(raw, &obj) != nil {
		return ""
	}
	return obj.Metadata.Labels[api.LabelStack]
}

// prepared is a stack rendered from files and checked against the
// project, with what exists of it.
type prepared struct {
	c    *client.Client
	live *live
	name string
	spec api.StackSpec
	// cur is the stored stack, nil when there is none.
	cur    *api.Stack
	images *images
}

// prepare loads the files (importing their images' sources into work),
// checks them against the project and reads the stack.
func prepare(ctx context.Context, o *command.Options, f *files, name string, fromHeader bool, work string, log io.Writer) (*prepared, error) {
	header, spec, err := f.load()
	if err != nil {
		return nil, err
	}
	if fromHeader {
		if header == "" {
			return nil, command.UsageError("the files have no Stack header naming the stack: add one (kind: Stack, metadata: {name: NAME}) or use `ouro stack apply NAME -f ...`")
		}
		name = header
	}
	if e := api.ValidateName("NAME", name); e != nil {
		return nil, command.ArgError("%s", e.Message)
	}
	im, err := importSources(ctx, &spec, work, log)
	if err != nil {
		return nil, err
	}
	c, err := o.Client()
	if err != nil {
		return nil, err
	}
	l := newLive(ctx, c, o.Project())
	if err := stack.Check(spec, func(kind, n string) bool { _, ok := l.get(kind, n); return ok }); err != nil {
		return nil, err
	}
	cur, err := c.GetStack(ctx, l.project, name)
	if api.IsNotFound(err) {
		cur, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read stack %s: %w", name, err)
	}
	return &prepared{c: c, live: l, name: name, spec: spec, cur: cur, images: im}, nil
}

func newPlanCommand(o *command.Options) *cobra.Command {
	var f files
	cmd := &cobra.Command{
		Use:   "plan NAME -f FILE...",
		Short: "Show what applying stack files would create, change and delete (exit code 2 when something would change)",
		Long: `Plan renders the files, checks them and compares them with the stack and the
objects of the project: it prints the resources it would create, the fields it
would change and the resources it would delete. It exits with 0 when nothing
would change, 2 when something would, and 1 on errors.

Values that references take from resources still to be created, and defaults
the server fills in, are only known once applied.`,
		Args: command.ExactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			work, err := os.MkdirTemp("", "ouro-stack-")
			if err != nil {
				return fmt.Errorf("plan: %w", err)
			}
			defer os.RemoveAll(work)
			p, err := prepare(cmd.Context(), o, &f, args[0], false, work, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			var owned []api.StackResourceStatus
			if p.cur != nil {
				owned = p.cur.Status.Resources
			}
			changes := stack.Plan(p.spec, owned, p.live.get)
			changed := printPlan(cmd.OutOrStdout(), changes)
			if p.cur != nil && (p.cur.Spec.Drift != p.spec.Drift || !maps.Equal(p.cur.Spec.Outputs, p.spec.Outputs)) {
				fmt.Fprintf(cmd.OutOrStdout(), "~ update the stack's drift mode or outputs\n")
				changed = true
			}
			for _, c := range changes {
				if c.Action == stack.ActionCreate || c.Action == stack.ActionDelete {
					continue
				}
				if owner := p.live.owner(c.Kind, c.Name); owner != p.name {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s %s exists and is not owned by stack %s: apply will fail on it\n", c.Kind, c.Name, p.name)
				}
			}
			if changed {
				return &command.ExitError{Code: ExitChanges}
			}
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

// printPlan writes the changes and reports whether there are any.
func printPlan(w io.Writer, changes []stack.Change) bool {
	n := map[string]int{}
	for _, c := range changes {
		n[c.Action]++
		switch c.Action {
		case stack.ActionCreate:
			fmt.Fprintf(w, "+ create %s/%s\n", c.Kind, c.Name)
		case stack.ActionDelete:
			fmt.Fprintf(w, "- delete %s/%s\n", c.Kind, c.Name)
		case stack.ActionUpdate:
			fmt.Fprintf(w, "~ update %s/%s\n", c.Kind, c.Name)
			for _, fc := range c.Fields {
				fmt.Fprintf(w, "    %s: %s -> %s\n", fc.Field, orNone(fc.Got), orNone(fc.Want))
			}
		}
	}
	if n[stack.ActionCreate]+n[stack.ActionUpdate]+n[stack.ActionDelete] == 0 {
		fmt.Fprintf(w, "no changes (%d resources)\n", n[stack.ActionUnchanged])
		return false
	}
	fmt.Fprintf(w, "%d to create, %d to update, %d to delete, %d unchanged\n",
		n[stack.ActionCreate], n[stack.ActionUpdate], n[stack.ActionDelete], n[stack.ActionUnchanged])
	return true
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func newApplyCommand(o *command.Options, fromHeader bool) *cobra.Command {
	var f files
	var waiting bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "apply NAME -f FILE...",
		Short: "Create or update a stack from files; the cloud then keeps it applied",
		Args:  command.ExactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if waiting && timeout <= 0 {
				return command.FlagError("timeout", "%s is not positive: use a duration such as 10m", timeout)
			}
			name := ""
			if !fromHeader {
				name = args[0]
			}
			ctx := cmd.Context()
			work, err := os.MkdirTemp("", "ouro-stack-")
			if err != nil {
				return fmt.Errorf("apply: %w", err)
			}
			defer os.RemoveAll(work)
			p, err := prepare(ctx, o, &f, name, fromHeader, work, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if err := p.images.upload(ctx, p.c); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			name = p.name
			s, changed, err := apply(ctx, p.c, p.live.project, name, p.spec, p.cur)
			if err != nil {
				return err
			}
			switch {
			case p.cur == nil:
				fmt.Fprintf(out, "stack %s created\n", name)
			case changed:
				fmt.Fprintf(out, "stack %s updated\n", name)
			default:
				fmt.Fprintf(out, "stack %s unchanged\n", name)
			}
			if !waiting {
				return nil
			}
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			return waitApplied(ctx, p.c, s, out)
		},
	}
	if fromHeader {
		cmd.Use = "apply -f FILE..."
		cmd.Short = "Apply stack files; the stack's name comes from their Stack header"
		cmd.Args = cobra.NoArgs
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&waiting, "wait", false, "wait until the stack is applied, printing each resource's progress")
	cmd.Flags().DurationVar(&timeout, "timeout", 15*time.Minute, "how long --wait waits")
	return cmd
}

// apply creates the stack or updates its spec at the version read; an
// equal spec is not written.
func apply(ctx context.Context, c *client.Client, project, name string, spec api.StackSpec, cur *api.Stack) (*api.Stack, bool, error) {
	if cur == nil {
		s := &api.Stack{Metadata: api.ObjectMeta{Name: name, Project: project}, Spec: spec}
		if _, err := c.CreateStack(ctx, s, client.CreateOptions{IdempotencyKey: command.NewInvocationID()}); err != nil {
			return nil, false, fmt.Errorf("create stack %s: %w", name, err)
		}
		return s, true, nil
	}
	spec.AppliedBy = cur.Spec.AppliedBy
	if sameSpec(spec, cur.Spec) {
		return cur, false, nil
	}
	s := *cur
	s.Spec = spec
	s.Spec.AppliedBy = ""
	if err := c.UpdateStack(ctx, &s); err != nil {
		if api.IsConflict(err) {
			return nil, false, fmt.Errorf("update stack %s: it changed since it was read; run the command again: %w", name, err)
		}
		return nil, false, fmt.Errorf("update stack %s: %w", name, err)
	}
	return &s, true, nil
}

// sameSpec compares two specs as JSON values.
func sameSpec(a, b api.StackSpec) bool {
	var x, y any
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if json.Unmarshal(ja, &x) != nil || json.Unmarshal(jb, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// waitApplied watches the stack until its controller applied the
// generation of s, printing each resource's state as it changes.
func waitApplied(ctx context.Context, c *client.Client, s *api.Stack, out io.Writer) error {
	gen := s.Metadata.Generation
	name := s.Metadata.Name
	states := map[string]string{}
	var result error
	err := wait.Object(ctx, c, api.StackKind, s.Metadata.Project, name, func(st *api.Stack) (bool, error) {
		if st == nil {
			result = fmt.Errorf("stack %s was deleted", name)
			return true, result
		}
		for _, r := range st.Status.Resources {
			id := r.Kind + "/" + r.Name
			if states[id] != r.State {
				states[id] = r.State
				line := fmt.Sprintf("%s %s", id, r.State)
				if r.Message != "" {
					line += ": " + r.Message
				}
				fmt.Fprintln(out, line)
			}
		}
		if st.Status.ObservedGeneration < gen && st.Metadata.Generation >= gen {
			return false, nil
		}
		switch st.Status.Phase {
		case api.StackApplied:
			fmt.Fprintf(out, "stack %s applied\n", name)
			return true, nil
		case api.StackFailed:
			result = fmt.Errorf("stack %s failed: %s", name, st.Status.Message)
			return true, result
		}
		return false, nil
	})
	if err != nil && err != result {
		return fmt.Errorf("wait for stack %s: %w", name, err)
	}
	return err
}

// waitDeleted waits until the named stacks are gone.
func waitDeleted(ctx context.Context, c *client.Client, project string, names []string, out io.Writer) error {
	return wait.Deleted[api.Stack](ctx, c, api.StackKind, project, names, func(n string) { fmt.Fprintf(out, "stack/%s deleted\n", n) })
}

func newOutputsCommand(o *command.Options) *cobra.Command {
	return command.NewShow(o, api.StackKind, "outputs", "Show a stack's outputs (addresses, VIPs) as resolved by the cloud",
		func(cmd *cobra.Command, s *api.Stack) error {
			outs := s.Status.Outputs
			if outs == nil {
				outs = map[string]string{}
			}
			return o.Render(cmd.OutOrStdout(), outs, func(t *output.Table) {
				t.Row("NAME", "VALUE")
				for _, k := range output.SortedKeys(outs) {
					t.Row(k, outs[k])
				}
			})
		})
}

func newDriftCommand(o *command.Options) *cobra.Command {
	return command.NewShow(o, api.StackKind, "drift", "Show where a stack's objects differ from the stack (changes made by hand)",
		func(cmd *cobra.Command, s *api.Stack) error {
			drift := s.Status.Drift
			if drift == nil {
				drift = []api.StackDrift{}
			}
			return o.Render(cmd.OutOrStdout(), drift, func(t *output.Table) {
				t.Row("RESOURCE", "FIELD", "WANT", "GOT", "CORRECTED")
				for _, d := range drift {
					field := d.Field
					if field == "" {
						field = "(missing)"
					}
					t.Row(d.Kind+"/"+d.Name, field, orNone(d.Want), orNone(d.Got), output.YesNo(d.Corrected))
				}
			})
		})
}
