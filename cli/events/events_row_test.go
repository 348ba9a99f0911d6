package events

import (
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestEventRowShowsCount(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		count int32
		want  string
	}{
		{0, "create failed"},
		{1, "create failed"},
		{7, "create failed (7 times)"},
	}
	for _, tt := range tests {
		ev := &api.Event{Type: api.EventWarning, Reason: "DriverError", Message: "create failed", Count: tt.count,
			Object: api.ObjectRef{Kind: "Instance", Name: "web"}, Time: now}
		if got := eventRow(ev, false, now)[4]; got != tt.want {
			t.Errorf("count %d: message column %q, want %q", tt.count, got, tt.want)
		}
	}
}
