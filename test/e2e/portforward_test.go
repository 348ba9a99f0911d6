package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// TestInstancePortForward reaches a port of a container that has no
// public address through the API and its agent: over standard input and
// output (as ssh's ProxyCommand uses it) and through a local listener.
func TestInstancePortForward(t *testing.T) {
	nc := newNetCloud(t, 1)
	const marker = "ouro-forwarded-page"
	nc.ouro("instance", "create", "web", "--image", "busybox", "--flavor", "tiny", "--",
		"sh", "-c", "mkdir -p /www && echo "+marker+" > /www/index.html && exec httpd -f -p 8080 -h /www")
	nc.waitPhase("default", "web", api.PhaseRunning)

	// Standard input and output: the request goes in, the page comes out,
	// and the end of the input does not cut the answer short.
	wait.ForDetail(t, time.Minute, "the page through a stdio port forward", func() (bool, string) {
		cmd := commandIn(nc.netns, ouroBin, "instance", "port-forward", "web", "8080", "--stdio")
		cmd.Env = append(os.Environ(), "OURO_CONFIG="+nc.config)
		cmd.Stdin = strings.NewReader("GET /index.html HTTP/1.0\r\n\r\n")
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			return err == nil && strings.Contains(out.String(), marker), out.String() + errOut.String()
		case <-ctx.Done():
			cmd.Process.Kill()
			<-done
			return false, "timed out: " + out.String() + errOut.String()
		}
	})

	// A local listener: each connection is tunnelled.
	fwd := startIn(t, nc.netns, []string{"OURO_CONFIG=" + nc.config}, "instance", "port-forward", "web", "0:8080")
	var addr string
	re := regexp.MustCompile(`Forwarding (127\.0\.0\.1:\d+) to port 8080 of web`)
	wait.ForDetail(t, 30*time.Second, "the port forward listening", func() (bool, string) {
		if m := re.FindStringSubmatch(fwd.out.String()); m != nil {
			addr = m[1]
			return true, ""
		}
		return false, fwd.out.String()
	})
	hc := &http.Client{Transport: nc.netnsTransport(), Timeout: 30 * time.Second}
	for i := range 3 {
		resp, err := hc.Get("http://" + addr + "/index.html")
		if err != nil {
			t.Fatalf("request %d through the listener: %v\n%s", i, err, fwd.out.String())
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), marker) {
			t.Fatalf("request %d through the listener: %s %q", i, resp.Status, body)
		}
	}

	// A port nothing listens on is refused with the reason, not hung.
	_, errOut, err := nc.run(nil, "instance", "port-forward", "web", "9", "--stdio")
	if err == nil || !strings.Contains(errOut, "connect to port 9") {
		t.Errorf("port forward to a closed port: %v: %s", err, errOut)
	}
}
