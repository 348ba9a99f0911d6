package endpoint

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

// loopbackReach reaches every instance at 127.0.0.1 in the test's own
// namespace, or at nothing when ok is false.
type loopbackReach struct{ ok bool }

func (r loopbackReach) ProbeTarget(*api.Instance) (string, string, bool) {
	return "", "127.0.0.1", r.ok
}

// echoServer accepts connections on loopback and echoes each line back
// in upper case, until the test ends; it returns its port.
func echoServer(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					io.WriteString(c, strings.ToUpper(line))
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// freeLoopbackPort returns a port nothing listens on.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func forwardRequest(t *testing.T, c *http.Client, url string, upgrade bool) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if upgrade {
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", api.PortForwardProtocol)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestEndpointPortForward(t *testing.T) {
	d := newStubDriver(t)
	e := serveReach(t, d, loopbackReach{ok: true}, "uid-web")
	port := echoServer(t)
	base := e.url + "/v1/instances/uid-web/portforward?port="

	resp := forwardRequest(t, e.client, base+strconv.Itoa(port), true)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("port forward: %s", resp.Status)
	}
	conn := resp.Body.(io.ReadWriteCloser)
	go io.WriteString(conn, "hello\n")
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "HELLO\n" {
		t.Fatalf("through the tunnel: %q, %v; want HELLO", line, err)
	}
	conn.Close()

	for _, tc := range []struct {
		name    string
		url     string
		upgrade bool
		want    int
	}{
		{"no upgrade", base + strconv.Itoa(port), false, http.StatusBadRequest},
		{"no port", e.url + "/v1/instances/uid-web/portforward", true, http.StatusBadRequest},
		{"port 0", base + "0", true, http.StatusBadRequest},
		{"port too big", base + "65536", true, http.StatusBadRequest},
		{"port not a number", base + "ssh", true, http.StatusBadRequest},
		{"nothing listening", base + strconv.Itoa(freeLoopbackPort(t)), true, http.StatusConflict},
		{"unknown instance", e.url + "/v1/instances/uid-other/portforward?port=" + strconv.Itoa(port), true, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if resp := forwardRequest(t, e.client, tc.url, tc.upgrade); resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}

	// A stopped instance is not reached.
	d.Stop(t.Context(), "uid-web", 0)
	if resp := forwardRequest(t, e.client, base+strconv.Itoa(port), true); resp.StatusCode != http.StatusConflict {
		t.Errorf("port forward to a stopped instance: status %d, want 409", resp.StatusCode)
	}
}

func TestEndpointPortForwardUnreachable(t *testing.T) {
	d := newStubDriver(t)
	port := strconv.Itoa(echoServer(t))
	for _, tc := range []struct {
		name  string
		reach Reach
		want  int
	}{
		{"no address on an applied network", loopbackReach{ok: false}, http.StatusConflict},
		{"agent without networks", nil, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := serveReach(t, d, tc.reach, "uid-web")
			if resp := forwardRequest(t, e.client, e.url+"/v1/instances/uid-web/portforward?port="+port, true); resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}
