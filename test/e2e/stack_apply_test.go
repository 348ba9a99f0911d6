package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/hollow/hollowtest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// hollowStack returns a stack file of a network, a security group and n
// instances app-0 … that only hollow hosts take.
func hollowStack(name, cidr string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `kind: Stack
metadata:
  name: %[1]s
---
kind: Network
metadata:
  name: %[1]s
spec:
  cidr: %[2]s
---
kind: SecurityGroup
metadata:
  name: %[1]s
spec:
  rules:
  - direction: ingress
    protocol: tcp
    portMin: 80
    portMax: 80
    cidr: 0.0.0.0/0
`, name, cidr)
	for i := range n {
		fmt.Fprintf(&b, `---
kind: Instance
metadata:
  name: app-%d
spec:
  image: %s
  flavor: tiny
  tolerations:
  - %s
  networks:
  - network: %s
    securityGroups:
    - %s
`, i, hollowtest.ImageName, api.TaintHollow, name, name)
	}
	return b.String()
}

// hollowStackOwned is what hollowStack owns.
func hollowStackOwned(name string, n int) []string {
	keys := []string{"Network/" + name, "SecurityGroup/" + name}
	for i := range n {
		keys = append(keys, fmt.Sprintf("Instance/app-%d", i))
	}
	return keys
}

// addHollowHosts starts an agent process running n hollow hosts named
// prefix-0 … and waits until they are Ready; it also makes the image
// hollow hosts run.
func (c *cloud) addHollowHosts(prefix string, n int) *proc {
	t := c.t
	t.Helper()
	cl := c.clientAs(c.admin)
	hollowtest.MakeImage(t, cl)
	jt, err := cl.CreateJoinToken(context.Background(), api.JoinTokenRequest{TTL: "1h"})
	if err != nil || jt.Status.Secret == "" {
		t.Fatalf("join token: %v", err)
	}
	caFile := filepath.Join(c.dir, "ca.crt")
	if err := os.WriteFile(caFile, c.ca, 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, nil, "agent", "--hollow", strconv.Itoa(n), "--server", c.url, "--ca-cert", caFile,
		"--join-token", jt.Status.Secret, "--data-dir", filepath.Join(c.dir, "hollow-"+prefix),
		"--name", prefix, "--log-level", "info")
	for i := range n {
		name := fmt.Sprintf("%s-%d", prefix, i)
		wait.ForDetail(t, time.Minute, "hollow host "+name+" Ready", func() (bool, string) {
			if p.exited() {
				t.Fatalf("hollow agent exited:\n%s", tail(p.out.String(), 4000))
			}
			var h api.Host
			if err := cl.Get(context.Background(), api.HostKind, "", name, &h); err != nil {
				return false, err.Error()
			}
			return h.Status.Phase == api.HostReady, string(h.Status.Phase)
		})
	}
	return p
}

