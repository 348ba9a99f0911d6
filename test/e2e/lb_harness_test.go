package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/daemon"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/netplane"
)

// The load balancer tests and benchmarks talk to a load balancer the way
// its users would: HTTP requests to its VIP from a client on the tenant
// network (a Go client dialing inside a client instance's network
// namespace), and from the outside namespace through its floating IP.
// What runs on the LB hosts is found by the names the data plane gives it
// (docs: lb-contract): the namespace plane.NetNSPath(<LB UID>) and the
// files under <agent run dir>/lb/<LB UID>/.

// lbMemberPort is the port the web members serve on.
const lbMemberPort = 8080

// lbWebCommand is the command of a web member: it answers its own name
// (the hostname) at / and "ok" at /healthz, on lbMemberPort; removing
// /www/healthz makes its health check fail.
func lbWebCommand() []string {
	return []string{"sh", "-c", fmt.Sprintf(
		"mkdir -p /www && hostname > /www/index.html && echo ok > /www/healthz && exec httpd -f -p %d -h /www", lbMemberPort)}
}

// lbGet reads a load balancer through the API.
func (nc *netCloud) lbGet(project, name string) (*api.LoadBalancer, error) {
	var lb api.LoadBalancer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := nc.clientAs(nc.admin).Get(ctx, api.LoadBalancerKind, projectOr(project), name, &lb)
	return &lb, err
}

// describeLB summarises a load balancer's status for failure messages.
func describeLB(lb *api.LoadBalancer) string {
	var hosts, members []string
	for _, h := range lb.Status.Hosts {
		hosts = append(hosts, fmt.Sprintf("%s(%s ready=%v active=%v %s)", h.Name, h.Address, h.Ready, h.Active, h.Message))
	}
	for _, m := range lb.Status.Members {
		members = append(members, fmt.Sprintf("%s/%s %s %s %s", m.Pool, m.Instance, m.Address, m.State, m.Health))
	}
	var conds []string
	for _, c := range lb.Status.Conditions {
		conds = append(conds, fmt.Sprintf("%s=%v %s: %s", c.Type, c.Status, c.Reason, c.Message))
	}
	return fmt.Sprintf("phase %s vip %s fip %s hosts [%s] members [%s] conditions [%s]", lb.Status.Phase, lb.Status.VIP,
		lb.Status.FloatingIP, strings.Join(hosts, ", "), strings.Join(members, ", "), strings.Join(conds, "; "))
}

// waitLB waits until the load balancer's status satisfies ok and returns
// it.
func (nc *netCloud) waitLB(project, name string, timeout time.Duration, what string, ok func(*api.LoadBalancer) bool) *api.LoadBalancer {
	nc.t.Helper()
	var lb *api.LoadBalancer
	wait.ForDetail(nc.t, timeout, "load balancer "+name+": "+what, func() (bool, string) {
		var err error
		lb, err = nc.lbGet(project, name)
		if err != nil {
			return false, err.Error()
		}
		return ok(lb), describeLB(lb)
	})
	return lb
}

// waitLBActive waits until the load balancer is Active with every host
// ready and exactly one of them holding the VIP.
func (nc *netCloud) waitLBActive(project, name string) *api.LoadBalancer {
	nc.t.Helper()
	return nc.waitLB(project, name, 90*time.Second, "Active, every host ready, one active", func(lb *api.LoadBalancer) bool {
		if lb.Status.Phase != api.LBActive || lb.Status.VIP == "" || len(lb.Status.Hosts) == 0 {
			return false
		}
		active := 0
		for _, h := range lb.Status.Hosts {
			if !h.Ready {
				return false
			}
			if h.Active {
				active++
			}
		}
		return active == 1
	})
}

// memberHealth returns the health of every member of the load balancer by
// instance name, as its status says.
func memberHealth(lb *api.LoadBalancer) map[string]string {
	m := map[string]string{}
	for _, mb := range lb.Status.Members {
		m[mb.Instance] = mb.Health
	}
	return m
}

// waitMembersUp waits until the load balancer's members are exactly the
// named instances, each active and up.
func (nc *netCloud) waitMembersUp(project, name string, timeout time.Duration, want ...string) *api.LoadBalancer {
	nc.t.Helper()
	sort.Strings(want)
	return nc.waitLB(project, name, timeout, "members "+strings.Join(want, " ")+" up", func(lb *api.LoadBalancer) bool {
		var got []string
		for _, m := range lb.Status.Members {
			if m.State != api.MemberActive || m.Health != api.HealthUp {
				return false
			}
			got = append(got, m.Instance)
		}
		sort.Strings(got)
		return slices.Equal(got, want)
	})
}

// lbMembersCLI returns what `ouro lb members NAME -o json` says.
func (nc *netCloud) lbMembersCLI(project, name string) []api.LoadBalancerMember {
	nc.t.Helper()
	return listJSON[api.LoadBalancerMember](nc.cloud, "lb", "members", name, "--project", projectOr(project))
}

// lbNetns returns the path of the namespace of load balancer uid on the
// host of agent a.
func lbNetns(a *agentProc, uid string) string {
	return filepath.Join(agentNetnsDir(a.dir), netplane.InstanceNetNSName(uid))
}

