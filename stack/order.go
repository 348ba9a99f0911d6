package stack

import (
	"sort"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
)

// namedField is a field of a kind's spec that names another object: Path
// is a path in the spec with "[]" for every element of a list.
type namedField struct {
	Path string
	Kind string
}

// templateFields are the fields of an instance spec (and a group's
// template) that name other objects.
var templateFields = []namedField{
	{"image", "Image"},
	{"flavor", "Flavor"},
	{"keyName", "KeyPair"},
	{"networks[].network", "Network"},
	{"networks[].securityGroups[]", "SecurityGroup"},
}

// implicit lists, per kind, the fields that name other objects: a
// resource depends on the resources of its stack those fields name.
var implicit = map[string][]namedField{
	"Instance":      templateFields,
	"InstanceGroup": prefixed("template.", templateFields),
	"SecurityGroup": {{"rules[].sourceGroup", "SecurityGroup"}},
	"FloatingIP":    {{"instance", "Instance"}},
	"Network":       {{"vpc", "VPC"}},
	"LoadBalancer": {
		{"network", "Network"},
		{"pools[].group", "InstanceGroup"},
		{"pools[].instances[].instance", "Instance"},
	},
}

func prefixed(p string, fs []namedField) []namedField {
	out := make([]namedField, len(fs))
	for i, f := range fs {
		out[i] = namedField{p + f.Path, f.Kind}
	}
	return out
}

// namesAt returns the strings at a path with "[]" steps in v.
func namesAt(v any, path string) []string {
	if path == "" {
		if s, ok := v.(string); ok && s != "" {
			return []string{s}
		}
		return nil
	}
	step, rest, _ := strings.Cut(path, ".")
	name, each := strings.CutSuffix(step, "[]")
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	v = m[name]
	if !each {
		return namesAt(v, rest)
	}
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		out = append(out, namesAt(e, rest)...)
	}
	return out
}

// key identifies a resource of a stack.
type key struct{ Kind, Name string }

func (k key) String() string { return k.Kind + "/" + k.Name }

// index maps each kind/name to its first resource index.
func index(spec api.StackSpec) map[key]int {
	idx := make(map[key]int, len(spec.Resources))
	for i, r := range spec.Resources {
		k := key{r.Kind, r.Name}
		if _, dup := idx[k]; !dup {
			idx[k] = i
		}
	}
	return idx
}

// DependsOn returns the indexes of the resources resource i depends on,
// sorted: those its references name and those its fields name by name
// (an instance's networks, security groups, key pair, image and flavor; a
// rule's source group; a floating IP's instance; a load balancer's
// network and members). Names of objects outside the stack are not
// dependencies.
func DependsOn(spec api.StackSpec, i int) []int {
	return dependsOn(spec, index(spec), i)
}

func dependsOn(spec api.StackSpec, idx map[key]int, i int) []int {
	r := spec.Resources[i]
	set := map[int]bool{}
	add := func(k key) {
		if j, ok := idx[k]; ok && j != i {
			set[j] = true
		}
	}
	for _, ref := range RefsOf(r) {
		add(key{ref.Kind, ref.Name})
	}
	v := decodeAny(r.Spec)
	for _, f := range implicit[r.Kind] {
		for _, name := range namesAt(v, f.Path) {
			add(key{f.Kind, name})
		}
	}
	out := make([]int, 0, len(set))
	for j := range set {
		out = append(out, j)
	}
	sort.Ints(out)
	return out
}

// Order returns the resources' indexes in dependency order (creation
// order; deletion is the reverse), keeping file order among independent
// resources, or an error naming a cycle ("Instance/a -> FloatingIP/b ->
// Instance/a").
func Order(spec api.StackSpec) ([]int, error) {
	idx := index(spec)
	n := len(spec.Resources)
	deps := make([][]int, n)
	for i := range n {
		deps[i] = dependsOn(spec, idx, i)
	}
	const (
		unseen = iota
		visiting
		done
	)
	state := make([]int, n)
	order := make([]int, 0, n)
	var stack []int
	var visit func(i int) error
	visit = func(i int) error {
		switch state[i] {
		case done:
			return nil
		case visiting:
			start := 0
			for k, j := range stack {
				if j == i {
					start = k
				}
			}
			names := make([]string, 0, len(stack)-start+1)
			for _, j := range stack[start:] {
				names = append(names, resourceKey(spec, j))
			}
			names = append(names, resourceKey(spec, i))
			return &CycleError{Resources: append([]int(nil), stack[start:]...), names: names}
		}
		state[i] = visiting
		stack = append(stack, i)
		for _, j := range deps[i] {
			if err := visit(j); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = done
		order = append(order, i)
		return nil
	}
	for i := range n {
		if err := visit(i); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// CycleError is the error of Order when resources depend on each other
// in a cycle.
type CycleError struct {
	// Resources are the indexes of the resources of the cycle, each
	// depending on the next and the last on the first.
	Resources []int
	names     []string
}

func (e *CycleError) Error() string {
	return "dependency cycle: " + strings.Join(e.names, " -> ")
}

func resourceKey(spec api.StackSpec, i int) string {
	r := spec.Resources[i]
	return r.Kind + "/" + r.Name
}
