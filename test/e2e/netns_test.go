package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netnsDir is where ip(8) keeps the files of named network namespaces.
const netnsDir = "/run/netns"

// commandIn returns a command that runs argv inside the network namespace
// at path netns, or in the test's own when netns is "". It uses nsenter
// with --net only: `ip netns exec` would also unshare the mount namespace
// and hide the agents' overlay mounts from each other and from the test.
// Without --fork nsenter execs the program, so the command's pid is the
// program's and killing it kills the program.
func commandIn(netns, name string, args ...string) *exec.Cmd {
	if netns == "" {
		return exec.Command(name, args...)
	}
	return exec.Command("nsenter", append([]string{"--net=" + netns, "--", name}, args...)...)
}

// runIn runs argv inside the network namespace at path netns and returns
// its combined output; it gives up after timeout.
func runIn(netns string, timeout time.Duration, name string, args ...string) (string, error) {
	cmd := commandIn(netns, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(timeout):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.String(), fmt.Errorf("%s %s: timed out after %v", name, strings.Join(args, " "), timeout)
	}
}

// mustRunIn is runIn that fails the test when the command fails.
func mustRunIn(t testing.TB, netns string, name string, args ...string) string {
	t.Helper()
	out, err := runIn(netns, 30*time.Second, name, args...)
	if err != nil {
		ns := netns
		if ns == "" {
			ns = "the test's namespace"
		}
		t.Fatalf("in %s: %s %s: %v\n%s", ns, name, strings.Join(args, " "), err, out)
	}
	return out
}

// randomSuffix returns n random lowercase letters and digits.
func randomSuffix(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// addNetns creates the named network namespace with loopback up and
// returns its path. When the test ends, every process inside it is killed
// and the namespace removed (its devices go with it).
func addNetns(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join(netnsDir, name)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		killInNetns(t, path)
		if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v: %s", name, err, out)
		}
	})
	mustRunIn(t, "", "ip", "-n", name, "link", "set", "lo", "up")
	return path
}

// netnsInode returns the inode that identifies the namespace at path.
func netnsInode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return st.Ino, nil
}

// pidsInNetns lists the processes whose network namespace is the one at
// path.
func pidsInNetns(path string) []int {
	ino, err := netnsInode(path)
	if err != nil {
		return nil
	}
	want := fmt.Sprintf("net:[%d]", ino)
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if link, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "net")); err == nil && link == want {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killInNetns kills every process in the namespace at path and waits until
// they are gone.
func killInNetns(t testing.TB, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := pidsInNetns(path)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes %v in %s survive SIGKILL", pids, path)
			return
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// netnsDialer returns a DialContext that opens its sockets inside the
// network namespace at path: it moves its locked OS thread into the
// namespace, dials, and moves back. A socket belongs to the namespace it
// was created in, so the connection stays there.
func netnsDialer(path string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open network namespace %s: %w", path, err)
		}
		defer unix.Close(target)
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			return nil, fmt.Errorf("open own network namespace: %w", err)
		}
		defer unix.Close(orig)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			return nil, fmt.Errorf("enter network namespace %s: %w", path, err)
		}
		conn, dialErr := d.DialContext(ctx, network, addr)
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and dies with this goroutine rather
			// than run other goroutines in the wrong namespace.
			if conn != nil {
				conn.Close()
			}
			return nil, fmt.Errorf("leave network namespace %s: %w", path, err)
		}
		runtime.UnlockOSThread()
		return conn, dialErr
	}
}

// netnsTransport returns the HTTP transport of the cloud's API clients: it
// dials inside c.netns and trusts the cluster CA.
func (c *cloud) netnsTransport() *http.Transport {
	c.transportOnce.Do(func() {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(c.ca)
		c.transport = &http.Transport{
			DialContext:         netnsDialer(c.netns),
			TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     30 * time.Second,
			ForceAttemptHTTP2:   true,
		}
		c.t.Cleanup(c.transport.CloseIdleConnections)
	})
	return c.transport
}
