package testimage

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/testenv"
)

func TestDebianCompareVersions(t *testing.T) {
	got := []string{"6.1.0-10-amd64", "6.1.0-9-amd64", "5.10.0-28-amd64", "6.12.1-1-amd64", "6.1.0-10-cloud-amd64"}
	slices.SortFunc(got, debianCompareVersions)
	want := []string{"5.10.0-28-amd64", "6.1.0-9-amd64", "6.1.0-10-amd64", "6.1.0-10-cloud-amd64", "6.12.1-1-amd64"}
	if !slices.Equal(got, want) {
		t.Errorf("sorted %v, want %v", got, want)
	}
}

func TestDebianModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/fs/isofs/isofs.ko":                 "isofs",
		"kernel/drivers/net/virtio_net.ko.xz":      "virtio_net",
		"kernel/drivers/ata/ata-generic.ko.zst":    "ata_generic",
		"kernel/net/9p/9pnet_virtio.ko":            "9pnet_virtio",
		"kernel/drivers/virtio/virtio_pci.ko.gz\n": "virtio_pci",
	} {
		if got := debianModuleName(strings.TrimSpace(in)); got != want {
			t.Errorf("debianModuleName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDebianImageFiles checks what Debian returns: a qcow2 disk with no
// backing file that qemu-img finds consistent, and the boot files.
func TestDebianImageFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("may build the image, which takes minutes")
	}
	disk, kernel, initrd := Debian(t)
	out, err := exec.Command("qemu-img", "info", "--output=json", disk).Output()
	if err != nil {
		t.Fatalf("qemu-img info: %v", err)
	}
	var info struct {
		Format      string `json:"format"`
		VirtualSize int64  `json:"virtual-size"`
		Backing     string `json:"backing-filename"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	if info.Format != "qcow2" || info.Backing != "" || info.VirtualSize < 512<<20 {
		t.Errorf("disk %s: %+v, want a qcow2 of at least 512 MiB without a backing file", disk, info)
	}
	debianTestRun(t, "qemu-img", "check", "-q", disk)
	for _, p := range []string{kernel, initrd} {
		if fi, err := os.Stat(p); err != nil || fi.Size() < 1<<20 {
			t.Errorf("boot file %s: %v", p, err)
		}
	}
}

// TestDebianImageBootsWithCloudInit builds (or reuses) the Debian test
// image and boots it in QEMU (TCG) with a NoCloud seed. The NIC is QEMU's
// user-mode network with restrict=on: it answers DHCP but reaches nothing
// outside. The user-data's runcmd writes a marker line to the serial
// console with the hostname cloud-init set, whether the SSH key was
// installed for the default user, whether sshd runs and the address DHCP
// gave the NIC.
func TestDebianImageBootsWithCloudInit(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a virtual machine")
	}
	qemu := testenv.NeedBinary(t, "qemu-system-x86_64")
	genisoimage := testenv.NeedBinary(t, "genisoimage")
	disk, kernel, initrd := Debian(t)

	dir := t.TempDir()
	overlay := filepath.Join(dir, "root.qcow2")
	debianTestRun(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", disk, overlay, "4G")

	const hostname = "ouro-ci-vm"
	seed := filepath.Join(dir, "seed")
	if err := os.Mkdir(seed, 0o755); err != nil {
		t.Fatal(err)
	}
	debianTestWrite(t, filepath.Join(seed, "meta-data"), "instance-id: ouro-test-0001\nlocal-hostname: "+hostname+"\n")
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOuroTestKeyOuroTestKeyOuroTestKeyOuroTest ouro-test-key"
	debianTestWrite(t, filepath.Join(seed, "user-data"), "#cloud-config\nhostname: "+hostname+"\n"+
		"ssh_authorized_keys:\n  - "+key+"\n"+
		"runcmd:\n  - echo \"OURO-CLOUDINIT-MARKER host=$(hostname) keys=$(grep -c ouro-test-key /home/"+DebianDefaultUser+
		"/.ssh/authorized_keys) sshd=$(systemctl is-active ssh) ip=$(hostname -I | cut -d' ' -f1)\" > /dev/ttyS0\n")
	iso := filepath.Join(dir, "seed.iso")
	debianTestRun(t, genisoimage, "-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock",
		filepath.Join(seed, "user-data"), filepath.Join(seed, "meta-data"))

	serial := filepath.Join(dir, "serial.log")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, qemu,
		"-accel", "tcg", "-m", "1024", "-smp", "1",
		"-display", "none", "-monitor", "none", "-no-reboot",
		"-nic", "user,model=virtio-net-pci,restrict=on",
		"-serial", "file:"+serial,
		"-kernel", kernel, "-initrd", initrd, "-append", DebianCmdline,
		"-drive", "file="+overlay+",if=virtio,format=qcow2",
		"-drive", "file="+iso+",if=virtio,format=raw,readonly=on",
	)
	var qemuOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &qemuOut, &qemuOut
	start := time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})

	marker := regexp.MustCompile(`OURO-CLOUDINIT-MARKER host=(\S*) keys=(\S*) sshd=(\S*) ip=(\S*)`)
	login := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(hostname) + ` login:`)
	deadline := time.Now().Add(15 * time.Minute)
	var log []byte
	var markerAt time.Duration
	for {
		log, _ = os.ReadFile(serial)
		if markerAt == 0 && marker.Match(log) {
			markerAt = time.Since(start)
		}
		if markerAt != 0 && login.Match(log) {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("qemu exited before the marker: %v\n%s\nserial log:\n%s", err, qemuOut.String(), debianLogTail(log))
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cloud-init marker and login prompt within 15 minutes; serial log:\n%s", debianLogTail(log))
		}
	}
	m := marker.FindSubmatch(log)
	t.Logf("%s", m[0])
	if string(m[1]) != hostname {
		t.Errorf("runcmd saw hostname %q, want %q", m[1], hostname)
	}
	if string(m[2]) != "1" {
		t.Errorf("the SSH key is in /home/%s/.ssh/authorized_keys %s times, want once", DebianDefaultUser, m[2])
	}
	if string(m[3]) != "active" {
		t.Errorf("sshd is %q, want active", m[3])
	}
	// Every cloud-init module must have worked.
	for _, l := range regexp.MustCompile(`(?m)^.*cloud-init\[\d+\]:.*(WARNING|ERROR|Traceback|failed).*$`).FindAll(log, -1) {
		t.Errorf("cloud-init complained: %s", l)
	}
	// QEMU's user-mode network hands out 10.0.2.15 by DHCP.
	if string(m[4]) != "10.0.2.15" {
		t.Errorf("the NIC has address %q, want 10.0.2.15 from DHCP", m[4])
	}
	t.Logf("cloud-init ran runcmd %v after QEMU started; login prompt as %s after %v",
		markerAt.Round(time.Second), hostname, time.Since(start).Round(time.Second))
}

func debianTestRun(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func debianTestWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// debianLogTail returns the end of a serial log for a failure message.
func debianLogTail(b []byte) string {
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}
