// Package output writes what ouro commands print: aligned tables, json and
// yaml in the format chosen with -o, lists with their kind, the words
// people read for kinds, ages and sizes, and progress bars of transfers.
package output

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"golang.org/x/sys/unix"
	"sigs.k8s.io/yaml"

	"github.com/ouroboros-cloud/ouro/api"
)

// Table writes aligned columns.
type Table struct {
	tw *tabwriter.Writer
}

// NewTable returns a table that writes to w once flushed.
func NewTable(w io.Writer) *Table {
	return &Table{tw: tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)}
}

// Row writes one line; empty cells are shown as "-".
func (t *Table) Row(cols ...string) {
	for i, c := range cols {
		if c == "" {
			c = "-"
		}
		// A tab or newline inside a cell would break the alignment.
		c = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(c)
		if i > 0 {
			io.WriteString(t.tw, "\t")
		}
		io.WriteString(t.tw, c)
	}
	io.WriteString(t.tw, "\n")
}

// Flush writes the rows out, aligned.
func (t *Table) Flush() error { return t.tw.Flush() }

// Render writes v in format, "json" or "yaml"; in any other format (that
// is, "table") fill writes a table.
func Render(w io.Writer, format string, v any, fill func(t *Table)) error {
	switch format {
	case "json":
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode yaml: %w", err)
		}
		_, err = w.Write(b)
		return err
	default:
		t := NewTable(w)
		fill(t)
		return t.Flush()
	}
}

// List is how lists appear in json and yaml.
type List[T any] struct {
	Kind  string `json:"kind"`
	Items []T    `json:"items"`
}

// RenderList writes items, objects of the kind whose URL plural is kind,
// in format as Render does. In table format an empty list prints a note
// on errw instead of a lone header.
func RenderList[T any](w, errw io.Writer, format, kind string, items []T, fill func(t *Table)) error {
	if items == nil {
		items = []T{}
	}
	if format == "table" && len(items) == 0 {
		fmt.Fprintf(errw, "No %s found.\n", HumanPlural(kind))
		return nil
	}
	return Render(w, format, List[T]{Kind: KindListName(kind), Items: items}, fill)
}

// KindListName turns "instances" into "InstanceList" and
// "securitygroups" into "SecurityGroupList".
func KindListName(plural string) string {
	if k := api.KindByPlural(plural); k != nil {
		return k.Name + "List"
	}
	s := strings.TrimSuffix(plural, "s")
	if s == "" {
		return "List"
	}
	return strings.ToUpper(s[:1]) + s[1:] + "List"
}

// HumanPlural turns a kind's URL plural into words: "securitygroups" into
// "security groups", "floatingips" into "floating IPs".
func HumanPlural(plural string) string {
	if k := api.KindByPlural(plural); k != nil {
		return HumanName(k) + "s"
	}
	return plural
}

// HumanName turns a kind's name into words: "SecurityGroup" into
// "security group", "FloatingIPPool" into "floating IP pool".
func HumanName(k *api.Kind) string {
	var words []string
	name := []rune(k.Name)
	start := 0
	for i := 1; i <= len(name); i++ {
		// A word ends before an upper-case letter that follows a lower-case
		// one ("Security|Group") or that starts a word after an acronym
		// ("IP|Pool").
		if i < len(name) && !(unicode.IsUpper(name[i]) &&
			(unicode.IsLower(name[i-1]) || (i+1 < len(name) && unicode.IsLower(name[i+1])))) {
			continue
		}
		w := string(name[start:i])
		if w != strings.ToUpper(w) || len(w) == 1 {
			w = strings.ToLower(w)
		}
		words = append(words, w)
		start = i
	}
	return strings.Join(words, " ")
}

// Age renders how long ago t was: "5s", "3m", "2h", "4d"; "-" for the zero
// time.
func Age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	default:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
}

// Bytes renders a byte count in binary units: "512 B", "1.5 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// IsTerminal reports whether v is a file connected to a terminal.
func IsTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// SortedKeys returns the keys of m in order.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// YesNo renders b as "yes" or "no".
func YesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
