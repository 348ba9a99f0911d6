package instance

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/syncbuf"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

func TestConsoleDetachKey(t *testing.T) {
	for _, tt := range []struct {
		name, in, sent string
		detached       bool
	}{
		{"detach", "ls\n\x1dmore", "ls\n", true},
		{"detach first", "\x1d", "", true},
		{"input ends", "uname\n", "uname\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var sent bytes.Buffer
			if got := copyUntilDetach(&sent, strings.NewReader(tt.in)); got != tt.detached || sent.String() != tt.sent {
				t.Errorf("copyUntilDetach(%q) = %v, sent %q; want %v, %q", tt.in, got, sent.String(), tt.detached, tt.sent)
			}
		})
	}
}

// fakeConsole answers each line written to it with "> line".
type fakeConsole struct {
	pr     *io.PipeReader
	pw     *io.PipeWriter
	closed chan struct{}
}

func newFakeConsole() *fakeConsole {
	pr, pw := io.Pipe()
	return &fakeConsole{pr: pr, pw: pw, closed: make(chan struct{})}
}

func (c *fakeConsole) Read(p []byte) (int, error) { return c.pr.Read(p) }

func (c *fakeConsole) Write(p []byte) (int, error) {
	go c.pw.Write(append([]byte("> "), p...))
	return len(p), nil
}

func (c *fakeConsole) Close() error {
	select {
	case <-c.closed:
	default:
		close(c.closed)
		c.pw.Close()
	}
	return nil
}

func TestRunConsole(t *testing.T) {
	// The user types a line, sees the answer, then detaches.
	c := newFakeConsole()
	inR, inW := io.Pipe()
	var out syncbuf.Buffer
	done := make(chan bool, 1)
	go func() { done <- runConsole(inR, &out, c, time.Hour) }()
	inW.Write([]byte("hello\n"))
	wait.For(t, 10*time.Second, "the console's answer", func() bool { return out.String() == "> hello\n" })
	inW.Write([]byte{detachKey})
	if !<-done {
		t.Error("Ctrl-] did not count as a detach")
	}
	select {
	case <-c.closed:
	default:
		t.Error("detaching did not close the connection")
	}

	// The console closing ends the session too.
	c = newFakeConsole()
	inR, _ = io.Pipe()
	go func() { done <- runConsole(inR, io.Discard, c, time.Hour) }()
	c.Close()
	if <-done {
		t.Error("a closed console counted as a detach")
	}

	// Input from a pipe ends: the answer is shown, then the session ends
	// once the console is quiet, closing the connection.
	c = newFakeConsole()
	inR, inW = io.Pipe()
	out = syncbuf.Buffer{}
	go func() { done <- runConsole(inR, &out, c, 20*time.Millisecond) }()
	inW.Write([]byte("root\n"))
	wait.For(t, 10*time.Second, "the console's answer", func() bool { return out.String() == "> root\n" })
	inW.Close()
	if <-done {
		t.Error("input ending counted as a detach")
	}
	select {
	case <-c.closed:
	default:
		t.Error("the session ended without closing the connection")
	}
}
