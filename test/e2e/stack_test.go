package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/netplane"
)

// webExample is the web tier users are shown, applied as it is.
var webExample = filepath.Join("..", "..", "examples", "web", "stack.yaml")

// clientDoc is a second file of the web stack: a client instance on the
// web network, whose user data refers to the load balancer's VIP.
const clientDoc = `kind: Instance
metadata:
  name: client
spec:
  image: busybox
  flavor: ${param.flavor}
  networks:
  - network: web
  userData: lb=${LoadBalancer/web.status.vip}
  command:
  - sleep
  - "3600"
`

// editExample writes a copy of the web example with each of the edits
// (old → new) made, each exactly once, and returns its path.
func editExample(t *testing.T, dir, name string, edits ...[2]string) string {
	t.Helper()
	data, err := os.ReadFile(webExample)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, e := range edits {
		if n := strings.Count(s, e[0]); n != 1 {
			t.Fatalf("%s has %q %d times, want once: the test's edits need changing with the example", webExample, e[0], n)
		}
		s = strings.Replace(s, e[0], e[1], 1)
	}
	return writeFile(t, dir, name, s)
}

// webOwned is what the web stack owns, with or without its client.
func webOwned(client bool) []string {
	keys := []string{"InstanceGroup/web", "KeyPair/web", "LoadBalancer/web", "Network/web", "SecurityGroup/web"}
	if client {
		keys = append(keys, "Instance/client")
	}
	return keys
}

