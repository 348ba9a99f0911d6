package cli

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

// table writes aligned columns.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer) *table {
	return &table{tw: tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)}
}

// row writes one line; empty cells are shown as "-".
func (t *table) row(cols ...string) {
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

func (t *table) flush() error { return t.tw.Flush() }

// render writes v in the selected output format; fill writes the table.
func (o *options) render(w io.Writer, v any, fill func(t *table)) error {
	switch o.output {
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
		t := newTable(w)
		fill(t)
		return t.flush()
	}
}

// listView is how lists appear in json and yaml.
type listView[T any] struct {
	Kind  string `json:"kind"`
	Items []T    `json:"items"`
}

// renderList writes items in the selected output format. In table format
// an empty list prints a note on errw instead of a lone header.
func renderList[T any](o *options, w, errw io.Writer, kind string, items []T, fill func(t *table)) error {
	if items == nil {
		items = []T{}
	}
	if o.output == "table" && len(items) == 0 {
		fmt.Fprintf(errw, "No %s found.\n", humanPlural(kind))
		return nil
	}
	return o.render(w, listView[T]{Kind: kindListName(kind), Items: items}, fill)
}

// kindListName turns "instances" into "InstanceList" and
// "securitygroups" into "SecurityGroupList".
func kindListName(plural string) string {
	if k := api.KindByPlural(plural); k != nil {
		return k.Name + "List"
	}
	s := strings.TrimSuffix(plural, "s")
	if s == "" {
		return "List"
	}
	return strings.ToUpper(s[:1]) + s[1:] + "List"
}

// humanPlural turns a kind's URL plural into words: "securitygroups" into
// "security groups", "floatingips" into "floating IPs".
func humanPlural(plural string) string {
	if k := api.KindByPlural(plural); k != nil {
		return humanName(k) + "s"
	}
	return plural
}

// humanName turns a kind's name into words: "SecurityGroup" into
// "security group", "FloatingIPPool" into "floating IP pool".
func humanName(k *api.Kind) string {
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

// age renders how long ago t was: "5s", "3m", "2h", "4d"; "-" for the zero
// time.
func age(t, now time.Time) string {
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

// bytesString renders a byte count in binary units: "512 B", "1.5 MiB".
func bytesString(n int64) string {
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

// isTerminal reports whether v is a file connected to a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// labelsString renders labels as "k=v,k2=v2" in key order.
func labelsString(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}
