package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/freeport"
	"github.com/ouroboros-cloud/ouro/internal/syncbuf"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// defaultIdle is how long `ouro up` idles before its memory is read;
// BENCH_IDLE (a Go duration) overrides it.
const defaultIdle = 30 * time.Second

// BenchmarkIdleUp measures the memory of a whole one-machine cloud at
// rest: `ouro up` (server, embedded etcd and agent in one process) on free
// loopback ports with a fresh data dir, left idle, then VmRSS from
// /proc/PID/status. It also reports the size of the binary. The binary is
// $OURO_BIN (run.sh passes bin/ouro), else one built for the benchmark.
func BenchmarkIdleUp(b *testing.B) {
	testenv.NeedRoot(b)
	testenv.NeedBinary(b, "runc")
	bin := ouroBinary(b)
	idle := defaultIdle
	if v := os.Getenv("BENCH_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			b.Fatalf("BENCH_IDLE=%q: want a Go duration", v)
		}
		idle = d
	}
	st, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}
	var rss float64
	for range b.N {
		rss += float64(idleRSS(b, bin, idle)) / (1 << 20)
	}
	b.ReportMetric(rss/float64(b.N), "rss-MiB")
	b.ReportMetric(float64(st.Size())/(1<<20), "binary-MiB")
}

// ouroBinary returns $OURO_BIN or builds the binary.
func ouroBinary(b *testing.B) string {
	b.Helper()
	if p := os.Getenv("OURO_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			b.Fatal(err)
		}
		return abs
	}
	p := filepath.Join(b.TempDir(), "ouro")
	build := exec.Command("go", "build", "-trimpath", "-o", p, "../cmd/ouro")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build ouro: %v\n%s", err, out)
	}
	return p
}

// idleRSS runs `ouro up`, waits until it is up, lets it idle and returns
// its resident set in bytes.
func idleRSS(b *testing.B, bin string, idle time.Duration) int64 {
	b.Helper()
	dir := b.TempDir()
	cmd := exec.Command(bin, "up", "--data-dir", filepath.Join(dir, "data"),
		"--listen", freeport.Addr(b), "--agent-listen", freeport.Addr(b),
		"--etcd-client-url", "http://"+freeport.Addr(b), "--etcd-peer-url", "http://"+freeport.Addr(b))
	cmd.Env = append(os.Environ(), "OURO_CONFIG="+filepath.Join(dir, "config.yaml"))
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start ouro up: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	wait.ForDetail(b, 2*time.Minute, "ouro up", func() (bool, string) {
		select {
		case <-done:
			b.Fatalf("ouro up exited:\n%s", out.String())
		default:
		}
		return strings.Contains(out.String(), "Ouroboros is up"), ""
	})
	t := time.NewTimer(idle)
	defer t.Stop()
	select {
	case <-done:
		b.Fatalf("ouro up exited while idle:\n%s", out.String())
	case <-t.C:
	}
	rss, err := vmRSS(cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	return rss
}

// vmRSS reads VmRSS of a process in bytes.
func vmRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read status of %d: %w", pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "VmRSS:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS of %d: %w", pid, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