// TestStackWeb applies the web example (network, security group, key
// pair, group of web members, load balancer with a floating IP) with a
// second file (a client instance referring to the VIP) and
// follows it through its life: every resource appears and serves; a second
// apply changes nothing; an edit of a rule and of the count is planned as
// exactly those two changes and applied; an owned instance deleted by hand
// is reported as drift and comes back; a resource removed from the file is
// deleted; deleting the stack leaves nothing in the API or on the hosts.
func TestStackWeb(t *testing.T) {
	nc := newNetCloud(t, 2)
	nc.killHAProxyAtEnd()
	nc.ouro("fip", "pool", "create", "ext", "--cidr", underlayCIDR, "--range", "10.99.0.200-10.99.0.250")
	dir := t.TempDir()
	key := testPublicKey(t, "e2e@stack")
	clientFile := writeFile(t, dir, "client.yaml", clientDoc)
	// files are the -f arguments: the example and the client.
	files := func(example string, client bool) []string {
		args := []string{"-f", example}
		if client {
			args = append(args, "-f", clientFile)
		}
		return append(args, "--set", "publicKey="+key)
	}
	apply := func(example string, client bool) string {
		t.Helper()
		return nc.ouro(append([]string{"stack", "apply", "web", "--wait"}, files(example, client)...)...)
	}
	plan := func(example string, client bool) (string, string, int) {
		return nc.runCode(append([]string{"stack", "plan", "web"}, files(example, client)...)...)
	}

	out := apply(webExample, true)
	for _, r := range webOwned(true) {
		if !strings.Contains(strings.ToLower(out), strings.ToLower(r)) {
			t.Errorf("apply --wait does not show the progress of %s:\n%s", r, out)
		}
	}
	st := nc.waitStackApplied("", "web", 3*time.Minute)
	owned := nc.waitOwned("", "web", 30*time.Second, webOwned(true)...)

	// Through the CLI too, and as the file says.
	var n api.Network
	nc.getJSON(&n, "network", "get", "web")
	if n.Spec.CIDR != "10.20.0.0/24" {
		t.Errorf("network web has CIDR %q", n.Spec.CIDR)
	}
	var sg api.SecurityGroup
	nc.getJSON(&sg, "sg", "get", "web")
	if len(sg.Spec.Rules) != 2 || !hasPort(sg.Spec.Rules, 80) || !hasPort(sg.Spec.Rules, 22) {
		t.Errorf("security group web has rules %+v", sg.Spec.Rules)
	}
	if out := nc.ouro("keypair", "list"); !strings.Contains(out, "web") {
		t.Errorf("keypair list: %q", out)
	}
	var kp api.KeyPair
	if err := nc.clientAs(nc.admin).Get(context.Background(), api.KeyPairKind, "default", "web", &kp); err != nil || kp.Spec.PublicKey != key {
		t.Errorf("key pair web: %v, public key %q, want %q", err, kp.Spec.PublicKey, key)
	}
	for _, args := range [][]string{{"group", "get", "web"}, {"instance", "get", "client"}, {"lb", "get", "web"}} {
		nc.ouro(args...)
	}
	if list := nc.ouro("stack", "list"); !strings.Contains(list, "web") {
		t.Errorf("stack list: %q", list)
	}
	var got api.Stack
	nc.getJSON(&got, "stack", "get", "web")
	if got.Metadata.UID != st.Metadata.UID || len(got.Status.Resources) != len(webOwned(true)) {
		t.Errorf("stack get: %s", describeStack(&got))
	}
	for _, r := range got.Status.Resources {
		if o, ok := owned[r.Kind+"/"+r.Name]; !ok || o.UID != r.UID {
			t.Errorf("stack status has %s/%s with UID %s; the API has %+v", r.Kind, r.Name, r.UID, o)
		}
	}

	// It works: the members serve through the load balancer, from the
	// client on the network and through the floating IP from outside.
	members := nc.waitMembersRunning("web", 3)
	names := keysOf(members)
	lb := nc.waitStackLB(names...)
	client := nc.waitPhase("default", "client", api.PhaseRunning)
	if want := "lb=" + lb.Status.VIP; client.Spec.UserData != want {
		t.Errorf("client's user data %q, want %q (the reference resolved)", client.Spec.UserData, want)
	}
	clientNS, err := nc.instanceNetns("", "client")
	if err != nil {
		t.Fatal(err)
	}
	nc.waitAllAnswer(clientNS, net.JoinHostPort(lb.Status.VIP, "80"), names...)
	nc.waitAllAnswer(nc.u.outside, net.JoinHostPort(lb.Status.FloatingIP, "80"), names...)

	outputs := nc.stackOutputs("web")
	if outputs["vip"] != lb.Status.VIP || outputs["floatingIP"] != lb.Status.FloatingIP || outputs["url"] != "http://"+lb.Status.FloatingIP+"/" {
		t.Errorf("outputs %v; the load balancer has VIP %s, floating IP %s", outputs, lb.Status.VIP, lb.Status.FloatingIP)
	}
	var addrs []string
	for _, name := range names {
		addrs = append(addrs, members[name].Status.Interfaces[0].IP)
	}
	if want := strings.Join(addrs, ","); outputs["members"] != want {
		t.Errorf("output members %q, want %q", outputs["members"], want)
	}

	// Applying the same file again changes nothing, and says so.
	before := nc.ownedByStack("", "web")
	stBefore, _ := nc.stackGet("", "web")
	if out := apply(webExample, true); !strings.Contains(strings.ToLower(out), "unchanged") {
		t.Errorf("a second apply does not say unchanged:\n%s", out)
	}
	nc.waitStackApplied("", "web", time.Minute)
	nc.checkUnchangedObjects(before, nc.ownedByStack("", "web"))
	if stAfter, _ := nc.stackGet("", "web"); stAfter.Metadata.Generation != stBefore.Metadata.Generation {
		t.Errorf("a second apply of the same file moved the stack's generation from %d to %d",
			stBefore.Metadata.Generation, stAfter.Metadata.Generation)
	}
	if _, errOut, code := plan(webExample, true); code != 0 {
		t.Errorf("plan of the applied file: exit code %d, want 0: %s", code, errOut)
	}

	// An edit of a rule and of the count: plan shows exactly those two.
	edited := editExample(t, dir, "web.yaml", [2]string{"portMin: 22\n", "portMin: 2222\n"}, [2]string{"default: 3\n", "default: 4\n"})
	planOut, planErr, code := plan(edited, true)
	if code != 2 {
		t.Errorf("plan with changes: exit code %d, want 2\nstdout: %s\nstderr: %s", code, planOut, planErr)
	}
	checkPlan(t, planOut, map[string][]string{"SecurityGroup/web": {"rules", "2222"}, "InstanceGroup/web": {"count", "4"}},
		"Network/web", "KeyPair/web", "LoadBalancer/web", "Instance/client")
	apply(edited, true)
	nc.waitStackApplied("", "web", 3*time.Minute)
	nc.getJSON(&sg, "sg", "get", "web")
	if len(sg.Spec.Rules) != 2 || !hasPort(sg.Spec.Rules, 2222) || hasPort(sg.Spec.Rules, 22) {
		t.Errorf("after the edit, security group web has rules %+v", sg.Spec.Rules)
	}
	members = nc.waitMembersRunning("web", 4)
	names = keysOf(members)
	nc.waitStackLB(names...)
	nc.waitAllAnswer(nc.u.outside, net.JoinHostPort(lb.Status.FloatingIP, "80"), names...)

	// Drift: an owned instance deleted by hand is reported and comes back.
	old := nc.waitPhase("default", "client", api.PhaseRunning)
	nc.ouro("instance", "delete", "client")
	nc.waitDriftReported("web", "Instance", "client")
	wait.ForDetail(t, 2*time.Minute, "client back, as a new instance", func() (bool, string) {
		in, err := nc.instance("default", "client")
		if err != nil {
			return false, err.Error()
		}
		return in.Metadata.UID != old.Metadata.UID && in.Status.Phase == api.PhaseRunning && in.Metadata.Labels[api.LabelStack] == "web",
			fmt.Sprintf("uid %s (was %s) phase %s labels %v", in.Metadata.UID, old.Metadata.UID, in.Status.Phase, in.Metadata.Labels)
	})
	nc.waitStackApplied("", "web", time.Minute)

	// A field changed by hand (a rule deleted) is reported and put back.
	nc.getJSON(&sg, "sg", "get", "web")
	for _, r := range sg.Spec.Rules {
		if r.PortMin == 80 {
			nc.ouro("sg", "rule", "delete", "web", r.ID)
		}
	}
	nc.waitDriftReported("web", "SecurityGroup", "web")
	wait.ForDetail(t, time.Minute, "the rule for port 80 back", func() (bool, string) {
		nc.getJSON(&sg, "sg", "get", "web")
		return len(sg.Spec.Rules) == 2 && hasPort(sg.Spec.Rules, 80) && hasPort(sg.Spec.Rules, 2222), fmt.Sprintf("rules %+v", sg.Spec.Rules)
	})
	nc.waitStackApplied("", "web", time.Minute)

	// A resource removed from the file is deleted by the next apply.
	cur, err := nc.instance("default", "client")
	if err != nil {
		t.Fatal(err)
	}
	apply(edited, false)
	nc.waitStackApplied("", "web", 2*time.Minute)
	nc.waitOwned("", "web", time.Minute, webOwned(false)...)
	wait.ForDetail(t, time.Minute, "client gone", func() (bool, string) {
		_, err := nc.instance("default", "client")
		return api.IsNotFound(err), fmt.Sprint(err)
	})
	nc.waitNothingLeftOf(cur.Metadata.UID)

	// Deleting the stack leaves nothing: not in the API, not on the hosts.
	owned, err = nc.stackOwned("default", "web")
	if err != nil {
		t.Fatal(err)
	}
	var lbUID string
	var uids []string
	for _, o := range owned {
		switch o.Kind {
		case api.LoadBalancerKind.Name:
			lbUID = o.UID
		case api.InstanceKind.Name:
			uids = append(uids, o.UID)
		}
	}
	for _, in := range nc.groupMembers("web") {
		uids = append(uids, in.Metadata.UID)
	}
	vni := nc.networkVNI("", "web")
	nc.ouro("stack", "delete", "web", "--wait")
	nc.waitStackGone("default", "web", 2*time.Minute)
	for _, k := range []string{"instance", "group", "lb", "network", "sg", "keypair", "fip"} {
		for _, raw := range listJSON[json.RawMessage](nc.cloud, k, "list") {
			var o struct{ Metadata api.ObjectMeta }
			json.Unmarshal(raw, &o)
			n := o.Metadata.Name
			if o.Metadata.Labels[api.LabelStack] != "" || n == "web" || n == "client" || strings.HasPrefix(n, "web-") {
				t.Errorf("after stack delete, %s list still has %s (labels %v)", k, n, o.Metadata.Labels)
			}
		}
	}
	for _, uid := range uids {
		nc.waitNothingLeftOf(uid)
	}
	if lbUID == "" {
		t.Fatal("the stack owned no load balancer before its deletion")
	}
	for _, h := range nc.hosts {
		wait.ForDetail(t, time.Minute, "nothing left of the load balancer and network web on "+h.name, func() (bool, string) {
			l := lbRemains(h, lbUID)
			if r := routerNetns(h, vni); r != "" {
				l = append(l, "router namespace "+r)
			}
			return len(l) == 0, strings.Join(l, "; ")
		})
	}
}

