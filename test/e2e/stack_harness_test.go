package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/daemon"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/netplane"
)

// The stack tests drive stacks the way users do, with `ouro stack ...`
// and files, and check the result through the API (objects labelled with
// the stack's name, api.LabelStack) and on the hosts.

// stackKinds are the namespaced kinds a stack can own.
var stackKinds = []*api.Kind{
	api.NetworkKind, api.SecurityGroupKind, api.KeyPairKind, api.ImageKind,
	api.InstanceKind, api.InstanceGroupKind, api.FloatingIPKind, api.LoadBalancerKind,
}

// stackObject is what the stack tests compare of one object.
type stackObject struct {
	Kind, Name, UID, ResourceVersion string
	Generation                       int64
	Labels                           map[string]string
	Spec, Status                     json.RawMessage
	Deleting                         bool
}

// key names the object as the stack commands do, "Kind/name".
func (o stackObject) key() string { return o.Kind + "/" + o.Name }

// member reports whether the object is an instance made by a group: the
// group owns it, not the stack.
func (o stackObject) member() bool {
	_, ok := o.Labels[api.LabelGroup]
	return o.Kind == api.InstanceKind.Name && ok
}

// listObjects lists the objects of kind in project that selector selects.
func (c *cloud) listObjects(kind *api.Kind, project, selector string) ([]stackObject, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	items, _, err := client.ListAll[json.RawMessage](ctx, c.clientAs(c.admin), kind, project, client.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind.Plural, err)
	}
	var out []stackObject
	for _, raw := range items {
		var o struct {
			Metadata api.ObjectMeta  `json:"metadata"`
			Spec     json.RawMessage `json:"spec"`
			Status   json.RawMessage `json:"status"`
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, fmt.Errorf("decode a %s: %w", kind.Name, err)
		}
		out = append(out, stackObject{Kind: kind.Name, Name: o.Metadata.Name, UID: o.Metadata.UID,
			ResourceVersion: o.Metadata.ResourceVersion, Generation: o.Metadata.Generation,
			Labels: o.Metadata.Labels, Spec: o.Spec, Status: o.Status, Deleting: o.Metadata.DeletionTimestamp != nil})
	}
	return out, nil
}

// stackOwned returns every object of project that carries the label of
// stack name, by "Kind/name", group members included.
func (c *cloud) stackOwned(project, name string) (map[string]stackObject, error) {
	out := map[string]stackObject{}
	for _, k := range stackKinds {
		objs, err := c.listObjects(k, project, api.LabelStack+"="+name)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			out[o.key()] = o
		}
	}
	return out, nil
}

// ownedByStack is stackOwned without group members, failing the test on
// an error.
func (c *cloud) ownedByStack(project, name string) map[string]stackObject {
	c.t.Helper()
	all, err := c.stackOwned(project, name)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, o := range all {
		if o.member() {
			delete(all, k)
		}
	}
	return all
}

// keysOf returns the sorted keys of m.
func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// waitOwned waits until the objects of project labelled with stack name
// (group members left out, objects being deleted counted) are exactly
// want, and returns them.
func (c *cloud) waitOwned(project, name string, timeout time.Duration, want ...string) map[string]stackObject {
	c.t.Helper()
	sort.Strings(want)
	var got map[string]stackObject
	wait.ForDetail(c.t, timeout, fmt.Sprintf("stack %s owning exactly %v", name, want), func() (bool, string) {
		all, err := c.stackOwned(project, name)
		if err != nil {
			return false, err.Error()
		}
		got = map[string]stackObject{}
		for k, o := range all {
			if !o.member() {
				got[k] = o
			}
		}
		keys := keysOf(got)
		return strings.Join(keys, " ") == strings.Join(want, " "), fmt.Sprintf("owns %v", keys)
	})
	return got
}

// stackGet reads a stack through the API.
func (c *cloud) stackGet(project, name string) (*api.Stack, error) {
	var st api.Stack
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.clientAs(c.admin).Get(ctx, api.StackKind, projectOr(project), name, &st)
	return &st, err
}

