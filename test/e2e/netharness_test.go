package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/netplane"
)

// netCloud is a cloud whose server and hosts each run in their own
// network namespace on an underlay (see underlay), so instances on
// different hosts talk over real VXLAN between real addresses.
type netCloud struct {
	*cloud
	u     *underlay
	hosts []*agentProc
}

// newNetCloud builds the underlay, starts the server in its namespace at
// 10.99.0.2 and one agent per host namespace, and imports busybox. The CLI
// and API clients of the cloud run in the server's namespace.
func newNetCloud(t testing.TB, hosts int) *netCloud {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedBinary(t, "runc")
	testenv.NeedBinary(t, "dnsmasq")
	u := newUnderlay(t, hosts)
	dir := containerTempDir(t)
	c := &cloud{t: t, dir: dir, serverDir: filepath.Join(dir, "server"), agents: map[string]*agentProc{}, netns: u.server}
	// Embedded etcd has the server namespace's loopback to itself.
	c.serverArgs = []string{"server", "--data-dir", c.serverDir, "--listen", serverIP + ":7443",
		"--etcd-client-url", "http://127.0.0.1:2379", "--etcd-peer-url", "http://127.0.0.1:2380",
		"--cert-host", serverIP, "--name", "srv", "--log-level", "debug"}
	c.url = "https://" + serverIP + ":7443"
	c.startServer()
	c.writeConfig()
	nc := &netCloud{cloud: c, u: u}
	for _, h := range u.hosts {
		nc.hosts = append(nc.hosts, c.addAgentIn(h.name, h.netns, h.ip, h.ip+":7444"))
	}
	c.importBusybox()
	return nc
}

// hostNetns returns the namespace path of the named host.
func (nc *netCloud) hostNetns(name string) string {
	nc.t.Helper()
	for _, h := range nc.u.hosts {
		if h.name == name {
			return h.netns
		}
	}
	nc.t.Fatalf("no host %q", name)
	return ""
}

// vm describes an instance to create in a netCloud.
type vm struct {
	project, name, network string
	groups                 []string
	// command is the instance's command; default sleep.
	command []string
}

// createArgs returns the CLI arguments that create v.
func (v vm) createArgs() []string {
	args := []string{"instance", "create", v.name, "--image", "busybox", "--flavor", "tiny"}
	if v.project != "" {
		args = append(args, "--project", v.project)
	}
	if v.network != "" {
		args = append(args, "--network", v.network)
	}
	for _, g := range v.groups {
		args = append(args, "--security-group", g)
	}
	cmd := v.command
	if len(cmd) == 0 {
		cmd = []string{"sleep", "3600"}
	}
	return append(append(args, "--"), cmd...)
}

// create creates v through the CLI and waits until it runs; it returns the
// instance as it runs.
func (nc *netCloud) create(v vm) *api.Instance {
	nc.t.Helper()
	nc.ouro(v.createArgs()...)
	return nc.waitPhase(projectOr(v.project), v.name, api.PhaseRunning)
}

// createOn creates v on the named host: the instance is created while
// every other host is cordoned, and the hosts are uncordoned after.
func (nc *netCloud) createOn(host string, v vm) *api.Instance {
	nc.t.Helper()
	var others []string
	for _, h := range nc.hosts {
		if h.name != host {
			others = append(others, h.name)
		}
	}
	for _, h := range others {
		nc.setUnschedulable(h, true)
	}
	defer func() {
		for _, h := range others {
			nc.setUnschedulable(h, false)
		}
	}()
	in := nc.create(v)
	if in.Status.Host != host {
		nc.t.Fatalf("%s runs on %q, want %s", v.name, in.Status.Host, host)
	}
	return in
}

// setUnschedulable cordons or uncordons a host through the API.
func (nc *netCloud) setUnschedulable(host string, on bool) {
	nc.t.Helper()
	cl := nc.clientAs(nc.admin)
	wait.ForDetail(nc.t, 10*time.Second, "host "+host+" unschedulable="+fmt.Sprint(on), func() (bool, string) {
		var h api.Host
		if err := cl.Get(context.Background(), api.HostKind, "", host, &h); err != nil {
			return false, err.Error()
		}
		if h.Spec.Unschedulable == on {
			return true, ""
		}
		h.Spec.Unschedulable = on
		if err := cl.Update(context.Background(), &h); err != nil {
			return false, err.Error() // a conflict: read again
		}
		return true, ""
	})
}

// projectOr returns p, or "default" when p is empty.
func projectOr(p string) string {
	if p == "" {
		return "default"
	}
	return p
}

// exec runs argv in an instance and returns its output (stdout then
// stderr) and error.
func (nc *netCloud) exec(project, name string, argv ...string) (string, error) {
	args := append([]string{"instance", "exec", name, "--project", projectOr(project), "--"}, argv...)
	out, errOut, err := nc.run(nil, args...)
	return out + errOut, err
}

// ping reports whether instance name gets an answer from target within two
// seconds. The ping runs in the instance's network namespace, from the
// host: inside the container, root of a user namespace holds no
// CAP_NET_RAW over the network namespace the network plane made, and
// busybox's ping needs a raw socket (docs/security.md).
func (nc *netCloud) ping(project, name, target string) (bool, string) {
	netns, err := nc.instanceNetns(project, name)
	if err != nil {
		return false, err.Error()
	}
	out, err := runIn(netns, 10*time.Second, "busybox", "ping", "-c1", "-W2", target)
	return err == nil, fmt.Sprintf("ping %s from %s: %v: %s", target, name, err, strings.TrimSpace(out))
}