// hasPort reports whether a rule opens exactly port (a rule without
// portMax opens portMin only).
func hasPort(rules []api.SecurityGroupRule, port int) bool {
	for _, r := range rules {
		if r.PortMin == port && (r.PortMax == port || r.PortMax == 0) {
			return true
		}
	}
	return false
}

// waitStackLB waits until the web stack's load balancer is Active with
// exactly the named members up, and has its floating IP.
func (nc *netCloud) waitStackLB(members ...string) *api.LoadBalancer {
	nc.t.Helper()
	want := strings.Join(members, " ")
	var lb api.LoadBalancer
	wait.ForDetail(nc.t, 2*time.Minute, "load balancer web Active with members "+want+" up", func() (bool, string) {
		if err := nc.clientAs(nc.admin).Get(context.Background(), api.LoadBalancerKind, "default", "web", &lb); err != nil {
			return false, err.Error()
		}
		var up []string
		for _, m := range lb.Status.Members {
			if m.State == api.MemberActive && m.Health == api.HealthUp {
				up = append(up, m.Instance)
			}
		}
		sort.Strings(up)
		return lb.Status.Phase == api.LBActive && lb.Status.FloatingIP != "" && strings.Join(up, " ") == want,
			fmt.Sprintf("phase %s vip %s fip %s members up %v of %d", lb.Status.Phase, lb.Status.VIP, lb.Status.FloatingIP, up, len(lb.Status.Members))
	})
	return &lb
}

