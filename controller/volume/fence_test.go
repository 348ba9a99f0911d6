package volume

import (
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestJudgeHost(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	host := func(phase api.HostPhase, ready bool, since time.Duration, addr string) *api.Host {
		h := &api.Host{Status: api.HostStatus{Phase: phase, Address: addr}}
		h.Status.Conditions = []api.Condition{{Type: api.ConditionReady, Status: ready, LastTransitionTime: now.Add(-since)}}
		return h
	}
	const grace, after = 5 * time.Second, 30 * time.Second
	for _, tc := range []struct {
		name string
		h    *api.Host
		last fenceState
		want judgement
	}{
		{"lost: fence", host(api.HostNotReady, false, time.Second, "10.0.0.1"), unknown, judgement{Again: 4 * time.Second}},
		{"lost past grace", host(api.HostNotReady, false, 6*time.Second, "10.0.0.1"), unknown, judgement{Fence: true}},
		{"fenced already", host(api.HostNotReady, false, time.Minute, "10.0.0.1"), fenced, judgement{}},
		{"back, too soon", host(api.HostReady, true, 10*time.Second, "10.0.0.1"), fenced, judgement{Again: 20 * time.Second}},
		{"back for long", host(api.HostReady, true, time.Minute, "10.0.0.1"), fenced, judgement{Unfence: true}},
		{"ready, unknown to this leader", host(api.HostReady, true, time.Hour, "10.0.0.1"), unknown, judgement{Unfence: true}},
		{"ready, unfenced", host(api.HostReady, true, time.Hour, "10.0.0.1"), unfenced, judgement{}},
		{"no address", host(api.HostNotReady, false, time.Hour, ""), unknown, judgement{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := judgeHost(tc.h, tc.last, grace, after, now); got != tc.want {
				t.Fatalf("judgeHost = %+v, want %+v", got, tc.want)
			}
		})
	}
}