// instanceNetns returns the path of the network namespace of container
// name on its host.
func (nc *netCloud) instanceNetns(project, name string) (string, error) {
	in, err := nc.instance(projectOr(project), name)
	if err != nil {
		return "", err
	}
	a, ok := nc.agents[in.Status.Host]
	if !ok {
		return "", fmt.Errorf("%s is on host %q, which has no agent here", name, in.Status.Host)
	}
	return filepath.Join(agentNetnsDir(a.dir), netplane.InstanceNetNSName(in.Metadata.UID)), nil
}

// waitPing waits until instance name reaches target.
func (nc *netCloud) waitPing(project, name, target string) {
	nc.t.Helper()
	wait.ForDetail(nc.t, 30*time.Second, name+" reaching "+target, func() (bool, string) {
		return nc.ping(project, name, target)
	})
}

// neverPing asserts that instance name does not reach target, trying
// twice.
func (nc *netCloud) neverPing(project, name, target string) {
	nc.t.Helper()
	for i := 0; i < 2; i++ {
		if ok, msg := nc.ping(project, name, target); ok {
			nc.t.Fatalf("%s reaches %s, and must not: %s", name, target, msg)
		}
	}
}

// wgetArgv fetches http://addr/ and prints the body, giving up after two
// seconds. (busybox 1.35's own wget -T crashes, so timeout(1) bounds it.)
func wgetArgv(addr string) []string {
	return []string{"timeout", "2", "wget", "-q", "-O", "-", "http://" + addr + "/"}
}

// fetch fetches http://addr/ from the namespace at path netns and returns
// the body.
func fetch(netns, addr string) (string, error) {
	return runIn(netns, 10*time.Second, "busybox", "timeout", "2", "busybox", "wget", "-q", "-O", "-", "http://"+addr+"/")
}

// webServer is the command of an instance that serves its hostname over
// HTTP on port.
func webServer(port int) []string {
	return []string{"sh", "-c", fmt.Sprintf("mkdir -p /www && hostname > /www/index.html && exec httpd -f -p %d -h /www", port)}
}

// iface returns the instance's first interface, waiting until it has an
// address.
func (nc *netCloud) iface(project, name string) api.Interface {
	nc.t.Helper()
	var ifc api.Interface
	wait.ForDetail(nc.t, 30*time.Second, name+" has an address", func() (bool, string) {
		in, err := nc.instance(projectOr(project), name)
		if err != nil {
			return false, err.Error()
		}
		if len(in.Status.Interfaces) == 0 || in.Status.Interfaces[0].IP == "" {
			return false, fmt.Sprintf("interfaces %+v", in.Status.Interfaces)
		}
		ifc = in.Status.Interfaces[0]
		return true, ""
	})
	return ifc
}

// hostNetwork reads the HostNetwork of a host.
func (nc *netCloud) hostNetwork(host string) (*api.HostNetwork, error) {
	var hn api.HostNetwork
	err := nc.clientAs(nc.admin).Get(context.Background(), api.HostNetworkKind, "", host, &hn)
	return &hn, err
}

// waitApplied waits until every host has applied its current HostNetwork.
func (nc *netCloud) waitApplied() {
	nc.t.Helper()
	for _, h := range nc.hosts {
		wait.ForDetail(nc.t, 30*time.Second, "host network of "+h.name+" applied", func() (bool, string) {
			hn, err := nc.hostNetwork(h.name)
			if api.IsNotFound(err) {
				return true, "" // nothing to apply
			}
			if err != nil {
				return false, err.Error()
			}
			ok := hn.Status.Applied && hn.Status.ObservedGeneration >= hn.Metadata.Generation
			return ok, fmt.Sprintf("generation %d, observed %d, applied %v: %s",
				hn.Metadata.Generation, hn.Status.ObservedGeneration, hn.Status.Applied, hn.Status.Message)
		})
	}
}

// listJSON runs a list command of the CLI with -o json and returns the
// items, whether the CLI prints a list object or a bare array.
func listJSON[T any](c *cloud, args ...string) []T {
	c.t.Helper()
	out := c.ouro(append(args, "-o", "json")...)
	var l api.List[T]
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		if err2 := json.Unmarshal([]byte(out), &l.Items); err2 != nil {
			c.t.Fatalf("ouro %s -o json: %v in %q", strings.Join(args, " "), err, out)
		}
	}
	return l.Items
}

// getJSON runs a get command of the CLI with -o json and decodes the
// object into v.
func (nc *netCloud) getJSON(v any, args ...string) {
	nc.t.Helper()
	out := nc.ouro(append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		nc.t.Fatalf("ouro %s -o json: %v in %q", strings.Join(args, " "), err, out)
	}
}

// fails runs the CLI, expects it to fail, and returns its stderr.
func (nc *netCloud) fails(args ...string) string {
	nc.t.Helper()
	out, errOut, err := nc.run(nil, args...)
	if err == nil {
		nc.t.Fatalf("ouro %s succeeded, want an error; it said %s", strings.Join(args, " "), out)
	}
	return errOut
}