// waitAllAnswer waits until HTTP requests to addr from the namespace at
// netns have been answered by every one of names, and by nothing else.
func (nc *netCloud) waitAllAnswer(netns, addr string, names ...string) {
	nc.t.Helper()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	seen := map[string]bool{}
	wait.ForDetail(nc.t, time.Minute, fmt.Sprintf("%v answering through %s", names, addr), func() (bool, string) {
		body, err := fetch(netns, addr)
		if err != nil {
			return false, fmt.Sprintf("seen %v; %v", keysOf(seen), err)
		}
		body = strings.TrimSpace(body)
		if !want[body] {
			nc.t.Fatalf("%q answered through %s, want one of %v", body, addr, names)
		}
		seen[body] = true
		return len(seen) == len(want), fmt.Sprintf("seen %v", keysOf(seen))
	})
}

// stackOutputs returns `ouro stack outputs NAME -o json`, a JSON object of
// strings (or such an object under "outputs").
func (c *cloud) stackOutputs(name string) map[string]string {
	c.t.Helper()
	out := c.ouro("stack", "outputs", name, "-o", "json")
	var m map[string]string
	if err := json.Unmarshal([]byte(out), &m); err == nil {
		return m
	}
	var wrapped struct {
		Outputs map[string]string `json:"outputs"`
	}
	if err := json.Unmarshal([]byte(out), &wrapped); err != nil {
		c.t.Fatalf("stack outputs -o json: %v in %q", err, out)
	}
	return wrapped.Outputs
}

// checkUnchangedObjects fails the test when an object of before is gone,
// replaced, or changed in its spec or labels in after, or when after has
// one more, or when an object was written without any change; it only
// logs an object whose status alone moved on (its controller's report).
func (c *cloud) checkUnchangedObjects(before, after map[string]stackObject) {
	c.t.Helper()
	if b, a := keysOf(before), keysOf(after); strings.Join(b, " ") != strings.Join(a, " ") {
		c.t.Errorf("objects before %v, after %v", b, a)
	}
	for k, b := range before {
		a, ok := after[k]
		if !ok || a.ResourceVersion == b.ResourceVersion {
			continue
		}
		switch {
		case a.UID != b.UID:
			c.t.Errorf("%s was replaced (%s → %s)", k, b.UID, a.UID)
		case a.Generation != b.Generation || !jsonEqual(a.Spec, b.Spec) || !reflect.DeepEqual(a.Labels, b.Labels):
			c.t.Errorf("%s was changed: generation %d → %d, spec %s → %s, labels %v → %v",
				k, b.Generation, a.Generation, b.Spec, a.Spec, b.Labels, a.Labels)
		case !jsonEqual(a.Status, b.Status):
			// Its own controller's report (members' health, counts), not
			// a write of the stack's.
			c.t.Logf("%s: resourceVersion %s → %s, its status only: %s → %s", k, b.ResourceVersion, a.ResourceVersion, b.Status, a.Status)
		default:
			c.t.Errorf("%s: resourceVersion %s → %s, nothing changed (a write of the same object)", k, b.ResourceVersion, a.ResourceVersion)
		}
	}
}

