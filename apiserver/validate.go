package apiserver

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/ouroboros-cloud/ouro/api"
)

// The validators of tokens and events, which only the API server writes
// or reads; every other kind is admitted by package admission. hooks.go
// says which applies to which kind.

func tokenStatusReadOnly() error {
	return api.Invalid("status", "issue a new token instead", "the status of a token cannot be written")
}

// Event bounds.
const (
	maxEventMessage = 1024
	maxEventReason  = 128
)

func validateEvent(e *api.Event) error {
	if api.KindByPlural(pluralOf(e.Object.Kind)) == nil {
		return api.Invalid("object.kind", "use a kind name such as Instance", "kind %q is not known", e.Object.Kind)
	}
	if err := api.ValidateName("object.name", e.Object.Name); err != nil {
		return err
	}
	if e.Object.Project != "" {
		if err := api.ValidateName("object.project", e.Object.Project); err != nil {
			return err
		}
	}
	switch {
	case e.Type != api.EventNormal && e.Type != api.EventWarning:
		return api.Invalid("type", "use Normal or Warning", "event type %q is not valid", e.Type)
	case e.Reason == "" || len(e.Reason) > maxEventReason || !printable(e.Reason):
		return api.Invalid("reason", "use a short CamelCase word such as Scheduled", "reason is missing or not valid")
	case len(e.Message) > maxEventMessage || !utf8.ValidString(e.Message):
		return api.Invalid("message", fmt.Sprintf("use at most %d bytes of UTF-8", maxEventMessage), "message is %d bytes", len(e.Message))
	case len(e.Source) > 253:
		return api.Invalid("source", "use at most 253 characters", "source is too long")
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	return nil
}

// pluralOf returns the URL plural of a kind name, or "".
func pluralOf(name string) string {
	for _, k := range api.Kinds() {
		if k.Name == name {
			return k.Plural
		}
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
