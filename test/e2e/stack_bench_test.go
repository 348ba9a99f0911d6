package e2e

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// planStack returns a stack of n security groups (two rules each) and n
// key pairs: 2n resources that need no host.
func planStack(t testing.TB, n int) string {
	var b strings.Builder
	b.WriteString("kind: Stack\nmetadata:\n  name: big\n")
	for i := range n {
		fmt.Fprintf(&b, `---
kind: SecurityGroup
metadata:
  name: sg-%03d
spec:
  description: group %d
  rules:
  - direction: ingress
    protocol: tcp
    portMin: %d
    portMax: %d
    cidr: 10.0.0.0/8
  - direction: ingress
    protocol: icmp
    cidr: 0.0.0.0/0
---
kind: KeyPair
metadata:
  name: key-%03d
spec:
  publicKey: %s
`, i, i, 1000+i, 1000+i, i, testPublicKey(t, fmt.Sprintf("key-%03d", i)))
	}
	return b.String()
}

// BenchmarkStackPlan measures `ouro stack plan` of an applied, unchanged
// stack of 200 resources (100 security groups of two rules and 100 key
// pairs) on a real server: the CLI process from its start to its exit
// (code 0: nothing to change), reading the file, the stack and the live
// objects. It reports p50 and max in milliseconds.
//
//	go test ./test/e2e -run '^$' -bench StackPlan -benchtime 10x
func BenchmarkStackPlan(b *testing.B) {
	c := newCloud(b)
	file := writeFile(b, b.TempDir(), "big.yaml", planStack(b, 100))
	c.ouro("stack", "apply", "big", "-f", file, "--wait")
	c.waitStackApplied("", "big", 3*time.Minute)
	if owned := c.ownedByStack("", "big"); len(owned) != 200 {
		b.Fatalf("the stack owns %d objects, want 200", len(owned))
	}
	var times []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		out, errOut, code := c.runCode("stack", "plan", "big", "-f", file)
		d := time.Since(t0)
		if code != 0 {
			b.Fatalf("plan of the unchanged stack: exit code %d, want 0\nstdout: %s\nstderr: %s", code, tail(out, 2000), errOut)
		}
		times = append(times, d)
	}
	b.StopTimer()
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(times[len(times)-1].Microseconds())/1000, "max-ms")
}

// benchCommand is the command of the benchmark's instances: it sleeps
// and ends at once on SIGTERM, so that deleting 50 takes no grace period.
var benchCommand = []string{"sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"}

// fiftyStack returns a stack of n instances s-0 … like those the CLI side
// of BenchmarkStackApply makes.
func fiftyStack(n int) string {
	var b strings.Builder
	b.WriteString("kind: Stack\nmetadata:\n  name: fifty\n")
	for i := range n {
		fmt.Fprintf(&b, `---
kind: Instance
metadata:
  name: s-%d
  labels:
    bench: stack
spec:
  image: busybox
  flavor: tiny
  command:
  - sh
  - -c
  - "%s"
`, i, benchCommand[2])
	}
	return b.String()
}

// allRunning watches the instances of the default project that selector
// selects and sends the time when n of them are Running at once; start it
// before making them.
func allRunning(ctx context.Context, tb testing.TB, cl *client.Client, selector string, n int) <-chan time.Time {
	tb.Helper()
	done := make(chan time.Time, 1)
	sel := client.ListOptions{LabelSelector: selector}
	_, meta, err := client.List[api.Instance](ctx, cl, api.InstanceKind, "default", sel)
	if err != nil {
		tb.Fatal(err)
	}
	running := map[string]bool{}
	stop := errors.New("all running")
	go client.Watch[api.Instance](ctx, cl, api.InstanceKind, "default",
		client.WatchOptions{ListOptions: sel, ResourceVersion: meta.ResourceVersion},
		func(ev api.WatchEvent[api.Instance]) error {
			name := ev.Object.Metadata.Name
			switch ev.Type {
			case api.Added, api.Modified:
				running[name] = ev.Object.Status.Phase == api.PhaseRunning && ev.Object.Metadata.DeletionTimestamp == nil
			case api.Deleted:
				delete(running, name)
			}
			count := 0
			for _, r := range running {
				if r {
					count++
				}
			}
			if count == n {
				done <- time.Now()
				return stop
			}
			return nil
		})
	return done
}

