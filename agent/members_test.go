package agent

import (
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/agent/fence"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
)

// recorded reads the group member record an agent left in dir.
func recorded(t *testing.T, dir string) []fence.Member {
	t.Helper()
	r := fence.NewRecord(dir)
	if err := r.Load(); err != nil {
		t.Fatalf("load the record: %v", err)
	}
	return r.List()
}

// recordedUIDs is recorded without the error: for polling while an agent
// writes (each write replaces the whole file, so a read is never partial).
func recordedUIDs(dir string) []string {
	r := fence.NewRecord(dir)
	if r.Load() != nil {
		return nil
	}
	var uids []string
	for _, m := range r.List() {
		uids = append(uids, m.UID)
	}
	return uids
}

// groupRun is what runGroupMember left running.
type groupRun struct {
	memberKey, memberUID, soloUID string
}

// runGroupMember runs, with a first agent, a group member and an
// instance outside groups, then stops the agent: the driver keeps both
// running, as containers and VMs outlive the agent.
func runGroupMember(t *testing.T, h *harness) groupRun {
	t.Helper()
	stop := h.start(t, h.config())
	member := newInstance("web-1")
	member.Metadata.Labels = map[string]string{api.LabelGroup: "web"}
	mkey, muid := h.place(t, member)
	skey, suid := h.place(t, newInstance("solo"))
	h.waitInstance(t, mkey, "Running", phaseIs(api.PhaseRunning))
	h.waitInstance(t, skey, "Running", phaseIs(api.PhaseRunning))
	stop()
	want := []fence.Member{{UID: muid, Driver: "fake", Instance: mkey}}
	if got := recorded(t, h.dir); !slices.Equal(got, want) {
		t.Fatalf("record after the first agent: %v, want %v", got, want)
	}
	return groupRun{memberKey: mkey, memberUID: muid, soloUID: suid}
}

// silentServer accepts connections and never answers, as a server behind
// a partition that still completes handshakes would; it returns its URL.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// refusedURL returns the URL of a port nothing listens on.
func refusedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

// unavailableServer answers every request 503, as a proxy in front of a
// lost control plane would; it returns its URL.
func unavailableServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no upstream", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestFencingWithoutAPIAtStart: an agent that starts while the API cannot
// be reached fences the group members it recorded before, and nothing
// else.
func TestFencingWithoutAPIAtStart(t *testing.T) {
	tests := []struct {
		name   string
		server func(*testing.T) string
	}{
		{"connection refused", refusedURL},
		{"never answers", silentServer},
		{"answers 503", unavailableServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			g := runGroupMember(t, h)
			soloOps := h.drv.opsFor(g.soloUID)

			cfg := h.config()
			cfg.Server = tt.server(t) // overrides the URL kept with the credentials
			cfg.LeaseTTL = 400 * time.Millisecond
			deadline := fence.New(fence.Config{LeaseTTL: cfg.LeaseTTL}).Deadline()
			started := time.Now()
			h.start(t, cfg)
			waitFor(t, "group member fenced", func() bool { return h.drv.state(g.memberUID) == driver.StateStopped })
			st, err := h.drv.Inspect(t.Context(), g.memberUID)
			if err != nil {
				t.Fatal(err)
			}
			if early := st.FinishedAt.Sub(started); early < deadline {
				t.Errorf("member fenced %s after the agent started, before the fence deadline %s", early, deadline)
			}
			// One more fencing pass: the one that stopped the member has
			// gone through every instance.
			n := h.drv.inspected(g.memberUID)
			waitFor(t, "another fencing pass", func() bool { return h.drv.inspected(g.memberUID) > n })
			if got := h.drv.opsFor(g.soloUID); !slices.Equal(got, soloOps) || h.drv.state(g.soloUID) != driver.StateRunning {
				t.Errorf("instance outside groups: driver calls %v (before the cut-off agent: %v), state %s; want untouched and running",
					got, soloOps, h.drv.state(g.soloUID))
			}
			if ops := h.drv.opsFor(g.memberUID); ops[len(ops)-1] != "stop" {
				t.Errorf("member driver calls %v, want a stop last", ops)
			}
		})
	}
}

