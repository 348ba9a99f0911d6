package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/internal/testimage"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// needVM requires what a real VM needs on the host.
func needVM(t testing.TB) {
	t.Helper()
	if runtime.GOARCH == "arm64" {
		testenv.NeedBinary(t, "qemu-system-aarch64")
	} else {
		testenv.NeedBinary(t, "qemu-system-x86_64")
	}
	testenv.NeedBinary(t, "qemu-img")
	testenv.NeedBinary(t, "genisoimage")
}

// putFileBlob uploads a file as a blob and returns it.
func putFileBlob(t testing.TB, cl *client.Client, path, mediaType string) api.Blob {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	b := api.Blob{Digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), Size: n, MediaType: mediaType}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if err := cl.PutBlob(context.Background(), b.Digest, n, f); err != nil {
		t.Fatalf("upload %s: %v", path, err)
	}
	return b
}

// importTiny imports the tiny test VM (kernel and busybox initramfs) as
// the public kernel image "tiny", through the Go client.
func (c *cloud) importTiny() *api.Image {
	c.t.Helper()
	kernel, initrd := testimage.Tiny(c.t)
	cl := c.clientAs(c.admin)
	img := &api.Image{
		Metadata: api.ObjectMeta{Name: "tiny", Project: "default"},
		Spec: api.ImageSpec{
			Public: true, Format: api.FormatKernel, Architecture: runtime.GOARCH,
			Kernel:  ptr(putFileBlob(c.t, cl, kernel, api.MediaTypeKernel)),
			Initrd:  ptr(putFileBlob(c.t, cl, initrd, api.MediaTypeInitrd)),
			Cmdline: "ouro.test=1",
		},
	}
	if _, err := cl.Create(context.Background(), img, client.CreateOptions{}); err != nil {
		c.t.Fatalf("create image tiny: %v", err)
	}
	if img.Status.Phase != "Ready" || img.Status.Driver != api.DriverVM {
		c.t.Fatalf("image tiny: status %+v, want Ready for driver vm", img.Status)
	}
	return img
}

func ptr[T any](v T) *T { return &v }

// logs returns an instance's console log, or the error for a wait's
// message (an agent that just started may not serve it yet).
func (c *cloud) logs(name string) string {
	out, errOut, err := c.run(nil, "instance", "logs", name)
	if err != nil {
		return fmt.Sprintf("logs: %v: %s", err, errOut)
	}
	return out
}

// qemuOf returns the pids of QEMU processes of an instance.
func qemuOf(uid string) []int {
	var out []int
	for _, pid := range processesMentioning(uid) {
		if alive(pid, "qemu-system-x86") || alive(pid, "qemu-system-aar") {
			out = append(out, pid)
		}
	}
	return out
}

