// Package events holds the ouro events command: what happened in a
// project, or in every project, listed or followed as it happens.
package events

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/client"
)

type eventsFlags struct {
	watch  bool
	all    bool
	forObj string
}

// NewCommand returns the events command.
func NewCommand(o *command.Options) *cobra.Command {
	f := &eventsFlags{}
	cmd := &cobra.Command{
		Use:     "events",
		Aliases: []string{"event"},
		Short:   "Show what happened in a project",
		Example: "  ouro events --for instance/web-1\n  ouro events --for group/web --watch\n  ouro events --watch --all-projects",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEvents(cmd, o, f)
		},
	}
	cmd.Flags().BoolVarP(&f.watch, "watch", "w", false, "keep printing new events until interrupted")
	cmd.Flags().BoolVarP(&f.all, "all-projects", "A", false, "events of every project (cluster admins)")
	cmd.Flags().StringVar(&f.forObj, "for", "", "only events about one object, as KIND/NAME (e.g. instance/web-1)")
	return cmd
}

// eventFilter matches events about one object; the zero filter matches
// all.
type eventFilter struct{ kind, name string }

func parseEventFilter(s string) (eventFilter, error) {
	if s == "" {
		return eventFilter{}, nil
	}
	kind, name, ok := strings.Cut(s, "/")
	if !ok || kind == "" || name == "" || strings.Contains(name, "/") {
		return eventFilter{}, command.FlagError("for", "%q is not KIND/NAME: write e.g. instance/web-1", s)
	}
	if k := kindByName(kind); k != nil {
		kind = k.Name
	}
	return eventFilter{kind: kind, name: name}, nil
}

// kindByName finds a kind by its singular or plural name, in any case;
// "group" is short for InstanceGroup.
func kindByName(s string) *api.Kind {
	if strings.EqualFold(s, "group") || strings.EqualFold(s, "groups") {
		return api.InstanceGroupKind
	}
	for _, k := range api.Kinds() {
		if strings.EqualFold(s, k.Name) || strings.EqualFold(s, k.Plural) {
			return k
		}
	}
	return nil
}

func (f eventFilter) match(ev *api.Event) bool {
	if f.name == "" {
		return true
	}
	return strings.EqualFold(ev.Object.Kind, f.kind) && ev.Object.Name == f.name
}

func runEvents(cmd *cobra.Command, o *command.Options, f *eventsFlags) error {
	filter, err := parseEventFilter(f.forObj)
	if err != nil {
		return err
	}
	c, err := o.Client()
	if err != nil {
		return err
	}
	project := ""
	if !f.all {
		project = o.Project()
	}
	ctx := cmd.Context()
	items, meta, err := client.ListAll[api.Event](ctx, c, api.EventKind, project, client.ListOptions{})
	if err != nil {
		return err
	}
	var evs []*api.Event
	for i := range items {
		if filter.match(&items[i]) {
			evs = append(evs, &items[i])
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
	if !f.watch {
		return output.RenderList(cmd.OutOrStdout(), cmd.ErrOrStderr(), o.Output, "events", evs, func(t *output.Table) {
			writeEventRows(t.Row, evs, f.all, time.Now())
		})
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := &eventPrinter{o: o, w: cmd.OutOrStdout(), all: f.all}
	seen := make(map[string]bool)
	for _, ev := range evs {
		seen[ev.Metadata.UID+ev.Metadata.ResourceVersion] = true
		p.print(ev)
	}
	err = watchEvents(ctx, c, project, meta.ResourceVersion, func(ev *api.Event) {
		key := ev.Metadata.UID + ev.Metadata.ResourceVersion
		if filter.match(ev) && !seen[key] {
			seen[key] = true
			p.print(ev)
		}
	})
	if ctx.Err() != nil {
		return nil // interrupted
	}
	return err
}

// watchEvents streams added and modified events to fn from version rv,
// resuming where a stream ended and listing again after a Gone.
func watchEvents(ctx context.Context, c *client.Client, project, rv string, fn func(*api.Event)) error {
	for ctx.Err() == nil {
		err := client.Watch(ctx, c, api.EventKind, project, client.WatchOptions{ResourceVersion: rv},
			func(we api.WatchEvent[api.Event]) error {
				if v := we.Object.Metadata.ResourceVersion; v != "" {
					rv = v
				}
				if we.Type == api.Added || we.Type == api.Modified {
					fn(&we.Object)
				}
				return nil
			})
		var ae *api.Error
		switch {
		case err == nil || ctx.Err() != nil:
		case errors.As(err, &ae) && ae.Code == api.CodeGone:
			// History was compacted: start from the current list (fn drops
			// events already shown).
			items, meta, err := client.ListAll[api.Event](ctx, c, api.EventKind, project, client.ListOptions{})
			if err != nil {
				return err
			}
			for i := range items {
				fn(&items[i])
			}
			rv = meta.ResourceVersion
		default:
			return err
		}
	}
	return ctx.Err()
}

// writeEventRows writes events as TIME TYPE REASON OBJECT MESSAGE SOURCE
// (with PROJECT in front across projects), header first.
func writeEventRows(row func(...string), evs []*api.Event, all bool, now time.Time) {
	row(eventHeader(all)...)
	for _, ev := range evs {
		row(eventRow(ev, all, now)...)
	}
}

func eventHeader(all bool) []string {
	h := []string{"TIME", "TYPE", "REASON", "OBJECT", "MESSAGE", "SOURCE"}
	if all {
		h = append([]string{"PROJECT"}, h...)
	}
	return h
}

func eventRow(ev *api.Event, all bool, now time.Time) []string {
	msg := ev.Message
	if ev.Count > 1 {
		// Repeats are counted, not recorded one by one.
		msg = fmt.Sprintf("%s (%d times)", msg, ev.Count)
	}
	r := []string{output.Age(ev.Time, now), ev.Type, ev.Reason,
		strings.ToLower(ev.Object.Kind) + "/" + ev.Object.Name, msg, ev.Source}
	if all {
		r = append([]string{ev.Metadata.Project}, r...)
	}
	return r
}

// eventPrinter writes events one at a time as they arrive. Its table keeps
// columns aligned by widening them as longer cells appear.
type eventPrinter struct {
	o      *command.Options
	w      io.Writer
	all    bool
	widths []int
	header bool
}

func (p *eventPrinter) print(ev *api.Event) {
	switch p.o.Output {
	case "json", "yaml":
		if p.o.Output == "yaml" {
			io.WriteString(p.w, "---\n")
		}
		p.o.Render(p.w, ev, nil)
	default:
		if !p.header {
			p.header = true
			p.row(eventHeader(p.all))
		}
		p.row(eventRow(ev, p.all, time.Now()))
	}
}

func (p *eventPrinter) row(cells []string) {
	if p.widths == nil {
		p.widths = make([]int, len(cells))
	}
	var b strings.Builder
	for i, c := range cells {
		if c == "" {
			c = "-"
		}
		c = strings.NewReplacer("\t", " ", "\n", " ").Replace(c)
		if i == len(cells)-1 {
			b.WriteString(c)
			break
		}
		n := utf8.RuneCountInString(c)
		p.widths[i] = max(p.widths[i], n)
		b.WriteString(c)
		b.WriteString(strings.Repeat(" ", p.widths[i]-n+3))
	}
	fmt.Fprintln(p.w, b.String())
}
