package endpoint

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/ttyframe"
)

// ttyDriver is the fake driver with terminals: each ExecTTY starts a
// fakeTTY and hands it to the test too.
type ttyDriver struct {
	*stubDriver
	ttys chan *fakeTTY
}

var _ driver.TTYExecer = (*ttyDriver)(nil)

func (d *ttyDriver) ExecTTY(_ context.Context, _ string, argv []string, size driver.TermSize) (driver.TTY, error) {
	switch argv[0] {
	case "missing":
		return nil, fmt.Errorf("%w: no such program %q", driver.ErrExecStart, argv[0])
	case "broken":
		return nil, errors.New("the runtime is gone")
	}
	pr, pw := io.Pipe()
	t := &fakeTTY{out: pw, in: pr, size: size, done: make(chan struct{})}
	d.ttys <- t
	return t, nil
}

// fakeTTY answers each line typed upper-cased, "size" with its size, and
// ends with code N on "exit N". Closing it ends it with SIGHUP's code.
type fakeTTY struct {
	in   *io.PipeReader
	out  *io.PipeWriter
	mu   sync.Mutex
	size driver.TermSize
	line strings.Builder
	code int
	once sync.Once
	done chan struct{}
}

func (t *fakeTTY) Read(p []byte) (int, error) { return t.in.Read(p) }

func (t *fakeTTY) Write(p []byte) (int, error) {
	for _, b := range p {
		if b != '\n' {
			t.line.WriteByte(b)
			continue
		}
		line := t.line.String()
		t.line.Reset()
		var code int
		if _, err := fmt.Sscanf(line, "exit %d", &code); err == nil {
			t.end(code)
			return len(p), nil
		}
		if line == "size" {
			t.mu.Lock()
			line = fmt.Sprintf("%d %d", t.size.Rows, t.size.Cols)
			t.mu.Unlock()
		}
		io.WriteString(t.out, strings.ToUpper(line)+"\n")
	}
	return len(p), nil
}

func (t *fakeTTY) end(code int) {
	t.once.Do(func() {
		t.code = code
		t.out.Close()
		close(t.done)
	})
}

func (t *fakeTTY) Resize(size driver.TermSize) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.size = size
	return nil
}

func (t *fakeTTY) Wait() (int, error) {
	<-t.done
	return t.code, nil
}

func (t *fakeTTY) Close() error {
	t.end(129)
	return nil
}

// ttyRequest asks the endpoint for a terminal running argv.
func ttyRequest(t *testing.T, c *http.Client, base string, argv ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/v1/instances/uid-ctr/exec", nil)
	if err != nil {
		t.Fatal(err)
	}
	q := req.URL.Query()
	q["command"] = argv
	ttyframe.SetSize(q, 30, 100)
	req.URL.RawQuery = q.Encode()
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", api.ExecTTYProtocol)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestEndpointExecTTY(t *testing.T) {
	td := &ttyDriver{stubDriver: newStubDriver(t), ttys: make(chan *fakeTTY, 4)}
	e := serve(t, td, "uid-ctr")

	for argv0, want := range map[string]int{"missing": http.StatusBadRequest, "broken": http.StatusInternalServerError} {
		if resp := ttyRequest(t, e.client, e.url, argv0); resp.StatusCode != want {
			t.Errorf("%s: %s, want %d", argv0, resp.Status, want)
		}
	}
	resp := ttyRequest(t, e.client, e.url, "sh")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("exec tty: %s", resp.Status)
	}
	conn := resp.Body.(io.ReadWriteCloser)
	fw, fr := ttyframe.NewWriter(conn), ttyframe.NewReader(conn)
	var output strings.Builder
	// expect reads data frames until the output holds want.
	expect := func(want string) {
		t.Helper()
		for !strings.Contains(output.String(), want) {
			f, err := fr.Next()
			if err != nil {
				t.Fatalf("waiting for %q (have %q): %v", want, output.String(), err)
			}
			if f.Type != ttyframe.Data {
				t.Fatalf("waiting for %q: %v frame", want, f.Type)
			}
			output.Write(f.Payload)
		}
	}
	fw.Write([]byte("size\n"))
	expect("30 100\n")
	fw.Resize(40, 120)
	fw.Write([]byte("hello\nsize\n"))
	expect("HELLO\n40 120\n")
	fw.Write([]byte("exit 7\n"))
	for {
		f, err := fr.Next()
		if err != nil {
			t.Fatalf("waiting for the exit frame: %v", err)
		}
		if f.Type == ttyframe.Exit {
			if code, err := f.ExitCode(); err != nil || code != 7 {
				t.Errorf("exit code %d, %v; want 7", code, err)
			}
			break
		}
	}
	if _, err := fr.Next(); err != io.EOF {
		t.Errorf("after the exit frame: %v, want the end of the stream", err)
	}
	<-td.ttys

	// The caller leaving hangs the terminal up.
	resp = ttyRequest(t, e.client, e.url, "sh")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("exec tty: %s", resp.Status)
	}
	tty := <-td.ttys
	resp.Body.Close()
	select {
	case <-tty.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal was not hung up when its caller left")
	}
}

func TestEndpointExecTTYRefusals(t *testing.T) {
	e := serve(t, newStubDriver(t), "uid-ctr")
	resp := ttyRequest(t, e.client, e.url, "sh")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("driver without terminals: %s, want 400", resp.Status)
	}
	if body, _ := io.ReadAll(bufio.NewReader(resp.Body)); !strings.Contains(string(body), "terminal") {
		t.Errorf("refusal says %s", body)
	}
}
