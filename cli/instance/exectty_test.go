package instance

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/syncbuf"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/ttyframe"
)

// fakeTerminal serves the far end of a terminal's stream: it answers
// each line with "> line", each resize with its size, and Ctrl-D with
// exit code 3; "lose" ends it with an Error frame, "drop" without a
// word.
func fakeTerminal(conn net.Conn) {
	defer conn.Close()
	fw, fr := ttyframe.NewWriter(conn), ttyframe.NewReader(conn)
	var line bytes.Buffer
	for {
		f, err := fr.Next()
		if err != nil {
			return
		}
		if f.Type == ttyframe.Resize {
			r, c, _ := f.Size()
			fmt.Fprintf(fw, "size %dx%d\r\n", r, c)
			continue
		}
		for _, b := range f.Payload {
			switch {
			case b == eofKey:
				fw.Exit(3)
				return
			case b != '\r':
				line.WriteByte(b)
			case line.String() == "lose":
				fw.Error("agent gone")
				return
			case line.String() == "drop":
				return
			default:
				fmt.Fprintf(fw, "> %s\r\n", line.String())
				line.Reset()
			}
		}
	}
}

func TestRunTTY(t *testing.T) {
	near, far := net.Pipe()
	go fakeTerminal(far)
	inR, inW := io.Pipe()
	var out syncbuf.Buffer
	resizes := make(chan termSize, 1)
	type result struct {
		code int
		err  error
	}
	res := make(chan result, 1)
	go func() {
		code, err := runTTY(inR, &out, near, resizes)
		res <- result{code, err}
	}()
	io.WriteString(inW, "ls\r")
	wait.For(t, 5*time.Second, "the answer to ls", func() bool { return strings.Contains(out.String(), "> ls\r\n") })
	resizes <- termSize{40, 120}
	wait.For(t, 5*time.Second, "the resize", func() bool { return strings.Contains(out.String(), "size 40x120\r\n") })
	inW.Close() // input ends: Ctrl-D
	select {
	case r := <-res:
		if r.err != nil || r.code != 3 {
			t.Errorf("runTTY = %d, %v; want 3", r.code, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("runTTY did not return after the exit code")
	}
}

func TestRunTTYLost(t *testing.T) {
	for _, tt := range []struct{ input, want string }{
		{"lose\r", "agent gone"},
		{"drop\r", "without the command's exit code"},
	} {
		t.Run(tt.input, func(t *testing.T) {
			near, far := net.Pipe()
			go fakeTerminal(far)
			_, err := runTTY(strings.NewReader(tt.input), io.Discard, near, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("runTTY error %v, want %q", err, tt.want)
			}
		})
	}
}
