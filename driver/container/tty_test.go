package container

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// TestExecTTY runs a shell on a terminal in a container with each OCI
// runtime: it has a terminal of the size asked for, follows a resize,
// passes Ctrl-C to the foreground command, and returns the shell's exit
// code; closing the terminal leaves nothing of its session running.
func TestExecTTY(t *testing.T) {
	for _, rt := range []string{"runc", "crun"} {
		t.Run(rt, func(t *testing.T) {
			needRuntime(t, rt)
			testExecTTY(t, rt)
		})
	}
}

func testExecTTY(t *testing.T, rt string) {
	ctx := context.Background()
	blobs := &blobMap{}
	d := newRuntimeTestDriver(t, t.TempDir(), blobs, rt)
	id := uniqueID(t)
	createContainer(t, d, driver.Spec{ID: id, Image: busyboxImage(t, blobs), Command: []string{"sleep", "1000"}})

	if _, err := d.ExecTTY(ctx, id, []string{"sh"}, driver.TermSize{Rows: 24, Cols: 80}); err == nil {
		t.Fatal("ExecTTY in a container not started: no error")
	}
	if err := d.Start(ctx, id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := d.ExecTTY(ctx, id, nil, driver.TermSize{}); err == nil {
		t.Error("ExecTTY of an empty command: no error")
	}
	if _, err := d.ExecTTY(ctx, id, []string{"/no/such/program"}, driver.TermSize{}); !errors.Is(err, driver.ErrExecStart) {
		t.Errorf("ExecTTY of a missing program: %v, want ErrExecStart", err)
	}

	t.Run("shell", func(t *testing.T) {
		tty, term := startTTY(t, d, id, driver.TermSize{Rows: 24, Cols: 80})
		term.run(t, "tty", "/dev/pts/")
		term.run(t, "stty size", "24 80")
		term.run(t, `echo "$TERM"`, "xterm-256color")
		if err := tty.Resize(driver.TermSize{Rows: 33, Cols: 101}); err != nil {
			t.Fatalf("Resize: %v", err)
		}
		term.run(t, "stty size", "33 101")

		term.send(t, "sleep 100\n")
		sid := tty.(*ttyProcess).pid
		wait.For(t, 10*time.Second, "sleep in the terminal's session", func() bool {
			return len(sessionProcs(sid, "sleep")) > 0
		})
		term.send(t, "\x03")
		wait.For(t, 10*time.Second, "Ctrl-C to end sleep", func() bool {
			return len(sessionProcs(sid, "sleep")) == 0
		})
		term.run(t, "echo alive", "alive")

		term.send(t, "exit 7\n")
		if code, err := tty.Wait(); err != nil || code != 7 {
			t.Errorf("Wait = %d, %v; want 7", code, err)
		}
		term.waitEOF(t)
		tty.Close()
	})

	t.Run("size from the start", func(t *testing.T) {
		// A command sees the size asked for once it has read input
		// (typed after ExecTTY returned); with runc, even at once.
		argvs := [][]string{{"sh", "-c", "read x; stty size"}}
		if d.runtimeInfo(ctx).name == "runc" {
			argvs = append(argvs, []string{"stty", "size"})
		}
		for _, argv := range argvs {
			for range 3 {
				tty, err := d.ExecTTY(ctx, id, argv, driver.TermSize{Rows: 17, Cols: 91})
				if err != nil {
					t.Fatalf("ExecTTY: %v", err)
				}
				io.WriteString(tty, "\n")
				out, _ := io.ReadAll(tty)
				code, err := tty.Wait()
				tty.Close()
				if err != nil || code != 0 || !strings.Contains(string(out), "17 91\r\n") {
					t.Fatalf("%q on a 17x91 terminal: %q, exit %d, %v", argv, out, code, err)
				}
			}
		}
	})

	t.Run("confined as the container", func(t *testing.T) {
		tty, term := startTTY(t, d, id, driver.TermSize{Rows: 24, Cols: 80})
		term.run(t, `echo "image=$IMAGE_VAR"`, "image=1")
		term.run(t, "cat /proc/self/status", "NoNewPrivs:\t1")
		term.run(t, "id -u", "0")
		term.send(t, "exit\n")
		if code, err := tty.Wait(); err != nil || code != 0 {
			t.Errorf("Wait = %d, %v; want 0", code, err)
		}
	})

	t.Run("close kills", func(t *testing.T) {
		tty, term := startTTY(t, d, id, driver.TermSize{Rows: 24, Cols: 80})
		sid := tty.(*ttyProcess).pid
		// A background job ignoring SIGHUP, and a foreground command.
		term.send(t, "trap '' HUP; sleep 1001 & sleep 1002\n")
		wait.For(t, 10*time.Second, "both sleeps", func() bool {
			return len(sessionProcs(sid, "sleep")) == 2
		})
		start := time.Now()
		if err := tty.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		t.Logf("Close took %v", time.Since(start))
		wait.ForDetail(t, 5*time.Second, "no process left in the terminal's session", func() (bool, string) {
			left := sessionProcs(sid, "")
			return len(left) == 0, strings.Join(left, " ")
		})
		if code, err := tty.Wait(); err != nil || code < 128 {
			t.Errorf("Wait after Close = %d, %v; want a signal's code", code, err)
		}
	})
}

// termOutput collects what a terminal writes.
type termOutput struct {
	tty  driver.TTY
	mu   sync.Mutex
	buf  strings.Builder
	seen int // bytes already matched
	eof  bool
}

// startTTY runs sh on a terminal in container id and reads its output
// in the background; the terminal is closed when the test ends.
func startTTY(t *testing.T, d *Driver, id string, size driver.TermSize) (driver.TTY, *termOutput) {
	t.Helper()
	tty, err := d.ExecTTY(context.Background(), id, []string{"sh"}, size)
	if err != nil {
		t.Fatalf("ExecTTY: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	o := &termOutput{tty: tty}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			o.mu.Lock()
			o.buf.Write(buf[:n])
			if err != nil {
				o.eof = errors.Is(err, io.EOF)
			}
			o.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return tty, o
}

func (o *termOutput) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(o.tty, s); err != nil {
		t.Fatalf("write %q: %v", s, err)
	}
}

// run types cmd and waits for want in the output that follows the
// command's echo.
func (o *termOutput) run(t *testing.T, cmd, want string) {
	t.Helper()
	o.send(t, cmd+"\n")
	wait.ForDetail(t, 10*time.Second, cmd+" to print "+want, func() (bool, string) {
		o.mu.Lock()
		defer o.mu.Unlock()
		out := o.buf.String()[o.seen:]
		i := strings.Index(out, cmd)
		if i < 0 {
			return false, out
		}
		j := strings.Index(out[i+len(cmd):], want)
		if j < 0 {
			return false, out
		}
		o.seen += i + len(cmd) + j + len(want)
		return true, ""
	})
}

func (o *termOutput) waitEOF(t *testing.T) {
	t.Helper()
	wait.For(t, 10*time.Second, "end of the terminal's output", func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.eof
	})
}

// sessionProcs lists the live processes (not zombies: a container's
// init may not reap) of session sid whose command starts with comm (all
// with "").
func sessionProcs(sid int, comm string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, ok := sessionOf(pid); !ok || s != sid {
			continue
		}
		if stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat"); strings.Contains(string(stat), ") Z ") {
			continue
		}
		c, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		name := strings.TrimSpace(string(c))
		if strings.HasPrefix(name, comm) {
			out = append(out, e.Name()+":"+name)
		}
	}
	return out
}
