package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// bootstrapVIP is the API VIP of the three-server bootstrap, on the
// underlay's network.
const bootstrapVIP = "10.99.0.100"

// bootstrapper runs `ouro bootstrap` from the underlay's server namespace
// (the operator's laptop), with its own known_hosts and client
// configuration in dir.
func bootstrapper(u *underlay, dir string) func(args ...string) (string, error) {
	known := filepath.Join(dir, "known_hosts")
	config := filepath.Join(dir, "client.yaml")
	return func(args ...string) (string, error) {
		cmd := commandIn(u.server, ouroBin, append([]string{"bootstrap", "--known-hosts", known}, args...)...)
		cmd.Env = append(os.Environ(), "OURO_CONFIG="+config)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}

// serverList lists the servers of the cloud behind context lab.
func labServers(t testing.TB, lab *cloud) []api.Server {
	t.Helper()
	var l api.ServerList
	if out := lab.ouro("--context", "lab", "server", "list", "-o", "json"); json.Unmarshal([]byte(out), &l) != nil {
		t.Fatalf("server list: %s", out)
	}
	return l.Items
}

// outages is what apiOutages saw.
type outages struct {
	probes, failed int
	longest        time.Duration
}

// apiOutages probes the API through lab's context (a CLI process each
// time, with the client's own retries) every 200 ms until stop is closed,
// and returns how many probes failed and the longest time it did not
// answer.
func apiOutages(lab *cloud, stop <-chan struct{}) <-chan outages {
	res := make(chan outages, 1)
	go func() {
		var o outages
		var down time.Time
		for {
			select {
			case <-stop:
				res <- o
				return
			case <-time.After(200 * time.Millisecond):
			}
			cmd := commandIn(lab.netns, ouroBin, "--context", "lab", "whoami")
			cmd.Env = append(os.Environ(), "OURO_CONFIG="+lab.config)
			cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
			timer := time.AfterFunc(3*time.Second, func() { cmd.Process.Kill() })
			err := cmd.Run()
			timer.Stop()
			now := time.Now()
			o.probes++
			if err != nil {
				o.failed++
			}
			switch {
			case err != nil && down.IsZero():
				down = now
			case err == nil && !down.IsZero():
				o.longest = max(o.longest, now.Sub(down))
				down = time.Time{}
			}
		}
	}()
	return res
}

// TestBootstrapThreeServers bootstraps three servers joined into one
// stacked etcd behind an API VIP, and an agent, onto four machines
// (namespaces with their own sshd). Every server answers; `ouro bootstrap
// upgrade` with a changed binary rolls through the servers, then the
// agent, with the API answering through the VIP and an instance running
// on; and the VIP moves when the server holding it is killed.
func TestBootstrapThreeServers(t *testing.T) {
	u := newUnderlay(t, 4)
	dir := containerTempDir(t)
	key, hosts := startSSHHosts(t, u, dir)
	bootstrap := bootstrapper(u, dir)
	inv := inventoryFor(t, dir, key, hosts, map[string]string{"h1": "server", "h2": "server", "h3": "server", "h4": "agent"},
		"apiVIP: "+bootstrapVIP+"/24\n")

	start := time.Now()
	out, err := bootstrap("-i", inv, "--accept-new-host-keys")
	if err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, out)
	}
	t.Logf("bootstrap of 3 servers and 1 agent took %s:\n%s", time.Since(start).Round(time.Millisecond), out)

	lab := &cloud{t: t, dir: dir, config: filepath.Join(dir, "client.yaml"), netns: u.server, agents: map[string]*agentProc{}}
	if ctx := lab.ouro("context", "list"); !strings.Contains(ctx, "https://"+bootstrapVIP+":7443") {
		t.Fatalf("the context does not use the VIP:\n%s", ctx)
	}
	servers := labServers(t, lab)
	holders := 0
	for _, s := range servers {
		if !s.Ready {
			t.Errorf("server %s is not ready", s.Name)
		}
		if s.HoldsAPIVIP {
			holders++
		}
	}
	if len(servers) != 3 || holders != 1 {
		t.Fatalf("servers %+v: want 3 ready, one holding the VIP", servers)
	}
	// Every server answers on its own address.
	for _, h := range hosts[:3] {
		lab.ouro("--context", "lab", "--server", "https://"+h.ip+":7443", "whoami")
	}
	if out, err := bootstrap("-i", inv); err != nil || !strings.Contains(out, "Nothing to change.") {
		t.Fatalf("second bootstrap: %v\n%s", err, out)
	}

	lab.ouro("--context", "lab", "image", "import", "busybox", busyboxRootfs(t), "--public")
	lab.ouro("--context", "lab", "instance", "create", "before", "--image", "busybox", "--flavor", "tiny", "--",
		"sh", "-c", "echo still-here; sleep 3600")
	waitLabPhase(t, lab, "before", api.PhaseRunning)

	// A changed binary (this one with bytes appended: it still runs).
	newBin := filepath.Join(dir, "release")
	if err := os.MkdirAll(newBin, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(ouroBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(newBin, "ouro-linux-amd64"), append(b, "\nupgraded\n"...), 0o755); err != nil {
		t.Fatal(err)
	}
	agentStarted := func() time.Time {
		var h api.Host
		if err := json.Unmarshal([]byte(lab.ouro("--context", "lab", "host", "get", "h4", "-o", "json")), &h); err != nil {
			t.Fatal(err)
		}
		return h.Status.AgentStartTime
	}
	agentBefore := agentStarted()
	stop := make(chan struct{})
	outages := apiOutages(lab, stop)
	start = time.Now()
	out, err = bootstrap("upgrade", "-i", inv, "--binary-dir", newBin)
	close(stop)
	seen := <-outages
	if err != nil {
		t.Fatalf("bootstrap upgrade: %v\n%s", err, out)
	}
	t.Logf("upgrade took %s; of %d probes through the VIP %d failed, the longest outage %s:\n%s", time.Since(start).Round(time.Millisecond),
		seen.probes, seen.failed, seen.longest.Round(time.Millisecond), out)
	var order []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[1] == "upgrade" && f[3] == "changed" {
			order = append(order, f[0])
		}
	}
	if got := strings.Join(order, " "); got != "h1 h2 h3 h4" {
		t.Errorf("upgraded in the order %q, want servers then the agent: h1 h2 h3 h4", got)
	}
	// The VIP moves once (when its holder restarts); a client retrying
	// sees a gap of a few seconds at most.
	if seen.probes < 10 || seen.longest > 15*time.Second {
		t.Errorf("the API did not answer for %s during the upgrade (%d probes)", seen.longest, seen.probes)
	}
	if l := labServers(t, lab); len(l) != 3 {
		t.Fatalf("after the upgrade: %+v", l)
	}
	// The upgrade waited for the restarted agent itself, not for a Ready
	// left from before its restart.
	if after := agentStarted(); agentBefore.IsZero() || !after.After(agentBefore) {
		t.Errorf("agent start time %s before the upgrade, %s after: want a later one", agentBefore, after)
	}
	if inst := waitLabPhase(t, lab, "before", api.PhaseRunning); inst.Status.RestartCount != 0 {
		t.Errorf("the instance restarted during the upgrade: %+v", inst.Status)
	}
	if out, err := bootstrap("upgrade", "-i", inv, "--binary-dir", newBin); err != nil || strings.Contains(out, " changed") {
		t.Fatalf("a second upgrade changed something: %v\n%s", err, out)
	}

	// The server holding the VIP dies: another takes it.
	var dead string
	for _, s := range labServers(t, lab) {
		if s.HoldsAPIVIP {
			dead = s.Name
		}
	}
	var deadHost sshHost
	for _, h := range hosts {
		if h.name == dead {
			deadHost = h
		}
	}
	pidText, err := os.ReadFile(filepath.Join(deadHost.data, "ouro-server.pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil || pid <= 1 {
		t.Fatalf("pid of %s's server: %v %q", dead, err, pidText)
	}
	killed := time.Now()
	syscall.Kill(pid, syscall.SIGKILL)
	wait.ForDetail(t, 60*time.Second, "another server holding the VIP", func() (bool, string) {
		out, errOut, err := lab.run(nil, "--context", "lab", "server", "list", "-o", "json")
		var l api.ServerList
		if err != nil || json.Unmarshal([]byte(out), &l) != nil {
			return false, errOut
		}
		for _, s := range l.Items {
			if s.HoldsAPIVIP && s.Name != dead {
				return true, ""
			}
		}
		return false, out
	})
	t.Logf("the VIP moved off %s in %s", dead, time.Since(killed).Round(time.Millisecond))
	lab.ouro("--context", "lab", "instance", "create", "after", "--image", "busybox", "--flavor", "tiny", "--", "sleep", "3600")
	waitLabPhase(t, lab, "after", api.PhaseRunning)
}

// waitLabPhase waits until instance name of the cloud behind context lab
// has phase.
func waitLabPhase(t testing.TB, lab *cloud, name string, phase api.InstancePhase) *api.Instance {
	t.Helper()
	var inst api.Instance
	wait.ForDetail(t, 2*time.Minute, fmt.Sprintf("instance %s %s", name, phase), func() (bool, string) {
		out, errOut, err := lab.run(nil, "--context", "lab", "instance", "get", name, "-o", "json")
		if err != nil || json.Unmarshal([]byte(out), &inst) != nil {
			return false, errOut
		}
		return inst.Status.Phase == phase, string(inst.Status.Phase)
	})
	return &inst
}