// lbDir returns the directory of the data plane's files of load balancer
// uid on the host of agent a.
func lbDir(a *agentProc, uid string) string {
	return filepath.Join(daemon.RunDir(a.dir), "lb", uid)
}

// lbProcs returns the pids of the haproxy and keepalived processes of load
// balancer uid on the host of agent a: those in its namespace, and those
// whose command line names its directory; not the short-lived checks of a
// configuration the agent runs (haproxy -c, keepalived -t).
func lbProcs(a *agentProc, uid string) (haproxy, keepalived []int) {
	seen := map[int]bool{}
	for _, pid := range append(pidsInNetns(lbNetns(a, uid)), processesMentioning(lbDir(a, uid))...) {
		if seen[pid] {
			continue
		}
		seen[pid] = true
		comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		if slices.ContainsFunc(strings.Split(string(cmdline), "\x00"), func(arg string) bool {
			return arg == "-c" || arg == "-t" || arg == "--config-test"
		}) {
			continue
		}
		switch strings.TrimSpace(string(comm)) {
		case "haproxy":
			haproxy = append(haproxy, pid)
		case "keepalived":
			keepalived = append(keepalived, pid)
		}
	}
	sort.Ints(haproxy)
	sort.Ints(keepalived)
	return haproxy, keepalived
}

// killLBProcs SIGKILLs the haproxy and keepalived processes of load
// balancer uid on the host of a and waits until they are gone.
func killLBProcs(tb testing.TB, a *agentProc, uid string) {
	tb.Helper()
	wait.ForDetail(tb, 10*time.Second, "haproxy and keepalived of "+uid+" on "+a.name+" dead", func() (bool, string) {
		h, k := lbProcs(a, uid)
		for _, pid := range append(h, k...) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		return len(h)+len(k) == 0, fmt.Sprintf("haproxy %v keepalived %v", h, k)
	})
}

// holdsVIP reports whether the load balancer's namespace on the host of a
// has the VIP on one of its interfaces.
func holdsVIP(a *agentProc, uid, vip string) bool {
	ns := lbNetns(a, uid)
	if _, err := os.Stat(ns); err != nil {
		return false
	}
	out, err := runIn(ns, 5*time.Second, "ip", "-o", "-4", "addr", "show")
	return err == nil && strings.Contains(out, " "+vip+"/")
}

// vipHolder waits until exactly one host of the cloud, dead ones left
// out, holds the VIP of load balancer lb in its namespace, and returns its
// agent. (A host whose power was cut keeps its namespaces here, addresses
// and all: only its link is down.)
func (nc *netCloud) vipHolder(lb *api.LoadBalancer, dead ...*agentProc) *agentProc {
	nc.t.Helper()
	var holder *agentProc
	wait.ForDetail(nc.t, 30*time.Second, "one host holding VIP "+lb.Status.VIP, func() (bool, string) {
		var on []string
		holder = nil
		for _, h := range nc.hosts {
			if slices.Contains(dead, h) {
				continue
			}
			if holdsVIP(h, lb.Metadata.UID, lb.Status.VIP) {
				holder = h
				on = append(on, h.name)
			}
		}
		return len(on) == 1, fmt.Sprintf("held on %v", on)
	})
	return holder
}

// lbPowerCut stops an LB host as a power cut would: SIGKILL to its agent
// and to the haproxy and keepalived of load balancer uid, and its
// underlay link down (the switch's port of the host), so nothing of the
// host answers or sends any more.
func (nc *netCloud) lbPowerCut(a *agentProc, uid string) {
	nc.t.Helper()
	a.kill()
	killLBProcs(nc.t, a, uid)
	ip(nc.t, nc.u.sw, "link", "set", a.name, "down")
}

// lbPowerBack brings a host cut by lbPowerCut back: its link up and its
// agent started again (which waits until the host is Ready).
func (nc *netCloud) lbPowerBack(a *agentProc) {
	nc.t.Helper()
	ip(nc.t, nc.u.sw, "link", "set", a.name, "up")
	nc.startAgent(a)
}

