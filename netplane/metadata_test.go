package netplane

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// wgetMetadata fetches path of the metadata address from the namespace
// ns. (busybox 1.35's wget -T crashes, so timeout(1) bounds it.)
func wgetMetadata(ns, path string) (string, error) {
	return run(ns, 10*time.Second, "busybox", "timeout", "2", "busybox", "wget", "-q", "-O", "-", "http://169.254.169.254"+path)
}

func TestMetadataListener(t *testing.T) {
	l := newLab(t)
	s1, _ := twoHostSpecs(true)
	l.apply("h1", s1)
	h1 := l.host["h1"]
	p := h1.plane

	if _, _, err := p.ListenMetadata(5999, 80); err == nil {
		t.Error("ListenMetadata of a network that is not on the host succeeded")
	}
	ln, id, err := p.ListenMetadata(5001, 80)
	if err != nil {
		t.Fatal(err)
	}
	if id == 0 || id != p.RouterNSID(5001) {
		t.Fatalf("listener in namespace %d, router namespace is %d", id, p.RouterNSID(5001))
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		io.WriteString(w, "hello "+host+" "+r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	// The instance reaches it through its gateway and is seen with its
	// own address: no NAT in between.
	inst := p.NetNSPath(uid(1))
	var out string
	wait.For(t, 15*time.Second, "the metadata address from the instance", func() bool {
		out, err = wgetMetadata(inst, "/latest/meta-data/")
		return err == nil
	})
	if out != "hello 172.31.0.5 /latest/meta-data/" {
		t.Errorf("instance got %q", out)
	}

	// Nothing but the bridge may reach it: not the host, even with a route
	// into the router namespace.
	_, router := TransitPrefixes(5001)
	l.ip(h1.ns, "route", "add", "169.254.169.254/32", "via", router.Addr().String(), "dev", transitName(5001))
	if out, err := wgetMetadata(h1.ns, "/"); err == nil {
		t.Errorf("the host namespace reached the metadata service: %q", out)
	}
	l.ip(h1.ns, "route", "del", "169.254.169.254/32")

	// A repeated Apply keeps the namespace, the address and the listener.
	l.apply("h1", s1)
	if p.RouterNSID(5001) != id {
		t.Error("a repeated Apply replaced the router namespace")
	}
	if out, err := wgetMetadata(inst, "/again"); err != nil || !strings.HasSuffix(out, "/again") {
		t.Errorf("after a repeated Apply: %q, %v", out, err)
	}

	// The network leaving the host removes its namespace.
	srv.Close()
	l.apply("h1", api.HostNetworkSpec{})
	if p.RouterNSID(5001) != 0 {
		t.Error("RouterNSID of a removed network is not 0")
	}
}