// describeStack summarises a stack's status for failure messages.
func describeStack(st *api.Stack) string {
	var rs []string
	for _, r := range st.Status.Resources {
		s := fmt.Sprintf("%s/%s %s", r.Kind, r.Name, r.State)
		if r.Message != "" {
			s += " (" + r.Message + ")"
		}
		rs = append(rs, s)
	}
	return fmt.Sprintf("phase %s generation %d observed %d message %q resources [%s] drift %d",
		st.Status.Phase, st.Metadata.Generation, st.Status.ObservedGeneration, st.Status.Message,
		strings.Join(rs, ", "), len(st.Status.Drift))
}

// waitStackApplied waits until the stack has applied its current spec in
// full and returns it; a Failed stack fails the test at once.
func (c *cloud) waitStackApplied(project, name string, timeout time.Duration) *api.Stack {
	c.t.Helper()
	var st *api.Stack
	wait.ForDetail(c.t, timeout, "stack "+name+" Applied", func() (bool, string) {
		var err error
		st, err = c.stackGet(project, name)
		if err != nil {
			return false, err.Error()
		}
		if st.Status.Phase == api.StackFailed && st.Status.ObservedGeneration >= st.Metadata.Generation {
			c.t.Fatalf("stack %s failed: %s", name, describeStack(st))
		}
		return st.Status.Phase == api.StackApplied && st.Status.ObservedGeneration >= st.Metadata.Generation, describeStack(st)
	})
	return st
}

// waitStackGone waits until the stack and every object labelled with its
// name are gone from the API.
func (c *cloud) waitStackGone(project, name string, timeout time.Duration) {
	c.t.Helper()
	wait.ForDetail(c.t, timeout, "stack "+name+" and what it owned gone", func() (bool, string) {
		st, err := c.stackGet(project, name)
		if err == nil {
			return false, "stack still there: " + describeStack(st)
		}
		if !api.IsNotFound(err) {
			return false, err.Error()
		}
		all, err := c.stackOwned(project, name)
		if err != nil {
			return false, err.Error()
		}
		return len(all) == 0, fmt.Sprintf("still labelled: %v", keysOf(all))
	})
}

// writeFile writes body to name in dir and returns its path.
func writeFile(t testing.TB, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// exitCode returns the exit code of a finished CLI run: 0 without an
// error, -1 when it did not exit by itself.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// runCode runs the CLI as the admin and returns stdout, stderr and the
// exit code.
func (c *cloud) runCode(args ...string) (string, string, int) {
	out, errOut, err := c.run(nil, args...)
	return out, errOut, exitCode(err)
}

// testPublicKey returns a new ed25519 public key in authorized_keys form.
func testPublicKey(t testing.TB, comment string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " " + comment
}

// lbNamespace returns the path of the namespace of load balancer uid on
// the host of agent a (the data plane names it like an instance's).
func lbNamespace(a *agentProc, uid string) string {
	return filepath.Join(agentNetnsDir(a.dir), netplane.InstanceNetNSName(uid))
}

// lbRemains lists what is left of load balancer uid on the host of a:
// processes that name it or its directory, its namespace and its files.
func lbRemains(a *agentProc, uid string) []string {
	var out []string
	if pids := processesMentioning(uid); len(pids) > 0 {
		out = append(out, fmt.Sprintf("processes %v", pids))
	}
	dir := filepath.Join(daemon.RunDir(a.dir), "lb", uid)
	if _, err := os.Stat(dir); err == nil {
		out = append(out, "directory "+dir)
	}
	if _, err := os.Stat(lbNamespace(a, uid)); err == nil {
		out = append(out, "namespace "+lbNamespace(a, uid))
	}
	for _, pid := range haproxyPids(a) {
		out = append(out, fmt.Sprintf("haproxy or keepalived %d in a namespace of %s", pid, a.name))
	}
	return out
}

// haproxyPids returns the haproxy and keepalived processes in the
// namespaces the agent a bound.
func haproxyPids(a *agentProc) []int {
	var out []int
	for _, ns := range mountsUnder(agentNetnsDir(a.dir)) {
		for _, pid := range pidsInNetns(ns) {
			comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
			if c := strings.TrimSpace(string(comm)); c == "haproxy" || c == "keepalived" {
				out = append(out, pid)
			}
		}
	}
	return out
}

// killHAProxyAtEnd registers a cleanup that kills the haproxy and
// keepalived processes left in the agents' namespaces, whatever the test
// did; it runs before the agents' own cleanup.
func (nc *netCloud) killHAProxyAtEnd() {
	nc.t.Cleanup(func() {
		for _, a := range nc.hosts {
			for _, pid := range haproxyPids(a) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}
