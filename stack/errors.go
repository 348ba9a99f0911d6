package stack

import (
	"strings"
)

// Error is one problem found in a stack: where (a "file:line" or a
// resource's Source), which field and what is wrong.
type Error struct {
	// Source is "file:line" (or a resource's Source when the line of the
	// field is not known).
	Source string
	// Field is the field's path in the document ("spec.cidr",
	// "metadata.name"), or "".
	Field string
	// Message says what is wrong.
	Message string
}

// Error prints "source: field: message", leaving out empty parts.
func (e Error) Error() string {
	var b strings.Builder
	for _, s := range []string{e.Source, e.Field} {
		if s != "" {
			b.WriteString(s)
			b.WriteString(": ")
		}
	}
	b.WriteString(e.Message)
	return b.String()
}

// ErrorList is every problem found in a stack, in file order.
type ErrorList []Error

// Error prints one error per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// err returns l as an error, or nil when it is empty.
func (l ErrorList) err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}