// TestVMBootsGetsDHCPAndSurvivesAgentRestart boots the tiny image as a
// VM on a one-host cloud: the guest gets its IPAM address from the
// network's dnsmasq over its TAP port and its own instance-id from the
// metadata service (the image is imported with the CLI, and the console
// read with `ouro instance console-log`), the VM outlives a killed agent and
// is adopted by the next (which reboots it in place), it stops and starts,
// and deleting it leaves nothing on the host.
func TestVMBootsGetsDHCPAndSurvivesAgentRestart(t *testing.T) {
	needVM(t)
	nc := newNetCloud(t, 1)
	a := nc.hosts[0]
	killVMsOf(t, a)
	nc.importTinyCLI()

	start := time.Now()
	nc.ouro("instance", "create", "vm1", "--image", "tiny", "--flavor", "tiny")
	in := nc.waitPhase("default", "vm1", api.PhaseRunning)
	running := time.Since(start)
	if in.Status.Driver != api.DriverVM {
		t.Fatalf("vm1 driver %q, want vm", in.Status.Driver)
	}
	uid := in.Metadata.UID
	ifc := nc.iface("", "vm1")
	var logs string
	wait.ForDetail(t, 3*time.Minute, "vm1 to say OURO-DHCP "+ifc.IP, func() (bool, string) {
		logs = nc.logs("vm1")
		return strings.Contains(logs, "OURO-DHCP "+ifc.IP+"\n") || strings.Contains(logs, "OURO-DHCP "+ifc.IP+"\r"), tail(logs, 1500)
	})
	dhcpAt := time.Since(start).Round(100 * time.Millisecond)
	metaAt := nc.waitConsoleLine("vm1", "OURO-METADATA instance-id="+uid, time.Minute, start)
	t.Logf("create → Running %v; create → guest has its DHCP address %v, its instance-id from the metadata service %v (TCG)",
		running.Round(100*time.Millisecond), dhcpAt, metaAt)
	if !strings.Contains(logs, "Linux version") || !strings.Contains(logs, "OURO-INIT") {
		t.Errorf("console log lacks the kernel's and init's first lines:\n%s", tail(logs, 2000))
	}

	// The port is a TAP on the network's bridge, with no instance
	// namespace, and the guest answers on it.
	router := routerNetns(a, nc.networkVNI("", "default"))
	dev := portDevOf(uid)
	if out := mustRunIn(t, router, "ip", "-d", "link", "show", dev); !strings.Contains(out, "tun type tap") || !strings.Contains(out, "master br0") {
		t.Fatalf("port %s is not a TAP on br0:\n%s", dev, out)
	}
	if slices.ContainsFunc(mountsUnder(agentNetnsDir(a.dir)), func(m string) bool { return strings.Contains(m, "ouro-i") }) {
		t.Errorf("a VM got an instance network namespace: %v", mountsUnder(agentNetnsDir(a.dir)))
	}
	wait.ForDetail(t, 60*time.Second, "ping of vm1 from its router", func() (bool, string) {
		out, err := runIn(router, 10*time.Second, "busybox", "ping", "-c", "1", "-W", "2", ifc.IP)
		return err == nil, out
	})

	// The agent dies; the VM does not. The next agent adopts it.
	pids := qemuOf(uid)
	if len(pids) != 1 {
		t.Fatalf("QEMU processes of vm1: %v, want one", pids)
	}
	a.kill()
	if got := qemuOf(uid); !slices.Equal(got, pids) {
		t.Fatalf("QEMU of vm1 after the agent died: %v, want %v", got, pids)
	}
	nc.startAgent(a)
	nc.ouro("instance", "reboot", "vm1")
	wait.ForDetail(t, 3*time.Minute, "vm1 rebooted in place by the new agent", func() (bool, string) {
		in, err := nc.instance("default", "vm1")
		if err != nil {
			return false, err.Error()
		}
		logs := nc.logs("vm1")
		return in.Status.Phase == api.PhaseRunning && in.Status.ObservedReboots >= 1 && strings.Count(logs, "OURO-DHCP "+ifc.IP) >= 2,
			fmt.Sprintf("phase %s observed reboots %d; log: %s", in.Status.Phase, in.Status.ObservedReboots, tail(logs, 500))
	})
	if got := qemuOf(uid); !slices.Equal(got, pids) {
		t.Errorf("QEMU of vm1 after agent restart and reboot: %v, want the same %v", got, pids)
	}

	// Stop powers the guest off (it handles the ACPI power button); the
	// port stays for the next start.
	nc.ouro("instance", "stop", "vm1")
	stopped := nc.waitPhase("default", "vm1", api.PhaseStopped)
	if got := qemuOf(uid); len(got) != 0 {
		t.Errorf("QEMU of a stopped vm1: %v", got)
	}
	if stopped.Status.ExitCode == nil || *stopped.Status.ExitCode != 0 {
		t.Errorf("stopped vm1: exit code %v, want 0 (a clean power-off); console:\n%s", stopped.Status.ExitCode, tail(nc.consoleLog("vm1"), 2000))
	}
	if !slices.Contains(links(t, router), dev) {
		t.Errorf("TAP %s removed while vm1 is only stopped", dev)
	}
	nc.ouro("instance", "start", "vm1")
	nc.waitPhase("default", "vm1", api.PhaseRunning)
	wait.ForDetail(t, 3*time.Minute, "vm1 back with its address", func() (bool, string) {
		logs := nc.logs("vm1")
		return strings.Count(logs, "OURO-DHCP "+ifc.IP) >= 3, tail(logs, 500)
	})

	// Delete: no process, file, socket or TAP left.
	vni := nc.networkVNI("", "default")
	nc.ouro("instance", "delete", "vm1", "--wait")
	waitVMGone(t, a, vni, "vm1", uid)
}

// portDevOf is the netplane's device name of an instance's port: "ourp"
// and the first 11 letters and digits of its UID.
func portDevOf(uid string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(uid) {
		if b.Len() == 11 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return "ourp" + b.String()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func killPid(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}