// waitTime waits for the time on ch, failing the benchmark after timeout.
func waitTime(b *testing.B, ch <-chan time.Time, timeout time.Duration, what string) time.Time {
	b.Helper()
	select {
	case at := <-ch:
		return at
	case <-time.After(timeout):
		b.Fatalf("%s: not after %v", what, timeout)
	}
	return time.Time{}
}

// BenchmarkStackApply measures the apply of a stack of 50 container
// instances until all are Running, side by side with the same 50
// instances made by one `ouro instance create` each, one after the other,
// on the same real server and two hosts (agents and runc, each host in its
// own network namespace: one host takes 32 tiny instances). Each side
// starts on empty hosts: the other side's instances are deleted, and gone
// from the hosts, first. It reports both times in seconds and their ratio.
//
//	go test ./test/e2e -run '^$' -bench StackApply -benchtime 1x
func BenchmarkStackApply(b *testing.B) {
	const n = 50
	nc := newNetCloud(b, 2)
	c := nc.cloud
	cl := c.clientAs(c.admin)
	file := writeFile(b, b.TempDir(), "fifty.yaml", fiftyStack(n))
	var stackTotal, cliTotal time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		ch := allRunning(ctx, b, cl, "bench=stack", n)
		t0 := time.Now()
		c.ouro("stack", "apply", "fifty", "-f", file)
		stackD := waitTime(b, ch, 5*time.Minute, "50 instances of the stack Running").Sub(t0)
		b.StopTimer()
		t1 := time.Now()
		c.emptyHosts(b, nc.hosts, "bench=stack", func() { c.ouro("stack", "delete", "fifty", "--wait") })
		stackDel := time.Since(t1)
		b.StartTimer()

		ch = allRunning(ctx, b, cl, "bench=cli", n)
		t0 = time.Now()
		for j := range n {
			c.ouro(append([]string{"instance", "create", fmt.Sprintf("c-%d", j), "--image", "busybox", "--flavor", "tiny",
				"--label", "bench=cli", "--"}, benchCommand...)...)
		}
		cliD := waitTime(b, ch, 5*time.Minute, "50 instances of the CLI Running").Sub(t0)
		b.StopTimer()
		t1 = time.Now()
		c.emptyHosts(b, nc.hosts, "bench=cli", func() {
			for j := range n {
				c.ouro("instance", "delete", fmt.Sprintf("c-%d", j))
			}
		})
		cliDel := time.Since(t1)
		b.StartTimer()
		cancel()
		b.Logf("run %d: stack apply %v, %d CLI creates %v; deleting them all: stack delete %v, %d CLI deletes %v", i,
			stackD.Round(time.Millisecond), n, cliD.Round(time.Millisecond), stackDel.Round(time.Millisecond), n, cliDel.Round(time.Millisecond))
		stackTotal += stackD
		cliTotal += cliD
	}
	b.ReportMetric(stackTotal.Seconds()/float64(b.N), "stack-s")
	b.ReportMetric(cliTotal.Seconds()/float64(b.N), "cli-s")
	b.ReportMetric(stackTotal.Seconds()/cliTotal.Seconds(), "ratio")
}

// emptyHosts runs del, which deletes the instances selector selects, and
// waits until they are gone from the API and from the hosts.
func (c *cloud) emptyHosts(b *testing.B, hosts []*agentProc, selector string, del func()) {
	b.Helper()
	items, _, err := client.List[api.Instance](context.Background(), c.clientAs(c.admin), api.InstanceKind, "default",
		client.ListOptions{LabelSelector: selector})
	if err != nil {
		b.Fatal(err)
	}
	del()
	wait.ForDetail(b, 5*time.Minute, "instances "+selector+" gone", func() (bool, string) {
		left, _, err := client.List[api.Instance](context.Background(), c.clientAs(c.admin), api.InstanceKind, "default",
			client.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err.Error()
		}
		return len(left) == 0, fmt.Sprintf("%d left", len(left))
	})
	for _, in := range items {
		for _, a := range hosts {
			wait.ForDetail(b, time.Minute, "nothing left of "+in.Metadata.Name+" on "+a.name, func() (bool, string) {
				l := remains(a.dir, in.Metadata.UID)
				return len(l) == 0, strings.Join(l, "; ")
			})
		}
	}
}