// killLBLeftovers registers a cleanup that kills every haproxy and
// keepalived process left in a namespace of the cloud's agents, whatever
// the data plane did: it runs before the agents' own cleanup. When the
// test failed and OURO_E2E_LOGDIR is set, the whole output of the server
// and of the agents is kept there first.
func (nc *netCloud) killLBLeftovers() {
	nc.t.Cleanup(func() {
		if dir := os.Getenv("OURO_E2E_LOGDIR"); dir != "" && nc.t.Failed() {
			dir = filepath.Join(dir, strings.ReplaceAll(nc.t.Name(), "/", "_"))
			os.MkdirAll(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "server.log"), []byte(nc.server.out.String()), 0o644)
			for _, a := range nc.hosts {
				os.WriteFile(filepath.Join(dir, "agent-"+a.name+".log"), []byte(a.out.String()), 0o644)
				matches, _ := filepath.Glob(filepath.Join(daemon.RunDir(a.dir), "lb", "*", "*.conf"))
				cfgs, _ := filepath.Glob(filepath.Join(daemon.RunDir(a.dir), "lb", "*", "*.cfg"))
				for _, m := range append(matches, cfgs...) {
					if b, err := os.ReadFile(m); err == nil {
						os.WriteFile(filepath.Join(dir, a.name+"-"+filepath.Base(m)), b, 0o644)
					}
				}
			}
		}
		for _, a := range nc.hosts {
			for _, ns := range mountsUnder(agentNetnsDir(a.dir)) {
				for _, pid := range pidsInNetns(ns) {
					comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
					if c := strings.TrimSpace(string(comm)); c == "haproxy" || c == "keepalived" {
						syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
		}
	})
}

// logLBNetwork logs, for a failure's diagnosis, where the VIP and the
// floating IP of lb are: the addresses of its namespace on every host, the
// proxy ARP entries of every host and the gateway's neighbours.
func (nc *netCloud) logLBNetwork(lb *api.LoadBalancer) {
	nc.t.Helper()
	var b strings.Builder
	for _, a := range nc.hosts {
		addrs, _ := runIn(lbNetns(a, lb.Metadata.UID), 5*time.Second, "ip", "-o", "-4", "addr", "show", "dev", "eth0")
		proxy, _ := runIn(a.netns, 5*time.Second, "ip", "neigh", "show", "proxy")
		fmt.Fprintf(&b, "%s: lb namespace: %s; proxy ARP: %s\n", a.name, strings.TrimSpace(addrs), strings.TrimSpace(proxy))
	}
	neigh, _ := runIn(nc.u.gateway, 5*time.Second, "ip", "neigh", "show")
	fmt.Fprintf(&b, "gateway neighbours:\n%s", neigh)
	for _, h := range nc.u.hosts {
		link, _ := runIn(h.netns, 5*time.Second, "ip", "-o", "link", "show", "dev", "eth0")
		fmt.Fprintf(&b, "%s underlay: %s\n", h.name, strings.TrimSpace(link))
	}
	nc.t.Logf("load balancer %s (VIP %s, floating IP %s):\n%s", lb.Metadata.Name, lb.Status.VIP, lb.Status.FloatingIP, b.String())
}

// lbLeftovers lists what is left of load balancer uid on the host of a:
// processes (in its namespace there, or naming its directory there), its
// namespace, its files.
func lbLeftovers(a *agentProc, uid string) []string {
	var out []string
	if h, k := lbProcs(a, uid); len(h)+len(k) > 0 {
		out = append(out, fmt.Sprintf("haproxy %v keepalived %v", h, k))
	}
	for _, pid := range processesMentioning(lbDir(a, uid)) {
		cmd, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		out = append(out, fmt.Sprintf("process %d: %s", pid, strings.ReplaceAll(strings.TrimSpace(string(cmd)), "\x00", " ")))
	}
	ns := lbNetns(a, uid)
	for _, m := range mountsUnder(agentNetnsDir(a.dir)) {
		if m == ns {
			out = append(out, "namespace "+m)
		}
	}
	if _, err := os.Stat(ns); err == nil {
		out = append(out, "file "+ns)
	}
	if _, err := os.Stat(lbDir(a, uid)); err == nil {
		out = append(out, "directory "+lbDir(a, uid))
	}
	return out
}

// lbCreateArgs returns the CLI arguments that create a load balancer with
// one listener on port 80 sending to members' lbMemberPort, checked with
// an http check of /healthz; extra is appended.
func lbCreateArgs(name, network string, extra ...string) []string {
	return append([]string{"lb", "create", name, "--network", network, "--listen", "80",
		"--port", strconv.Itoa(lbMemberPort), "--health", "http:/healthz"}, extra...)
}

// cordonAllBut cordons every host but the named ones and returns a
// function that uncordons them.
func (nc *netCloud) cordonAllBut(keep ...string) func() {
	nc.t.Helper()
	var cordoned []string
	for _, h := range nc.hosts {
		if !slices.Contains(keep, h.name) {
			nc.setUnschedulable(h.name, true)
			cordoned = append(cordoned, h.name)
		}
	}
	return func() {
		for _, h := range cordoned {
			nc.setUnschedulable(h, false)
		}
	}
}

// lbJSON returns `ouro lb get NAME -o json` decoded, and its raw text.
func (c *cloud) lbJSON(project, name string) (api.LoadBalancer, string) {
	c.t.Helper()
	out := c.ouro("lb", "get", name, "--project", projectOr(project), "-o", "json")
	var lb api.LoadBalancer
	if err := json.Unmarshal([]byte(out), &lb); err != nil {
		c.t.Fatalf("lb get %s -o json: %v in %q", name, err, out)
	}
	return lb, out
}

// waitEvents waits until the events of the default project mention every
// one of words.
func (nc *netCloud) waitEvents(what string, words ...string) {
	nc.t.Helper()
	wait.ForDetail(nc.t, 30*time.Second, "events: "+what, func() (bool, string) {
		out := nc.ouro("events", "--project", "default")
		for _, w := range words {
			if !strings.Contains(out, w) {
				return false, out
			}
		}
		return true, ""
	})
}
