package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// These tests check the harness itself: the underlay carries packets where
// it should, the dialer reaches into a namespace, and nothing is left when
// a test ends.

func TestUnderlayConnectsAndCleansUp(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedFile(t, "/bin/busybox")
	var u *underlay
	t.Run("build", func(t *testing.T) {
		u = newUnderlay(t, 2)
		for _, tc := range []struct {
			from, to string
		}{
			{u.hosts[0].netns, hostIP(1)},
			{u.hosts[1].netns, serverIP},
			{u.server, gatewayIP},
			{u.hosts[0].netns, outsideIP}, // through the gateway's NAT
			{u.outside, hostIP(1)},        // the provider route to the cluster network
		} {
			if out, err := runIn(tc.from, 10*time.Second, "busybox", "ping", "-c1", "-W2", tc.to); err != nil {
				t.Errorf("ping %s from %s: %v\n%s", tc.to, filepath.Base(tc.from), err, out)
			}
		}
		if rs := ruleset(t, u.gateway); !regexp.MustCompile(`counter packets [1-9]`).MatchString(rs) {
			t.Errorf("the gateway masqueraded nothing:\n%s", rs)
		}
		// A host namespace is not the test's: its loopback is its own.
		if out, err := runIn(u.hosts[0].netns, 10*time.Second, "ip", "-o", "addr", "show", "eth0"); err != nil || !strings.Contains(out, hostIP(0)+"/24") {
			t.Errorf("h1 eth0: %v %s", err, out)
		}

		// The dialer reaches a listener only the server namespace can see.
		srv := commandIn(u.server, "busybox", "nc", "-ll", "-p", "7000", "-e", "echo", "hello")
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
		dial := netnsDialer(u.server)
		wait.ForDetail(t, 10*time.Second, "nc in the server namespace", func() (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			conn, err := dial(ctx, "tcp", serverIP+":7000")
			if err != nil {
				return false, err.Error()
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(2 * time.Second))
			line, err := bufio.NewReader(conn).ReadString('\n')
			return line == "hello\n", fmt.Sprintf("read %q: %v", line, err)
		})
		// The dialing thread went back: the test's own namespace has no
		// 10.99.0.0/24.
		if out, err := exec.Command("ip", "-o", "addr").Output(); err == nil && strings.Contains(string(out), "10.99.0.") {
			t.Errorf("the test's namespace has an underlay address:\n%s", out)
		}
	})
	if u == nil {
		t.Fatal("no underlay")
	}
	ents, _ := os.ReadDir(netnsDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), u.prefix) {
			t.Errorf("namespace %s outlives its test", e.Name())
		}
	}
}

func TestNetCloudRunsServerAndAgentsInNamespaces(t *testing.T) {
	nc := newNetCloud(t, 2)
	hosts := listJSON[api.Host](nc.cloud, "host", "list")
	want := map[string]string{"h1": hostIP(0), "h2": hostIP(1)}
	for _, h := range hosts {
		if want[h.Metadata.Name] != h.Status.Address || h.Status.Phase != api.HostReady {
			t.Errorf("host %s: address %q phase %s, want %q Ready", h.Metadata.Name, h.Status.Address, h.Status.Phase, want[h.Metadata.Name])
		}
		delete(want, h.Metadata.Name)
	}
	if len(want) > 0 {
		t.Errorf("hosts missing from host list: %v", want)
	}
	// Exec reaches through the server to an agent on the underlay.
	in := nc.createOn("h2", vm{name: "probe"})
	if got, err := nc.exec("", "probe", "hostname"); err != nil || strings.TrimSpace(got) != "probe" {
		t.Errorf("exec in probe on %s: %v %q", in.Status.Host, err, got)
	}
}
