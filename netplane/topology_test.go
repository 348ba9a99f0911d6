package netplane

import (
	"context"
	"fmt"
	"io"
	"log/slog"
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
	"github.com/ouroboros-cloud/ouro/netplane/dnsmasq"
	"github.com/ouroboros-cloud/ouro/netplane/netns"
)

// lab is a test underlay: hosts h1 and h2 (10.99.0.11 and .12) and an
// "ext" router (10.99.0.1) on a bridge in namespace "ul"; behind ext, the
// "outside" at 203.0.113.1. Everything lives in namespaces the test
// creates; nothing reaches the machine's own network.
type lab struct {
	t    *testing.T
	dir  string
	ul   string
	ext  string
	out  string
	host map[string]*testHost
}

type testHost struct {
	name  string
	ns    string // host namespace path
	addr  string
	plane *Plane
}

func needLab(t *testing.T) {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedBinary(t, "ip")
	testenv.NeedBinary(t, "nft")
	testenv.NeedBinary(t, "busybox")
	testenv.NeedFile(t, dnsmasq.Binary)
}

// newLab builds the underlay. Its namespaces and processes are removed by
// t.Cleanup.
func newLab(t *testing.T) *lab {
	t.Helper()
	needLab(t)
	dir, err := os.MkdirTemp("", "netplane-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// dnsmasq drops to nobody and must reach its files.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, dir: dir, host: map[string]*testHost{}}
	l.ul = l.newNS("ul")
	l.ext = l.newNS("ext")
	l.out = l.newNS("out")
	l.ip(l.ul, "link", "add", "ulbr", "type", "bridge")
	l.ip(l.ul, "link", "set", "ulbr", "up")
	l.plug("ext", l.ext, "10.99.0.1/24")
	l.ip(l.ext, "link", "add", "eout", "type", "veth", "peer", "name", "eth0", "netns", l.out)
	l.ip(l.ext, "addr", "add", "203.0.113.254/24", "dev", "eout")
	l.ip(l.ext, "link", "set", "eout", "up")
	l.ip(l.out, "addr", "add", "203.0.113.1/24", "dev", "eth0")
	l.ip(l.out, "link", "set", "eth0", "up")
	l.ip(l.out, "route", "add", "default", "via", "203.0.113.254")
	if err := netns.WriteSysctl(l.ext, "net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.53\nnameserver 10.99.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"h1", "h2"} {
		addr := fmt.Sprintf("10.99.0.%d", 11+i)
		ns := l.newNS(name)
		l.plug(name, ns, addr+"/24")
		l.ip(ns, "route", "add", "default", "via", "10.99.0.1")
		state := filepath.Join(dir, name+"-state")
		p, err := New(Config{
			StateDir: state, UnderlayAddress: addr, HostNetNS: ns,
			NetNSDir: filepath.Join(dir, name+"-netns"), ResolvConf: resolv,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		l.host[name] = &testHost{name: name, ns: ns, addr: addr, plane: p}
		// Registered after the namespace's own cleanup, so it runs first:
		// stop dnsmasq and remove every ouro namespace.
		t.Cleanup(func() {
			if err := p.Apply(context.Background(), api.HostNetworkSpec{}); err != nil {
				t.Errorf("cleanup %s: %v", name, err)
			}
		})
	}
	return l
}

// newNS creates a namespace removed at cleanup.
func (l *lab) newNS(name string) string {
	l.t.Helper()
	path := filepath.Join(l.dir, "ns", name)
	if _, err := netns.Create(path); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() {
		if err := deleteNS(path); err != nil {
			l.t.Errorf("delete %s: %v", name, err)
		}
	})
	l.ip(path, "link", "set", "lo", "up")
	return path
}

// plug connects a namespace to the underlay bridge as eth0 with addr.
func (l *lab) plug(name, ns, addr string) {
	l.t.Helper()
	l.ip(l.ul, "link", "add", "u-"+name, "type", "veth", "peer", "name", "eth0", "netns", ns)
	l.ip(l.ul, "link", "set", "u-"+name, "master", "ulbr", "up")
	l.ip(ns, "addr", "add", addr, "dev", "eth0")
	l.ip(ns, "link", "set", "eth0", "up")
}

func (l *lab) ip(ns string, args ...string) string {
	l.t.Helper()
	out, err := netns.Run(ns, "", "ip", args...)
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

// apply applies spec on a host and fails the test on error.
func (l *lab) apply(host string, spec api.HostNetworkSpec) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.host[host].plane.Apply(ctx, spec); err != nil {
		l.t.Fatalf("apply on %s: %v", host, err)
	}
}

// run runs a program in a namespace with a time limit and returns its
// output and error.
func run(ns string, limit time.Duration, name string, args ...string) (string, error) {
	var out []byte
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	err := netns.Do(ns, func() error {
		var err error
		out, err = exec.CommandContext(ctx, name, args...).CombinedOutput()
		return err
	})
	return string(out), err
}

// ping reports whether one ping from ns to ip is answered.
func ping(ns, ip string) bool {
	_, err := run(ns, 10*time.Second, "busybox", "ping", "-c", "1", "-W", "2", ip)
	return err == nil
}

// mustPing waits until ns reaches ip (ARP and VXLAN learning take a
// moment the first time).
func mustPing(t *testing.T, ns, ip string) {
	t.Helper()
	wait.For(t, 15*time.Second, "ping "+ip, func() bool { return ping(ns, ip) })
}

// mustNotPing asserts that a few pings from ns to ip all fail.
func mustNotPing(t *testing.T, ns, ip string) {
	t.Helper()
	for range 2 {
		if ping(ns, ip) {
			t.Fatalf("ping %s from %s: answered, want no answer", ip, filepath.Base(ns))
		}
	}
}

// timers matches the ever-changing fields of `ip -d link`.
var timers = regexp.MustCompile(`\S+_timer +[0-9.]+`)

// snapshot captures what Apply must leave alone when nothing changed. It
// waits for carriers to settle (link state is reported asynchronously).
func (l *lab) snapshot(host string, extraNS ...string) string {
	l.t.Helper()
	var s string
	wait.For(l.t, 10*time.Second, "carriers up", func() bool {
		s = l.snapshotNow(host, extraNS...)
		return !strings.Contains(s, "NO-CARRIER")
	})
	return s
}

func (l *lab) snapshotNow(host string, extraNS ...string) string {
	l.t.Helper()
	h := l.host[host]
	var b strings.Builder
	for _, ns := range append([]string{h.ns}, extraNS...) {
		fmt.Fprintf(&b, "== %s\n", ns)
		b.WriteString(timers.ReplaceAllString(l.stdout(ns, "ip", "-d", "link"), ""))
		b.WriteString(l.stdout(ns, "ip", "-4", "addr"))
		b.WriteString(l.stdout(ns, "ip", "route"))
		b.WriteString(l.stdout(ns, "nft", "list", "ruleset"))
	}
	return b.String()
}

// stdout runs a program in namespace ns and returns its standard output,
// blank lines at the end trimmed. Its standard error is left out: ip
// reports there a namespace that another test is tearing down ("Peer
// netns reference is invalid"), which is not this lab's state.
func (l *lab) stdout(ns, name string, args ...string) string {
	l.t.Helper()
	var out []byte
	err := netns.Do(ns, func() error {
		cmd := exec.Command(name, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		var err error
		if out, err = cmd.Output(); err != nil {
			return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return nil
	})
	if err != nil {
		l.t.Fatal(err)
	}
	return strings.TrimRight(string(out), "\n") + "\n"
}

// uid makes an instance or network UID.
func uid(n int) string { return fmt.Sprintf("%08x-1111-4222-8333-%012x", n, n) }

// portSpec is a port with the MAC derived from its IP as the server does.
func portSpec(inst int, name, ip string) api.HostPort {
	var a, b, c, d int
	fmt.Sscanf(ip, "%d.%d.%d.%d", &a, &b, &c, &d)
	return api.HostPort{
		Instance: uid(inst), Name: name, IP: ip,
		MAC: fmt.Sprintf("0a:58:%02x:%02x:%02x:%02x", a, b, c, d),
	}
}

// allowAll is an ingress or egress rule allowing everything from anywhere.
var allowAll = api.FirewallRule{Protocol: "all", CIDRs: []string{"0.0.0.0/0"}}

// nft runs nft in a namespace and returns its output.
func (l *lab) nft(ns string, args ...string) string {
	l.t.Helper()
	out, err := netns.Run(ns, "", "nft", args...)
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

// mustNFT loads a ruleset in a namespace.
func (l *lab) mustNFT(ns, ruleset string) {
	l.t.Helper()
	if _, err := netns.Run(ns, ruleset, "nft", "-f", "-"); err != nil {
		l.t.Fatal(err)
	}
}
