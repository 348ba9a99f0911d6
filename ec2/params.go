package ec2

import (
	"encoding/base64"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Bounds of a request's form.
const (
	// MaxBodyBytes bounds a request body (user data is at most 16 KiB
	// before base64, AWS's limit).
	MaxBodyBytes = 1 << 20
	// MaxParams bounds the number of parameters of one request.
	MaxParams = 2000
	// MaxIndex bounds every list index ("Filter.N"); AWS's lists are
	// far shorter.
	MaxIndex = 1000
	// MaxValueBytes bounds one parameter's value, user data excepted.
	MaxValueBytes = 64 << 10
	// MaxUserDataBytes bounds decoded user data, as AWS does.
	MaxUserDataBytes = 16 << 10
)

// Params are a request's decoded parameters, each with one value. Keys
// are the EC2 Query names ("Filter.1.Value.2").
type Params map[string]string

// parseForm decodes a form body: every key once, within the bounds.
func parseForm(body string) (Params, error) {
	vals, err := url.ParseQuery(body)
	if err != nil {
		return nil, invalidValue("the request body is not a valid form: %v", err)
	}
	if len(vals) > MaxParams {
		return nil, invalidValue("the request has %d parameters, at most %d are allowed", len(vals), MaxParams)
	}
	p := make(Params, len(vals))
	for k, vs := range vals {
		if len(vs) != 1 {
			return nil, Errorf(CodeInvalidParameter, "the parameter %s is given %d times", clip(k), len(vs))
		}
		if len(vs[0]) > MaxValueBytes {
			return nil, invalidValue("the parameter %s is %d bytes long, at most %d are allowed", clip(k), len(vs[0]), MaxValueBytes)
		}
		p[k] = vs[0]
	}
	return p, nil
}

// check refuses parameters no pattern allows. A pattern is a dotted
// name whose "N" segments stand for a list index 1..MaxIndex
// ("Filter.N.Value.N"). An index out of bounds is InvalidParameterValue;
// an unknown name UnknownParameter, as AWS answers.
func (p Params) check(patterns []string) error {
	for k := range p {
		if k == "Action" || k == "Version" {
			continue
		}
		ok, err := matchAny(k, patterns)
		if err != nil {
			return err
		}
		if !ok {
			return Errorf(CodeUnknownParameter, "The parameter %s is not recognized", clip(k))
		}
	}
	return nil
}

func matchAny(key string, patterns []string) (bool, error) {
	segs := strings.Split(key, ".")
	for _, pat := range patterns {
		ps := strings.Split(pat, ".")
		if len(ps) != len(segs) {
			continue
		}
		match := true
		for i, s := range ps {
			if s == "N" {
				if _, err := index(segs[i]); err != nil {
					if isDigits(segs[i]) {
						return false, invalidValue("the index %s in %s is out of range 1..%d", clip(segs[i]), clip(key), MaxIndex)
					}
					match = false
					break
				}
				continue
			}
			if s != segs[i] {
				match = false
				break
			}
		}
		if match {
			return true, nil
		}
	}
	return false, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func index(s string) (int, error) {
	if !isDigits(s) || len(s) > 4 {
		return 0, strconv.ErrRange
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > MaxIndex {
		return 0, strconv.ErrRange
	}
	return n, nil
}

// String returns the value of name, "" when absent.
func (p Params) String(name string) string { return p[name] }

// Has reports whether name was given.
func (p Params) Has(name string) bool { _, ok := p[name]; return ok }

// Required returns the value of name or MissingParameter.
func (p Params) Required(name string) (string, error) {
	v, ok := p[name]
	if !ok || v == "" {
		return "", missing(name)
	}
	return v, nil
}

// Int returns the integer value of name, def when absent.
func (p Params) Int(name string, def int) (int, error) {
	v, ok := p[name]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 1<<30 {
		return 0, invalidValue("Value (%s) for parameter %s is invalid. Expected a non-negative integer.", clip(v), name)
	}
	return n, nil
}

// Bool returns the boolean value of name ("true" or "false"), def when
// absent.
func (p Params) Bool(name string, def bool) (bool, error) {
	v, ok := p[name]
	if !ok {
		return def, nil
	}
	switch strings.ToLower(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, invalidValue("Value (%s) for parameter %s is invalid. Expected 'true' or 'false'.", clip(v), name)
}

// Base64 decodes the base64 value of name (user data), at most max
// bytes once decoded.
func (p Params) Base64(name string, max int) (string, error) {
	v, ok := p[name]
	if !ok {
		return "", nil
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return "", invalidValue("Invalid BASE64 encoding of user data.")
	}
	if len(b) > max {
		return "", invalidValue("%s is %d bytes long once decoded, at most %d are allowed", name, len(b), max)
	}
	return string(b), nil
}

// List returns the values of "prefix.N" in index order.
func (p Params) List(prefix string) []string {
	type item struct {
		i int
		v string
	}
	var items []item
	for k, v := range p {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok {
			continue
		}
		if i, err := index(rest); err == nil {
			items = append(items, item{i, v})
		}
	}
	slices.SortFunc(items, func(a, b item) int { return a.i - b.i })
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out
}

// Structs returns the members of "prefix.N.…" in index order, each with
// its keys relative to "prefix.N.".
func (p Params) Structs(prefix string) []Params {
	byIndex := map[int]Params{}
	for k, v := range p {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok {
			continue
		}
		is, member, ok := strings.Cut(rest, ".")
		if !ok {
			continue
		}
		i, err := index(is)
		if err != nil {
			continue
		}
		if byIndex[i] == nil {
			byIndex[i] = Params{}
		}
		byIndex[i][member] = v
	}
	idx := make([]int, 0, len(byIndex))
	for i := range byIndex {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	out := make([]Params, len(idx))
	for j, i := range idx {
		out[j] = byIndex[i]
	}
	return out
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
