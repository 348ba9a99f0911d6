package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// TestAPIVIP runs three servers, the second and third joined with `ouro
// server --join`, and an agent and the CLI that reach them only through
// the API VIP. It kills the server holding the VIP with SIGKILL (its etcd
// member dies with it): the VIP moves, the CLI and the agent keep working
// through it (an instance created after the kill runs), and `ouro server
// remove` takes the dead server out.
func TestAPIVIP(t *testing.T) {
	testenv.NeedBinary(t, "runc")
	testenv.NeedBinary(t, "dnsmasq")
	vc := newVIPCloud(t, 3)

	// Exactly one server has the address.
	first := vc.holder()
	for _, s := range vc.servers {
		if got := vc.hasVIP(s); got != (s == first) {
			t.Fatalf("%s has the VIP: %v; the holder is %s", s.name, got, first.name)
		}
	}

	t.Run("used and bad join tokens are refused", func(t *testing.T) {
		tok := vc.serverJoinToken()
		late := vc.servers[1]
		// A join that fails before its etcd starts: a peer URL on loopback.
		out, err := runIn(late.netns, 60*time.Second, ouroBin, "server", "--join", tok, "--name", "s9",
			"--data-dir", t.TempDir(), "--listen", ":7999", "--etcd-client-url", "http://127.0.0.1:2999",
			"--etcd-peer-url", "https://127.0.0.1:2998")
		if err == nil || !strings.Contains(out, "peerURL") {
			t.Fatalf("join with a loopback peer URL: %v: %s", err, tail(out, 2000))
		}
		for _, bad := range []string{"ourojoin_garbage", vc.servers[1].args[len(vc.servers[1].args)-1]} {
			out, err := runIn(late.netns, 60*time.Second, ouroBin, "server", "--join", bad, "--name", "s9",
				"--data-dir", t.TempDir(), "--listen", ":7999", "--etcd-client-url", "http://127.0.0.1:2999",
				"--etcd-peer-url", "https://"+late.ip+":2998")
			if err == nil || !(strings.Contains(out, "not a server join token") || strings.Contains(out, "was used")) {
				t.Fatalf("join with token %.20s…: %v: %s", bad, err, tail(out, 2000))
			}
		}
		if l := vc.serverList(); len(l) != 3 {
			t.Fatalf("refused joins changed the members: %+v", l)
		}
	})

	// The agent joins through the VIP, as `ouro host join-token` says.
	jt := vc.ouro("host", "join-token")
	if !strings.Contains(jt, "--server "+vc.url) {
		t.Fatalf("ouro host join-token does not name the VIP:\n%s", jt)
	}
	a := vc.addAgentIn("h1", vc.u.attach(t, "h1", vipSubnet+"21"), vipSubnet+"21", vipSubnet+"21:7444")
	vc.importBusybox()
	vc.ouro("instance", "create", "before", "--image", "busybox", "--flavor", "tiny", "--", "sleep", "3600")
	vc.waitPhase("default", "before", api.PhaseRunning)

	dead := vc.holder()
	killed := time.Now()
	dead.proc.kill()
	vc.waitVIP(30 * time.Second)
	t.Logf("the API answered through the VIP %v after %s was killed", time.Since(killed).Round(time.Millisecond), dead.name)
	wait.ForDetail(t, 10*time.Second, "the VIP off the dead server", func() (bool, string) {
		return !vc.hasVIP(dead), "the kernel keeps the address of the killed server"
	})

	// The CLI and the agent work through the VIP's new holder.
	vc.ouro("instance", "create", "after", "--image", "busybox", "--flavor", "tiny", "--", "sleep", "3600")
	vc.waitPhase("default", "after", api.PhaseRunning)
	var h api.Host
	if err := vc.clientAs(vc.admin).Get(context.Background(), api.HostKind, "", a.name, &h); err != nil || h.Status.Phase != api.HostReady {
		t.Fatalf("host %s after the failover: %v, %s", a.name, err, h.Status.Phase)
	}
	now := vc.holder()
	if now == dead {
		t.Fatalf("the dead server %s still holds the VIP", dead.name)
	}
	holders := 0
	for _, s := range vc.servers {
		if s != dead && vc.hasVIP(s) {
			holders++
		}
	}
	if holders != 1 {
		t.Fatalf("%d live servers have the VIP, want 1", holders)
	}

	// The dead server goes; the others stay and the last cannot.
	wait.ForDetail(t, 30*time.Second, dead.name+" not ready in the list", func() (bool, string) {
		for _, s := range vc.serverList() {
			if s.Name == dead.name {
				return !s.Ready, "still ready"
			}
		}
		return false, "not listed"
	})
	out := vc.ouro("server", "remove", dead.name)
	if !strings.Contains(out, "removed") {
		t.Fatalf("server remove: %s", out)
	}
	if l := vc.serverList(); len(l) != 2 {
		t.Fatalf("after the removal the servers are %+v, want two", l)
	}
}