// TestFencedAtStartRunsAgainWhenAPIReturns: a member fenced by an agent
// that started cut off is started again, not counted as a crash, once the
// API answers and still assigns it to the host: whether heartbeats or
// lists work again first.
func TestFencedAtStartRunsAgainWhenAPIReturns(t *testing.T) {
	tests := []struct {
		name       string
		beatsFirst bool
	}{
		{"heartbeats first", true},
		{"lists first", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			g := runGroupMember(t, h)
			mkey := g.memberKey
			reconciled := h.reconciles(mkey) // by the first agent
			h.failBeats(true)
			h.failLists(true)

			cfg := h.config()
			cfg.LeaseTTL = 400 * time.Millisecond
			h.start(t, cfg)
			waitFor(t, "group member fenced", func() bool { return h.drv.state(g.memberUID) == driver.StateStopped })

			if tt.beatsFirst {
				h.failBeats(false)
				// A heartbeat sent after a successful one: the agent has
				// handled the end of fencing, before any list worked.
				beats := h.beats()
				waitFor(t, "two more heartbeats", func() bool { return h.beats() >= beats+2 })
				h.failLists(false)
			} else {
				h.failLists(false)
				waitFor(t, "a reconcile while fenced", func() bool { return h.reconciles(mkey) > reconciled })
				if c := h.drv.count("start", g.memberUID); c != 1 {
					t.Fatalf("member started %d times while fenced, want 1", c)
				}
				h.failBeats(false)
			}
			waitFor(t, "member running again", func() bool { return h.drv.state(g.memberUID) == driver.StateRunning })
			inst := h.waitInstance(t, mkey, "Running", phaseIs(api.PhaseRunning))
			if inst.Status.RestartCount != 0 || inst.Status.Reason != "" {
				t.Errorf("after fencing: restartCount %d reason %q", inst.Status.RestartCount, inst.Status.Reason)
			}
			waitFor(t, "Fenced event", func() bool { return slices.Contains(h.eventReasons(t, "web-1"), "Fenced") })
			if n := strings.Count(strings.Join(h.eventReasons(t, "web-1"), " "), "Fenced"); n != 1 {
				t.Errorf("%d Fenced events, want 1", n)
			}
			if h.drv.count("stop", g.soloUID) != 0 || h.drv.state(g.soloUID) != driver.StateRunning {
				t.Error("an instance outside groups was stopped")
			}
		})
	}
}

// TestMemberRecordForgetsDeletedMembers: a member leaves the record when
// it is deleted, while the agent runs or while it is away.
func TestMemberRecordForgetsDeletedMembers(t *testing.T) {
	t.Run("while the agent runs", func(t *testing.T) {
		h := newHarness(t)
		h.start(t, h.config())
		member := newInstance("web-1")
		member.Metadata.Labels = map[string]string{api.LabelGroup: "web"}
		key, uid := h.place(t, member)
		h.waitInstance(t, key, "Running", phaseIs(api.PhaseRunning))
		if got := recordedUIDs(h.dir); !slices.Equal(got, []string{uid}) {
			t.Fatalf("record of a running member: %v", got)
		}

		h.updateSpec(t, key, func(i *api.Instance) {
			now := time.Now()
			i.Metadata.DeletionTimestamp = &now
			i.Status.Phase = api.PhaseTerminating
		})
		waitFor(t, "instance removed", func() bool { return h.get(t, key) == nil })
		waitFor(t, "member forgotten", func() bool { return len(recordedUIDs(h.dir)) == 0 })
		if h.drv.has(uid) {
			t.Error("driver still has the member")
		}
	})
	t.Run("while the agent is away", func(t *testing.T) {
		h := newHarness(t)
		g := runGroupMember(t, h)
		h.remove(t, g.memberKey)

		h.start(t, h.config())
		waitFor(t, "member deleted from the driver", func() bool { return !h.drv.has(g.memberUID) })
		waitFor(t, "member forgotten", func() bool { return len(recordedUIDs(h.dir)) == 0 })
		if !h.drv.has(g.soloUID) {
			t.Error("the instance outside groups was deleted")
		}
	})
}
