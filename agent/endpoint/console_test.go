package endpoint

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
)

// consoleDriver is the fake driver with a console: each Console call makes
// a pipe and hands the test its far end, as a VM's serial socket would be.
type consoleDriver struct {
	*stubDriver
	sides chan net.Conn
}

var _ driver.Consoler = (*consoleDriver)(nil)

func (d *consoleDriver) Console(_ context.Context, id string) (io.ReadWriteCloser, error) {
	near, far := net.Pipe()
	d.sides <- far
	return near, nil
}

// consoleRequest posts a console request to the agent endpoint, asking to
// upgrade unless plain.
func consoleRequest(t *testing.T, c *http.Client, url string, plain bool) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !plain {
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", api.ConsoleProtocol)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestEndpointConsole(t *testing.T) {
	cd := &consoleDriver{stubDriver: newStubDriver(t), sides: make(chan net.Conn, 1)}
	e := serve(t, cd, "uid-vm")
	ep, c := e.url, e.client
	url := ep + "/v1/instances/uid-vm/console"

	if resp := consoleRequest(t, c, url, true); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("console without upgrade: status %d, want 400", resp.StatusCode)
	}
	resp := consoleRequest(t, c, url, false)
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), api.ConsoleProtocol) {
		t.Fatalf("console: %s, upgrade %q", resp.Status, resp.Header.Get("Upgrade"))
	}
	conn := resp.Body.(io.ReadWriteCloser)
	var far net.Conn
	select {
	case far = <-cd.sides:
	case <-time.After(5 * time.Second):
		t.Fatal("the driver's console was not opened")
	}
	// Keys go in, output comes out.
	go io.WriteString(conn, "root\n")
	if line, err := bufio.NewReader(far).ReadString('\n'); err != nil || line != "root\n" {
		t.Fatalf("console input reached the instance as %q, %v", line, err)
	}
	go io.WriteString(far, "Password: \n")
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "Password: \n" {
		t.Fatalf("console output reached the caller as %q, %v", line, err)
	}
	// Detaching closes the driver's console and nothing else.
	conn.Close()
	far.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := far.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("driver console after detach: read error %v, want EOF", err)
	}
	if st, err := cd.Inspect(t.Context(), "uid-vm"); err != nil || st.State != driver.StateRunning {
		t.Errorf("instance is %s (%v) after detaching, want running", st.State, err)
	}

	// A stopped instance has no console to attach to.
	cd.Stop(t.Context(), "uid-vm", 0)
	if resp := consoleRequest(t, c, url, false); resp.StatusCode != http.StatusConflict {
		t.Errorf("console of a stopped instance: status %d, want 409", resp.StatusCode)
	}
}

func TestEndpointConsoleWithoutConsoler(t *testing.T) {
	e := serve(t, newStubDriver(t), "uid-web") // as containers: no console
	ep, c := e.url, e.client
	resp := consoleRequest(t, c, ep+"/v1/instances/uid-web/console", false)
	var body api.ErrorBody
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusBadRequest || body.Error == nil || !strings.Contains(body.Error.Message, "has no console; use exec") {
		t.Errorf("console of a driver without one: %s %+v", resp.Status, body.Error)
	}
	if resp := consoleRequest(t, c, ep+"/v1/instances/uid-other/console", false); resp.StatusCode != http.StatusNotFound {
		t.Errorf("console of an unknown instance: status %d, want 404", resp.StatusCode)
	}
}
