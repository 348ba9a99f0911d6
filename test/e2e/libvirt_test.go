package e2e

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// libvirtURI is the system libvirt daemon the VM benchmark compares with.
const libvirtURI = "qemu:///system"

// ensureLibvirtd makes sure Debian's libvirtd answers on libvirtURI,
// starting it (and stopping it at cleanup) when nothing does. Machines
// without systemd, like CI containers, have no daemon running.
func ensureLibvirtd(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("virsh"); err != nil {
		t.Skip("virsh not installed (libvirt-clients)")
	}
	if exec.Command("virsh", "-c", libvirtURI, "version").Run() == nil {
		return
	}
	// libvirtd hands serial logs to virtlogd; both run in the foreground
	// under the test.
	for _, daemon := range []string{"virtlogd", "libvirtd"} {
		bin := "/usr/sbin/" + daemon
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("%s not installed (libvirt-daemon-system)", daemon)
		}
		// Their output goes to a file, shown if the test fails: on the
		// test's own output it would break the benchmark's result line.
		logPath := filepath.Join(t.TempDir(), daemon+".log")
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", daemon, err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			logFile.Close()
			if t.Failed() {
				out, _ := os.ReadFile(logPath)
				t.Logf("output of %s:\n%s", daemon, out)
			}
		})
	}
	wait.ForDetail(t, 30*time.Second, "libvirtd answers", func() (bool, string) {
		out, err := exec.Command("virsh", "-c", libvirtURI, "version").CombinedOutput()
		return err == nil, string(out)
	})
}

// libvirtDomain is the part of libvirt's domain XML the benchmark uses: a
// TCG guest booting a kernel and initramfs with its serial port in a file.
type libvirtDomain struct {
	XMLName xml.Name `xml:"domain"`
	Type    string   `xml:"type,attr"`
	Name    string   `xml:"name"`
	Memory  struct {
		Unit  string `xml:"unit,attr"`
		Value int    `xml:",chardata"`
	} `xml:"memory"`
	VCPU int `xml:"vcpu"`
	OS   struct {
		Type    string `xml:"type"`
		Kernel  string `xml:"kernel"`
		Initrd  string `xml:"initrd"`
		Cmdline string `xml:"cmdline"`
	} `xml:"os"`
	Devices struct {
		Serial struct {
			Type   string `xml:"type,attr"`
			Source struct {
				Path string `xml:"path,attr"`
			} `xml:"source"`
		} `xml:"serial"`
	} `xml:"devices"`
}

// virshCreate boots a transient domain with `virsh create` and returns
// when the command returned; destroy is registered for cleanup. libvirt
// runs QEMU as its own user: kernel, initrd and the directory of
// serialLog must be readable (and that directory writable) by it.
func virshCreate(t testing.TB, name, kernel, initrd, cmdline, serialLog string, memMiB, vcpus int) {
	t.Helper()
	var d libvirtDomain
	d.Type, d.Name, d.VCPU = "qemu", name, vcpus
	d.Memory.Unit, d.Memory.Value = "MiB", memMiB
	d.OS.Type, d.OS.Kernel, d.OS.Initrd, d.OS.Cmdline = "hvm", kernel, initrd, cmdline
	d.Devices.Serial.Type, d.Devices.Serial.Source.Path = "file", serialLog
	body, err := xml.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(filepath.Dir(serialLog), name+".xml")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("virsh", "-c", libvirtURI, "destroy", name).Run() })
	if out, err := exec.Command("virsh", "-c", libvirtURI, "create", path).CombinedOutput(); err != nil {
		t.Fatalf("virsh create %s: %v: %s", name, err, out)
	}
}

// virshDestroy stops a transient domain, which removes it.
func virshDestroy(t testing.TB, name string) {
	t.Helper()
	if out, err := exec.Command("virsh", "-c", libvirtURI, "destroy", name).CombinedOutput(); err != nil &&
		!strings.Contains(string(out), "not found") {
		t.Fatalf("virsh destroy %s: %v: %s", name, err, out)
	}
}

// fileContains reports whether the file holds marker.
func fileContains(path, marker string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Contains(b, []byte(marker))
}

// kernelMarker is the first line a Linux kernel prints: the guest kernel
// runs once it is on the serial console.
const kernelMarker = "Linux version"
