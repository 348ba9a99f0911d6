package ceph

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/volume"
)

func TestFenceAddr(t *testing.T) {
	tests := []struct {
		client, want string
		ok           bool
	}{
		{"10.0.0.5", "10.0.0.5:0/0", true},
		{"fd00::5", "[fd00::5]:0/0", true},
		{"127.0.0.1:0/1516440895", "127.0.0.1:0/1516440895", true},
		{"host-a", "", false},
		{"10.0.0.5:0", "", false},
		{"10.0.0.5:0/x", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := fenceAddr(tt.client)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("fenceAddr(%q) = %q, %v; want %q, ok %v", tt.client, got, err, tt.want, tt.ok)
		}
	}
}

// ioSession is a qemu-io process holding a volume open, taking commands.
type ioSession struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// openSession starts qemu-io on an attachment in interactive mode.
func openSession(t *testing.T, ctx context.Context, att volume.Attachment) *ioSession {
	t.Helper()
	testenv.NeedBinary(t, "qemu-io")
	cmd := exec.CommandContext(ctx, "qemu-io", qemuIOArgs(att)...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return &ioSession{cmd: cmd, in: in, out: bufio.NewReader(out)}
}

// do runs one qemu-io command and returns its output line (qemu-io
// prints "wrote ..." or "... failed ..." for a write).
func (s *ioSession) do(t *testing.T, command string) string {
	t.Helper()
	if _, err := fmt.Fprintln(s.in, command); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := s.out.ReadString('\n')
		if err != nil {
			t.Fatalf("qemu-io %q: %v", command, err)
		}
		line = strings.TrimSpace(strings.TrimPrefix(line, "qemu-io> "))
		if strings.HasPrefix(line, "wrote") || strings.Contains(line, "failed") {
			return line
		}
	}
}

// watcherAddr returns the address of the one client watching volume id.
func watcherAddr(t *testing.T, ctx context.Context, b *Backend, id string) string {
	t.Helper()
	out, err := b.rbd(ctx, "status", "--format", "json", b.spec(imagePrefix+id))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Watchers []struct {
			Address string `json:"address"`
		} `json:"watchers"`
	}
	if err := json.Unmarshal(out, &st); err != nil || len(st.Watchers) != 1 {
		t.Fatalf("rbd status = %s (%v), want one watcher", out, err)
	}
	return st.Watchers[0].Address
}

// TestLockAndFence: a client (host A, one running qemu-io) writes and
// holds the volume's lock; another is refused the lock; after A is fenced
// its writes fail, and the other takes the lock and writes at once,
// without waiting for A's exclusive lock to time out.
func TestLockAndFence(t *testing.T) {
	b, c := newBackend(t)
	ctx := testCtx(t, 3*time.Minute)
	const id = "fence"
	const hostB = "127.0.0.1"
	if err := b.Create(ctx, id, 8*mib, nil); err != nil {
		t.Fatal(err)
	}
	att, err := b.Blockdev(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	a := openSession(t, ctx, att)
	if line := a.do(t, "write -P 0x11 0 64k"); !strings.HasPrefix(line, "wrote") {
		t.Fatalf("host A's first write: %s", line)
	}
	hostA := watcherAddr(t, ctx, b, id)
	if err := b.Delete(ctx, id); err == nil || !strings.Contains(err.Error(), "still open") {
		t.Fatalf("delete of an open volume: %v, want refused", err)
	}
	for range 2 {
		if err := b.Lock(ctx, id, hostA); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Lock(ctx, id, hostB); !errors.Is(err, volume.ErrLocked) || !strings.Contains(err.Error(), hostA) {
		t.Fatalf("lock by B while A holds it: %v, want ErrLocked naming A", err)
	}
	if err := b.Fence(ctx, hostA); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Unfence(context.Background(), hostA) })
	// The OSDs apply the blocklist as they get the new OSD map, within
	// moments: A's writes fail from then on.
	wait.ForDetail(t, 10*time.Second, "fenced host A's writes to fail", func() (bool, string) {
		line := a.do(t, "write -P 0x22 0 64k")
		return strings.Contains(line, "failed"), line
	})
	if line := a.do(t, "write -P 0x22 0 64k"); !strings.Contains(line, "failed") {
		t.Fatalf("fenced host A's write after one failed: %s", line)
	}
	if err := b.Lock(ctx, id, hostB); err != nil {
		t.Fatalf("lock by B after A was fenced: %v", err)
	}
	start := time.Now()
	qemuIO(t, ctx, att, "write -P 0x33 0 64k")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("B's write took %v after the fence, want well under the 30 s lock timeout", d)
	}
	if got := exportPrefix(t, ctx, c, id, 64<<10); !filled(got, 0x33) {
		t.Fatal("the volume does not hold B's write")
	}
	for range 2 {
		if err := b.Unlock(ctx, id, hostB); err != nil {
			t.Fatal(err)
		}
		if err := b.Unfence(ctx, hostA); err != nil {
			t.Fatal(err)
		}
	}
	obj, err := b.headerObject(ctx, imagePrefix+id)
	if err != nil {
		t.Fatal(err)
	}
	if holders, err := b.lockers(ctx, obj); err != nil || len(holders) != 0 {
		t.Fatalf("locks left after Unlock: %+v, %v", holders, err)
	}
	// A host's IP address fences every client of the host.
	if err := b.Fence(ctx, "192.0.2.7"); err != nil {
		t.Fatal(err)
	}
	if set, err := b.blocklist(ctx); err != nil || !set["192.0.2.7:0/0"] {
		t.Fatalf("blocklist after fencing 192.0.2.7: %v, %v", set, err)
	}
	if err := b.Unfence(ctx, "192.0.2.7"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
}