// jsonEqual reports whether two JSON documents hold the same value.
func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return string(a) == string(b)
	}
	return reflect.DeepEqual(x, y)
}

// checkPlan checks the output of `ouro stack plan`: each of changed
// ("Kind/name" → words its lines must show, e.g. the field and the new
// value) is shown as a change, and none of unchanged is.
func checkPlan(t *testing.T, out string, changed map[string][]string, unchanged ...string) {
	t.Helper()
	blocks := planBlocks(out)
	for k, words := range changed {
		b, ok := blocks[k]
		if !ok {
			t.Errorf("plan does not show a change of %s:\n%s", k, out)
			continue
		}
		for _, w := range words {
			if !strings.Contains(b, w) {
				t.Errorf("plan's change of %s does not show %q:\n%s", k, w, b)
			}
		}
	}
	for _, k := range unchanged {
		if b, ok := blocks[k]; ok && !strings.Contains(strings.ToLower(b), "unchanged") {
			t.Errorf("plan shows a change of %s, which is unchanged:\n%s", k, out)
		}
	}
	if n := len(blocks) - countUnchanged(blocks); n != len(changed) {
		t.Errorf("plan shows %d changes, want %d:\n%s", n, len(changed), out)
	}
}

// planBlocks splits plan output into the lines about each resource: a
// line naming "Kind/name" starts its block; the indented lines after it
// (its fields) belong to it; any other line ends it.
func planBlocks(out string) map[string]string {
	blocks := map[string]string{}
	cur := ""
	for _, line := range strings.Split(out, "\n") {
		if k := resourceIn(line); k != "" {
			cur = k
		} else if !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
			cur = ""
		}
		if cur != "" {
			blocks[cur] += line + "\n"
		}
	}
	return blocks
}

// resourceIn returns the first "Kind/name" of a stack kind in line, or "".
func resourceIn(line string) string {
	for _, f := range strings.Fields(line) {
		f = strings.Trim(f, ":,()[]")
		kind, name, ok := strings.Cut(f, "/")
		if !ok || name == "" {
			continue
		}
		for _, k := range stackKinds {
			if kind == k.Name {
				return f
			}
		}
	}
	return ""
}

// countUnchanged counts the blocks that say their resource is unchanged.
func countUnchanged(blocks map[string]string) int {
	n := 0
	for _, b := range blocks {
		if strings.Contains(strings.ToLower(b), "unchanged") {
			n++
		}
	}
	return n
}

// waitDriftReported waits until the stack reports drift of the named
// object: in `ouro stack drift`, or in an event about the stack.
func (nc *netCloud) waitDriftReported(stack, kind, name string) {
	nc.t.Helper()
	wait.ForDetail(nc.t, time.Minute, fmt.Sprintf("drift of %s/%s reported", kind, name), func() (bool, string) {
		out, errOut, err := nc.run(nil, "stack", "drift", stack)
		if err != nil {
			return false, fmt.Sprintf("stack drift: %v: %s", err, errOut)
		}
		if strings.Contains(out, kind+"/"+name) {
			return true, ""
		}
		ev, _, _ := nc.run(nil, "events", "--for", "stack/"+stack)
		for _, line := range strings.Split(ev, "\n") {
			if strings.Contains(line, "Drift") && strings.Contains(line, kind+" "+name) {
				nc.t.Logf("drift of %s/%s seen in the events, already corrected in the status: %s", kind, name, strings.Join(strings.Fields(line), " "))
				return true, ""
			}
		}
		return false, fmt.Sprintf("stack drift says %q; events %q", out, ev)
	})
}

// waitNothingLeftOf waits until no host of the cloud has anything left of
// instance uid.
func (nc *netCloud) waitNothingLeftOf(uid string) {
	nc.t.Helper()
	for _, h := range nc.hosts {
		wait.ForDetail(nc.t, time.Minute, "nothing left of "+uid+" on "+h.name, func() (bool, string) {
			l := remains(h.dir, uid)
			if _, err := os.Stat(filepath.Join(agentNetnsDir(h.dir), netplane.InstanceNetNSName(uid))); err == nil {
				l = append(l, "its network namespace")
			}
			return len(l) == 0, strings.Join(l, "; ")
		})
	}
}
