package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// BenchmarkGroupHostLoss measures how long a group takes to run all its
// members again after the host of some of them dies: 3 hosts, a group of
// 4 busybox members spread over them, the power of the host running most
// members cut (its agent and containers SIGKILLed), and the time from the
// cut until a watch of the group's instances shows 4 Running members, none
// on the dead host. With the defaults (heartbeat 2 s, lease 6 s) it is at
// most the lease plus a placement and a container start. Each iteration
// brings the dead host back and waits for its leftovers to go before the
// next cut. It reports the mean in seconds as recover-s.
//
//	go test ./test/e2e -run '^$' -bench GroupHostLoss -benchtime 1x
func BenchmarkGroupHostLoss(b *testing.B) {
	nc, ms := startSpreadGroup(b, 3, "web", 4)
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dead := nc.busiestHost(ms)
		lost := map[string]bool{}
		for _, in := range ms {
			if in.Status.Host == dead.name {
				lost[in.Metadata.UID] = true
			}
		}
		d := timeRecovery(b, nc, "web", 4, dead, lost)
		b.Logf("cut %s (members %v): recovered in %v", dead.name, membersByHost(ms)[dead.name], d.Round(time.Millisecond))
		total += d

		// Back to the start: the host returns and cleans up.
		nc.startAgent(dead)
		for uid := range lost {
			wait.ForDetail(b, 60*time.Second, "nothing left of "+uid, func() (bool, string) {
				l := remains(dead.dir, uid)
				return len(l) == 0, strings.Join(l, "; ")
			})
		}
		ms = nc.waitMembersRunning("web", 4)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "recover-s")
}

// timeRecovery cuts the power of host dead and returns the time until a
// watch of group name's instances shows want members, all Running, none on
// dead or among the lost UIDs.
func timeRecovery(b *testing.B, nc *netCloud, name string, want int, dead *agentProc, lost map[string]bool) time.Duration {
	b.Helper()
	cl := nc.clientAs(nc.admin)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sel := client.ListOptions{LabelSelector: api.LabelGroup + "=" + name}
	items, meta, err := client.List[api.Instance](ctx, cl, api.InstanceKind, "default", sel)
	if err != nil {
		b.Fatal(err)
	}
	cur := map[string]api.Instance{}
	for _, in := range items {
		cur[in.Metadata.Name] = in
	}
	recovered := make(chan time.Time, 1)
	errRecovered := errors.New("recovered")
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- client.Watch[api.Instance](ctx, cl, api.InstanceKind, "default",
			client.WatchOptions{ListOptions: sel, ResourceVersion: meta.ResourceVersion},
			func(ev api.WatchEvent[api.Instance]) error {
				switch ev.Type {
				case api.Added, api.Modified:
					cur[ev.Object.Metadata.Name] = ev.Object
				case api.Deleted:
					delete(cur, ev.Object.Metadata.Name)
				default:
					return nil
				}
				var all []api.Instance
				for _, in := range cur {
					all = append(all, in)
				}
				if ok, _ := groupRecovered(all, want, dead.name, lost); ok {
					recovered <- time.Now()
					return errRecovered
				}
				return nil
			})
	}()

	start := time.Now()
	powerCut(b, dead)
	select {
	case at := <-recovered:
		return at.Sub(start)
	case err := <-watchDone:
		select {
		case at := <-recovered: // the watch ends once it saw the recovery
			return at.Sub(start)
		default:
			b.Fatalf("watch of group %s ended before it recovered: %v", name, err)
		}
	}
	return 0
}
