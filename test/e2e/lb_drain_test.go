package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/lbplane/haproxy"
)

// lbSlowCommand is lbWebCommand with a CGI script, /cgi-bin/slow?N, that
// answers the member's name after N seconds: a long connection.
func lbSlowCommand() []string {
	return []string{"sh", "-c", "mkdir -p /www/cgi-bin && hostname > /www/index.html && echo ok > /www/healthz && " +
		`printf '#!/bin/sh\necho Content-Type: text/plain\necho\nsleep ${QUERY_STRING:-5}\nhostname\n' > /www/cgi-bin/slow && ` +
		fmt.Sprintf("chmod +x /www/cgi-bin/slow && exec httpd -f -p %d -h /www", lbMemberPort)}
}

// slowResult is the outcome of one long request.
type slowResult struct {
	body string
	err  error
	at   time.Time
}

// startSlow sends n requests of GET /cgi-bin/slow?secs to addr at once
// from the namespace at netns; their results come on the channel.
func startSlow(netns, addr string, n, secs int) <-chan slowResult {
	hc := httpClientIn(netns, time.Duration(secs+30)*time.Second)
	out := make(chan slowResult, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			body, err := fetchURL(hc, fmt.Sprintf("http://%s/cgi-bin/slow?%d", addr, secs), "")
			out <- slowResult{body: body, err: err, at: time.Now()}
		})
	}
	return out
}

// haproxySessions returns the current sessions of the member with
// instance UID uid in the HAProxy of load balancer lbUID on the host of
// a, as its runtime API says (the agent reports sessions only of draining
// members).
func haproxySessions(a *agentProc, lbUID, uid string) (int, error) {
	rt := haproxy.Runtime{Socket: filepath.Join(lbDir(a, lbUID), "haproxy.sock")}
	servers, err := rt.Servers()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range servers {
		if s.Name == haproxy.ServerName(uid) {
			n += s.Sessions
		}
	}
	return n, nil
}

// haproxyDraining reports whether the member with instance UID uid is set
// to drain in the HAProxy of load balancer lbUID on the host of a.
func haproxyDraining(a *agentProc, lbUID, uid string) (bool, error) {
	rt := haproxy.Runtime{Socket: filepath.Join(lbDir(a, lbUID), "haproxy.sock")}
	servers, err := rt.Servers()
	if err != nil {
		return false, err
	}
	found := false
	for _, s := range servers {
		if s.Name == haproxy.ServerName(uid) {
			if !s.Draining() {
				return false, nil
			}
			found = true
		}
	}
	return found, nil
}

