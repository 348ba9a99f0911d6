package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeQMP is a QMP server on a unix socket that behaves like QEMU's
// monitor: a greeting, commands refused until qmp_capabilities, replies
// carrying the request's id, and events at any time.
type fakeQMP struct {
	path string
	// handle answers a command: a return value, or a QMP error class.
	handle func(cmd string, args json.RawMessage) (ret any, errClass string)
	// before is sent (raw lines) before each reply, e.g. events.
	before func(cmd string) []string
	// greet false accepts connections but never speaks.
	greet bool
	got   chan string // commands received, in order
}

func startFakeQMP(t *testing.T, f *fakeQMP) *fakeQMP {
	t.Helper()
	f.path = filepath.Join(t.TempDir(), "qmp.sock")
	f.got = make(chan string, 100)
	l, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeQMP) serve(c net.Conn) {
	defer c.Close()
	if !f.greet {
		time.Sleep(10 * time.Second)
		return
	}
	w := bufio.NewWriter(c)
	send := func(s string) { w.WriteString(s + "\r\n"); w.Flush() }
	send(`{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian"}, "capabilities": ["oob"]}}`)
	negotiated := false
	dec := json.NewDecoder(c)
	for {
		var req struct {
			Execute   string          `json:"execute"`
			Arguments json.RawMessage `json:"arguments"`
			ID        json.RawMessage `json:"id"`
		}
		if err := dec.Decode(&req); err != nil {
			return
		}
		f.got <- req.Execute
		id := string(req.ID)
		if id == "" {
			id = "null"
		}
		if req.Execute == "qmp_capabilities" {
			negotiated = true
			send(fmt.Sprintf(`{"return": {}, "id": %s}`, id))
			continue
		}
		if !negotiated {
			send(fmt.Sprintf(`{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}, "id": %s}`, id))
			continue
		}
		if f.before != nil {
			for _, line := range f.before(req.Execute) {
				send(line)
			}
		}
		if req.Execute == "close-now" {
			return // like QEMU exiting mid-command
		}
		ret, class := f.handle(req.Execute, req.Arguments)
		if class != "" {
			send(fmt.Sprintf(`{"error": {"class": %q, "desc": "refused %s"}, "id": %s}`, class, req.Execute, id))
			continue
		}
		data, _ := json.Marshal(ret)
		send(fmt.Sprintf(`{"return": %s, "id": %s}`, data, id))
	}
}

func TestQMPCommandsRepliesAndEvents(t *testing.T) {
	f := startFakeQMP(t, &fakeQMP{
		greet: true,
		handle: func(cmd string, args json.RawMessage) (any, string) {
			switch cmd {
			case "query-status":
				return map[string]any{"status": "running", "running": true, "singlestep": false}, ""
			case "echo":
				var a map[string]string
				json.Unmarshal(args, &a)
				return a, ""
			}
			return nil, "CommandNotFound"
		},
		before: func(cmd string) []string {
			if cmd == "query-status" {
				return []string{`{"timestamp": {"seconds": 1700000000, "microseconds": 5}, "event": "POWERDOWN"}`}
			}
			return nil
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := dialQMP(ctx, f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.version != "7.2.22" {
		t.Errorf("version %q, want 7.2.22", c.version)
	}
	if first := <-f.got; first != "qmp_capabilities" {
		t.Fatalf("first command %q, want qmp_capabilities", first)
	}

	var st qmpStatus
	if err := c.execute(ctx, "query-status", nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.Status != "running" || !st.Running {
		t.Errorf("query-status = %+v", st)
	}
	select {
	case ev := <-c.Events():
		if ev.Name != "POWERDOWN" || ev.Time.Unix() != 1700000000 {
			t.Errorf("event %+v, want POWERDOWN at 1700000000", ev)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the event sent before the reply was not delivered")
	}

	var echoed map[string]string
	if err := c.execute(ctx, "echo", map[string]string{"x": "y,z"}, &echoed); err != nil || echoed["x"] != "y,z" {
		t.Errorf("arguments round trip: %v %v", echoed, err)
	}

	err = c.execute(ctx, "no-such-command", nil, nil)
	var qe *QMPError
	if !errors.As(err, &qe) || qe.Class != "CommandNotFound" {
		t.Errorf("unknown command: err %v, want a *QMPError of class CommandNotFound", err)
	}
	// The session still works after an error reply.
	if err := c.execute(ctx, "query-status", nil, nil); err != nil {
		t.Errorf("after an error: %v", err)
	}
}

func TestQMPConnectionLostMidCommand(t *testing.T) {
	f := startFakeQMP(t, &fakeQMP{greet: true, handle: func(string, json.RawMessage) (any, string) { return struct{}{}, "" }})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := dialQMP(ctx, f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.execute(ctx, "close-now", nil, nil)
	if !errors.Is(err, errQMPClosed) {
		t.Fatalf("command on a connection QEMU closed: %v, want errQMPClosed", err)
	}
	if err := c.execute(ctx, "query-status", nil, nil); !errors.Is(err, errQMPClosed) {
		t.Errorf("command after the close: %v, want errQMPClosed", err)
	}
	if _, open := <-c.Events(); open {
		t.Error("events channel still open after the connection ended")
	}
}

func TestQMPSilentMonitorTimesOut(t *testing.T) {
	// QEMU accepts a second client's connection but serves it only once
	// the first leaves: the handshake must give up at the deadline.
	f := startFakeQMP(t, &fakeQMP{greet: false})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := dialQMP(ctx, f.path)
	if err == nil || !strings.Contains(err.Error(), "greeting") {
		t.Fatalf("dial of a silent monitor: %v, want a greeting error", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("gave up after %v, want about the 300ms deadline", d)
	}
}

func TestQMPRefusesNonQMPPeer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Write([]byte("SSH-2.0-OpenSSH\r\n"))
			time.Sleep(time.Second)
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := dialQMP(ctx, path); err == nil || !strings.Contains(err.Error(), "unexpected greeting") {
		t.Fatalf("dial of a non-QMP server: %v, want unexpected greeting", err)
	}
}
