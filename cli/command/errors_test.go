package command

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestFormatError(t *testing.T) {
	ae := &api.Error{Code: api.CodeInvalid, Message: "bad", Field: "spec.x", Hint: "use y"}
	tests := []struct {
		err  error
		want string
	}{
		{ae, "bad (field: spec.x; hint: use y)"},
		{&api.Error{Message: "only hint", Hint: "h"}, "only hint (hint: h)"},
		{&api.Error{Message: "plain"}, "plain"},
		{fmt.Errorf("create instance web-2: %w", ae), "create instance web-2: bad (field: spec.x; hint: use y)"},
		{errors.New("other"), "other"},
	}
	for _, tt := range tests {
		if got := FormatError(tt.err); got != tt.want {
			t.Errorf("FormatError(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
