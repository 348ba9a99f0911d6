package e2e

import (
	"strings"
	"testing"
	"time"
)

// BenchmarkBootstrap measures `ouro bootstrap` of a cloud of one server
// and one agent onto prepared hosts (the packages are there: the hosts
// are network namespaces of this machine, each with its own sshd), from
// the first SSH connection to the agent Ready and the context written,
// and the rerun that changes nothing. It reports both in seconds.
//
//	go test ./test/e2e -run '^$' -bench Bootstrap -benchtime 3x
func BenchmarkBootstrap(b *testing.B) {
	var first, rerun []time.Duration
	for range b.N {
		b.StopTimer()
		u := newUnderlay(b, 2)
		dir := containerTempDir(b)
		key, hosts := startSSHHosts(b, u, dir)
		bootstrap := bootstrapper(u, dir)
		inv := inventoryFor(b, dir, key, hosts, map[string]string{"h1": "server", "h2": "agent"}, "")
		start := time.Now()
		out, err := bootstrap("-i", inv, "--accept-new-host-keys")
		if err != nil {
			b.Fatalf("bootstrap: %v\n%s", err, out)
		}
		first = append(first, time.Since(start))
		start = time.Now()
		out, err = bootstrap("-i", inv)
		if err != nil || !strings.Contains(out, "Nothing to change.") {
			b.Fatalf("rerun: %v\n%s", err, out)
		}
		rerun = append(rerun, time.Since(start))
		b.Logf("bootstrap %s, rerun %s", first[len(first)-1].Round(time.Millisecond), rerun[len(rerun)-1].Round(time.Millisecond))
		// The next iteration's cloud runs alone.
		for _, h := range hosts {
			stopBootstrapped(b, h)
		}
	}
	b.ReportMetric(median(first).Seconds(), "bootstrap-s")
	b.ReportMetric(median(rerun).Seconds(), "rerun-s")
}