// TestLBDrain scales a group in while a long request is open on the
// leaving member: the member gets no new connection but keeps running
// until its connections finish, and goes then. With a short drain
// timeout, the leaving member goes when it runs out, long request or not.
func TestLBDrain(t *testing.T) {
	nc := newNetCloud(t, 1)
	nc.killLBLeftovers()
	nc.ouro(append([]string{"group", "create", "web", "--image", "busybox", "--flavor", "tiny", "--count", "2", "--"}, lbSlowCommand()...)...)
	ms := nc.waitMembersRunning("web", 2)
	nc.create(vm{name: "client"})
	client, err := nc.instanceNetns("", "client")
	if err != nil {
		t.Fatal(err)
	}
	nc.ouro(lbCreateArgs("web", "default", "--group", "web", "--drain-timeout", "60s", "--wait")...)
	lb := nc.waitMembersUp("", "web", 30*time.Second, "web-0", "web-1")
	waitAnswers(t, client, vipAddr(lb), 30*time.Second, "web-0", "web-1")
	leaving := ms["web-1"].Metadata.UID

	// Long requests on both members (round robin), then scale in.
	slow := startSlow(client, vipAddr(lb), 4, 8)
	wait.ForDetail(t, 10*time.Second, "a long connection on web-1", func() (bool, string) {
		n, err := haproxySessions(nc.hosts[0], lb.Metadata.UID, leaving)
		return n > 0, fmt.Sprintf("%d sessions, %v", n, err)
	})
	load := startLoad(t, client, vipAddr(lb), 1, 5*time.Second)
	nc.ouro("group", "scale", "web", "1")
	scaled := time.Now()
	nc.waitLB("", "web", 10*time.Second, "web-1 draining", func(lb *api.LoadBalancer) bool {
		for _, m := range lb.Status.Members {
			if m.Instance == "web-1" {
				return m.State == api.MemberDraining
			}
		}
		return false
	})
	if table := nc.ouro("lb", "members", "web"); !strings.Contains(table, "draining") {
		t.Errorf("lb members does not show web-1 draining:\n%s", table)
	}
	in, err := nc.instance("default", "web-1")
	if err != nil || in.Metadata.DeletionTimestamp == nil || !slices.Contains(in.Metadata.Finalizers, api.FinalizerLoadBalancer) {
		t.Fatalf("web-1 while draining: %v; want it being deleted, held by %s: %+v", err, api.FinalizerLoadBalancer, in.Metadata)
	}
	if rc := runcState(t, leaving); rc == nil || rc.Status != "running" {
		t.Fatalf("web-1's container while draining: %+v; want it running (phase %s)", rc, in.Status.Phase)
	}
	// Once the data plane drains it, no new connection goes to it.
	wait.ForDetail(t, 10*time.Second, "web-1 draining in haproxy", func() (bool, string) {
		d, err := haproxyDraining(nc.hosts[0], lb.Metadata.UID, leaving)
		return d, fmt.Sprint(err)
	})
	t.Logf("scale-in → web-1 draining in haproxy after %v", time.Since(scaled).Round(10*time.Millisecond))
	draining := time.Now()
	load.waitAnswersSince(t, draining, 30, 30*time.Second)
	if got := names(load.answersSince(draining)); !slices.Equal(got, []string{"web-0"}) {
		t.Errorf("while web-1 drains, new requests are answered by %v; want web-0 only", got)
	}
	var bodies []string
	for range 4 {
		r := <-slow
		if r.err != nil {
			t.Errorf("a long request failed at %s (%v after the scale-in): %v", r.at.Format("15:04:05.000"), r.at.Sub(scaled).Round(time.Millisecond), r.err)
		}
		bodies = append(bodies, r.body)
	}
	slices.Sort(bodies)
	if !slices.Equal(bodies, []string{"web-0", "web-0", "web-1", "web-1"}) {
		t.Errorf("long requests answered by %v; want two by each member", bodies)
	}
	finished := time.Now()
	wait.ForDetail(t, 30*time.Second, "web-1 gone once its connections finished", func() (bool, string) {
		_, err := nc.instance("default", "web-1")
		return api.IsNotFound(err), fmt.Sprint(err)
	})
	t.Logf("scale-in → web-1 gone %v after its last long request finished (%v after the scale-in)",
		time.Since(finished).Round(10*time.Millisecond), time.Since(scaled).Round(10*time.Millisecond))
	nc.waitMembersUp("", "web", 30*time.Second, "web-0")
	load.expectNoFailure(t, "scale-in with long connections")

	// A drain timeout of 3 s: the leaving member goes after it, with a
	// request of 60 s still open.
	nc.ouro("lb", "delete", "web", "--wait")
	nc.ouro(lbCreateArgs("short", "default", "--group", "web", "--drain-timeout", "3s", "--wait")...)
	nc.ouro("group", "scale", "web", "2")
	ms = nc.waitMembersRunning("web", 2)
	lb = nc.waitMembersUp("", "short", 30*time.Second, "web-0", "web-1")
	leaving = ms["web-1"].Metadata.UID
	slow = startSlow(client, vipAddr(lb), 2, 60)
	wait.ForDetail(t, 10*time.Second, "a long connection on web-1", func() (bool, string) {
		n, err := haproxySessions(nc.hosts[0], lb.Metadata.UID, leaving)
		return n > 0, fmt.Sprintf("%d sessions, %v", n, err)
	})
	nc.ouro("group", "scale", "web", "1")
	scaled = time.Now()
	wait.ForDetail(t, 30*time.Second, "web-1 gone after the drain timeout", func() (bool, string) {
		_, err := nc.instance("default", "web-1")
		return api.IsNotFound(err), fmt.Sprint(err)
	})
	gone := time.Since(scaled)
	t.Logf("scale-in with a 60 s request open and a 3 s drain timeout → web-1 gone after %v", gone.Round(10*time.Millisecond))
	if gone < 3*time.Second {
		t.Errorf("web-1 went after %v, before its drain timeout of 3 s", gone)
	}
	// The request on web-1 was cut with it; the one on web-0 goes on.
	// (Cut after its headers, it ends without an error but with no body.)
	r := <-slow
	if r.err == nil && r.body != "" {
		t.Errorf("the first long request to end answered %q; want the one on web-1 cut", r.body)
	}
}