// whenMade returns a channel closed once stack name has made at least n
// instances (those made before count).
func (c *cloud) whenMade(name string, n int) <-chan struct{} {
	c.t.Helper()
	cl := c.clientAs(c.admin)
	sel := client.ListOptions{LabelSelector: api.LabelStack + "=" + name}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	items, meta, err := client.List[api.Instance](ctx, cl, api.InstanceKind, "default", sel)
	if err != nil {
		cancel()
		c.t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, in := range items {
		seen[in.Metadata.Name] = true
	}
	done := make(chan struct{})
	if len(seen) >= n {
		cancel()
		close(done)
		return done
	}
	go func() {
		defer cancel()
		client.Watch[api.Instance](ctx, cl, api.InstanceKind, "default",
			client.WatchOptions{ListOptions: sel, ResourceVersion: meta.ResourceVersion},
			func(ev api.WatchEvent[api.Instance]) error {
				if ev.Type == api.Added {
					if seen[ev.Object.Metadata.Name] = true; len(seen) >= n {
						close(done)
						return errors.New("made enough")
					}
				}
				return nil
			})
	}()
	return done
}

// projectObjects returns every object of the stack kinds in project, by
// "Kind/name".
func (c *cloud) projectObjects(project string) map[string]stackObject {
	c.t.Helper()
	out := map[string]stackObject{}
	for _, k := range stackKinds {
		objs, err := c.listObjects(k, project, "")
		if err != nil {
			c.t.Fatal(err)
		}
		for _, o := range objs {
			out[o.key()] = o
		}
	}
	return out
}

// TestStackCrashResume kills the server (SIGKILL) twice while the stack
// controller creates a stack of 12 instances, a network and a security
// group, and starts it again each time: the stack converges with each
// named object made once, and nothing else made. Killed once more in the
// middle of the stack's deletion, it leaves nothing of the stack.
func TestStackCrashResume(t *testing.T) {
	c := newCloud(t)
	c.addHollowHosts("hc", 2)
	const n = 12
	before := c.projectObjects("default")
	file := writeFile(t, t.TempDir(), "crash.yaml", hollowStack("crash", "10.62.0.0/24", n))

	// The server dies once the controller has made its third instance,
	// and again, after a restart, once it has made its ninth.
	for i, at := range []int{3, 9} {
		made := c.whenMade("crash", at)
		if i == 0 {
			// The short form: the name comes from the file's header.
			c.ouro("apply", "-f", file)
		}
		select {
		case <-made:
		case <-time.After(2 * time.Minute):
			st, _ := c.stackGet("", "crash")
			t.Fatalf("the stack made no %d instances in 2 minutes: %s", at, describeStack(st))
		}
		c.server.kill()
		c.startServer()
		if st, err := c.stackGet("", "crash"); err == nil {
			t.Logf("killed once %d instances of %d were made; after the restart: %s", at, n, describeStack(st))
		}
	}
	st := c.waitStackApplied("", "crash", 3*time.Minute)
	owned := c.waitOwned("", "crash", time.Minute, hollowStackOwned("crash", n)...)
	// Nothing made twice or left over: the project has what it had and
	// what the stack names, nothing else.
	after := c.projectObjects("default")
	for k, o := range after {
		if _, ok := before[k]; ok {
			continue
		}
		if _, ok := owned[k]; !ok {
			t.Errorf("%s (labels %v) is neither the project's before nor the stack's", k, o.Labels)
		}
	}
	// The stack records each object once, with the UID of the live one.
	recorded := map[string]int{}
	for _, r := range st.Status.Resources {
		k := r.Kind + "/" + r.Name
		if recorded[k]++; recorded[k] > 1 {
			t.Errorf("the stack records %s twice", k)
		}
		if o, ok := owned[k]; !ok || o.UID != r.UID {
			t.Errorf("the stack records %s with UID %q; the API has %+v", k, r.UID, o)
		}
	}
	if len(recorded) != len(owned) {
		t.Errorf("the stack records %v, owns %v", keysOf(recorded), keysOf(owned))
	}
	for i := range n {
		c.waitPhase("default", fmt.Sprintf("app-%d", i), api.PhaseRunning)
	}

	// Killed again in the middle of the stack's deletion, the server
	// finishes it after the restart: nothing of the stack is left.
	gone := c.whenDeleted("crash", 4)
	c.ouro("stack", "delete", "crash")
	select {
	case <-gone:
	case <-time.After(2 * time.Minute):
		st, _ := c.stackGet("", "crash")
		t.Fatalf("the stack deleted no 4 instances in 2 minutes: %s", describeStack(st))
	}
	c.server.kill()
	c.startServer()
	if st, err := c.stackGet("", "crash"); err == nil {
		t.Logf("killed in the deletion; after the restart: %s", describeStack(st))
	}
	c.waitStackGone("default", "crash", 2*time.Minute)
	c.checkSameObjects("default", before)
}

// whenDeleted returns a channel closed once n instances of stack name are
// gone from the API.
func (c *cloud) whenDeleted(name string, n int) <-chan struct{} {
	c.t.Helper()
	cl := c.clientAs(c.admin)
	sel := client.ListOptions{LabelSelector: api.LabelStack + "=" + name}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	_, meta, err := client.List[api.Instance](ctx, cl, api.InstanceKind, "default", sel)
	if err != nil {
		cancel()
		c.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer cancel()
		deleted := 0
		client.Watch[api.Instance](ctx, cl, api.InstanceKind, "default",
			client.WatchOptions{ListOptions: sel, ResourceVersion: meta.ResourceVersion},
			func(ev api.WatchEvent[api.Instance]) error {
				if ev.Type == api.Deleted {
					if deleted++; deleted == n {
						close(done)
						return errors.New("deleted enough")
					}
				}
				return nil
			})
	}()
	return done
}

// TestStackPermissions: a member of another project cannot apply a stack
// into this one, a viewer cannot apply one at all, and a stack cannot make
// what its author could not (a flavor, for a project member); each refusal
// changes nothing. A member of the project can.
func TestStackPermissions(t *testing.T) {
	c := newCloud(t)
	alpha, beta := c.newTenant("alpha"), c.newTenant("beta")
	dir := t.TempDir()
	file := writeFile(t, dir, "perm.yaml", `kind: Stack
metadata:
  name: perm
---
kind: Network
metadata:
  name: perm
spec:
  cidr: 10.63.0.0/24
---
kind: SecurityGroup
metadata:
  name: perm
spec:
  rules:
  - direction: ingress
    protocol: tcp
    portMin: 443
    portMax: 443
    cidr: 0.0.0.0/0
`)
	before := c.projectObjects("alpha")

	for _, tc := range []struct{ who, token string }{
		{"a member of project beta", beta.member},
		{"an admin of project beta", beta.admin},
		{"a viewer of project alpha", alpha.viewer},
	} {
		out, errOut, err := c.as(tc.token, "stack", "apply", "perm", "-f", file, "--project", "alpha")
		if err == nil {
			t.Errorf("%s applied a stack into alpha: %s", tc.who, out)
			continue
		}
		t.Logf("%s: %s", tc.who, strings.TrimSpace(errOut))
		// Through the API too, whatever the CLI checks first.
		st := &api.Stack{Metadata: api.ObjectMeta{Name: "perm", Project: "alpha"},
			Spec: api.StackSpec{Resources: []api.StackResource{{Kind: "Network", Name: "perm", Spec: []byte(`{"cidr":"10.63.0.0/24"}`)}}}}
		_, err = c.clientAs(tc.token).Create(context.Background(), st, client.CreateOptions{})
		var ae *api.Error
		if !errors.As(err, &ae) || (ae.Status != http.StatusForbidden && ae.Status != http.StatusNotFound) {
			t.Errorf("%s creating a Stack in alpha through the API: %v, want 403 or 404", tc.who, err)
		}
	}
	// The viewer cannot apply into its own project with `ouro apply` either.
	if _, _, err := c.as(alpha.viewer, "apply", "-f", file, "--project", "alpha"); err == nil {
		t.Errorf("a viewer applied with ouro apply -f")
	}
	if _, err := c.stackGet("alpha", "perm"); !api.IsNotFound(err) {
		t.Errorf("stack perm in alpha after the refusals: %v", err)
	}
	c.checkSameObjects("alpha", before)

	// A flavor is the cluster admins': a member's stack cannot make one.
	flavor := writeFile(t, dir, "flavor.yaml", `kind: Flavor
metadata:
  name: permflavor
spec:
  vcpus: 1
  memoryMiB: 64
  diskGiB: 1
`)
	if out, errOut, err := c.as(alpha.member, "stack", "apply", "flav", "-f", flavor, "--project", "alpha"); err == nil {
		// Accepted: the controller, acting as the member, must fail it.
		wait.ForDetail(t, time.Minute, "stack flav Failed", func() (bool, string) {
			st, err := c.stackGet("alpha", "flav")
			if err != nil {
				return false, err.Error()
			}
			return st.Status.Phase == api.StackFailed && strings.Contains(st.Status.Message, "permflavor"), describeStack(st)
		})
		c.mustAs(alpha.member, "stack", "delete", "flav", "--project", "alpha", "--wait")
		t.Logf("a member's stack with a flavor: accepted (%s), then failed", strings.TrimSpace(out))
	} else {
		t.Logf("a member's stack with a flavor: refused: %s", strings.TrimSpace(errOut))
	}
	var fl api.Flavor
	if err := c.clientAs(c.admin).Get(context.Background(), api.FlavorKind, "", "permflavor", &fl); !api.IsNotFound(err) {
		t.Errorf("flavor permflavor after a member's stack: %v", err)
	}
	c.checkSameObjects("alpha", before)

	// The member of alpha may: the stack acts as them.
	c.mustAs(alpha.member, "stack", "apply", "perm", "-f", file, "--project", "alpha", "--wait")
	st := c.waitStackApplied("alpha", "perm", time.Minute)
	if st.Spec.AppliedBy != "alpha-dev" {
		t.Errorf("stack perm applied by %q, want alpha-dev", st.Spec.AppliedBy)
	}
	c.waitOwned("alpha", "perm", 30*time.Second, "Network/perm", "SecurityGroup/perm")
	// And a viewer still cannot change it, nor delete it.
	if _, _, err := c.as(alpha.viewer, "stack", "delete", "perm", "--project", "alpha"); err == nil {
		t.Errorf("a viewer deleted stack perm")
	}
	if _, err := c.stackGet("alpha", "perm"); err != nil {
		t.Errorf("stack perm after a viewer's delete: %v", err)
	}
}

// checkSameObjects fails the test when project's objects of the stack
// kinds or its stacks differ from before (by name and UID).
func (c *cloud) checkSameObjects(project string, before map[string]stackObject) {
	c.t.Helper()
	after := c.projectObjects(project)
	for k, a := range after {
		if b, ok := before[k]; !ok || b.UID != a.UID {
			c.t.Errorf("project %s has a new %s (labels %v)", project, k, a.Labels)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			c.t.Errorf("project %s lost %s", project, k)
		}
	}
	stacks, err := c.listObjects(api.StackKind, project, "")
	if err != nil {
		c.t.Fatal(err)
	}
	for _, s := range stacks {
		c.t.Errorf("project %s has stack %s", project, s.Name)
	}
}

// TestStackOwnsOnlyWhatItMade: a stack never adopts an object made by
// hand nor one another stack owns; the resource fails naming the owner,
// the object is left as it was, and deleting the stack leaves it.
func TestStackOwnsOnlyWhatItMade(t *testing.T) {
	c := newCloud(t)
	dir := t.TempDir()
	network := func(stack, name, cidr string) string {
		return writeFile(t, dir, stack+"-"+name+".yaml", fmt.Sprintf(`kind: Network
metadata:
  name: %s
spec:
  cidr: %s
`, name, cidr))
	}
	failed := func(stack, want string) {
		t.Helper()
		wait.ForDetail(t, time.Minute, "stack "+stack+" Failed saying "+want, func() (bool, string) {
			st, err := c.stackGet("", stack)
			if err != nil {
				return false, err.Error()
			}
			msg := st.Status.Message
			for _, r := range st.Status.Resources {
				msg += " " + r.Message
			}
			return st.Status.Phase == api.StackFailed && strings.Contains(msg, want), describeStack(st)
		})
	}
	c.ouro("network", "create", "handmade", "--cidr", "10.65.0.0/24")
	hand := c.networkObject("handmade")

	c.ouro("stack", "apply", "one", "-f", network("one", "handmade", "10.65.0.0/24"))
	failed("one", "not owned by stack one")
	if got := c.networkObject("handmade"); got.UID != hand.UID || got.Labels[api.LabelStack] != "" || got.ResourceVersion != hand.ResourceVersion {
		t.Errorf("network handmade was touched by stack one: %+v, was %+v", got, hand)
	}

	c.ouro("stack", "apply", "one", "-f", network("one", "shared", "10.66.0.0/24"), "--wait")
	c.waitStackApplied("", "one", time.Minute)
	shared := c.networkObject("shared")
	c.ouro("stack", "apply", "two", "-f", network("two", "shared", "10.66.0.0/24"))
	failed("two", "not owned by stack two")
	c.ouro("stack", "delete", "two", "--wait")
	if got := c.networkObject("shared"); got.UID != shared.UID || got.Labels[api.LabelStack] != "one" {
		t.Errorf("network shared after stack two came and went: %+v, was %+v", got, shared)
	}
	c.ouro("stack", "delete", "one", "--wait")
	c.waitStackGone("default", "one", time.Minute)
	if got := c.networkObject("handmade"); got.UID != hand.UID {
		t.Errorf("network handmade after stack one was deleted: %+v", got)
	}
}

// networkObject reads a network of the default project as a stackObject,
// failing the test when it is not there.
func (c *cloud) networkObject(name string) stackObject {
	c.t.Helper()
	objs, err := c.listObjects(api.NetworkKind, "default", "")
	if err != nil {
		c.t.Fatal(err)
	}
	for _, o := range objs {
		if o.Name == name {
			return o
		}
	}
	c.t.Fatalf("no network %s", name)
	return stackObject{}
}
