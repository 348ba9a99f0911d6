package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/daemon"
	"github.com/ouroboros-cloud/ouro/internal/testimage"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// importTinyCLI imports the tiny test VM (kernel and busybox initramfs)
// with `ouro image import --kernel`, as a user would, as the public image
// "tiny", and checks the server made a VM image of it.
func (c *cloud) importTinyCLI() {
	c.t.Helper()
	kernel, initrd := testimage.Tiny(c.t)
	c.ouro("image", "import", "tiny", "--kernel", kernel, "--initrd", initrd, "--cmdline", "ouro.test=1", "--public")
	c.wantVMImage("tiny", api.FormatKernel)
}

// wantVMImage fails the test unless image name is Ready for the VM driver
// in the given format.
func (c *cloud) wantVMImage(name string, format string) *api.Image {
	c.t.Helper()
	var img api.Image
	if err := c.clientAs(c.admin).Get(context.Background(), api.ImageKind, "default", name, &img); err != nil {
		c.t.Fatalf("image %s: %v", name, err)
	}
	if img.Status.Phase != "Ready" || img.Status.Driver != api.DriverVM || img.Spec.Format != format || img.Spec.Kernel == nil {
		c.t.Fatalf("image %s: format %q, kernel %v, status %+v; want a Ready %s image with a kernel for driver vm",
			name, img.Spec.Format, img.Spec.Kernel, img.Status, format)
	}
	return &img
}

// consoleLog returns `ouro instance console-log NAME`, or the error for a
// wait's message.
func (c *cloud) consoleLog(name string) string {
	out, errOut, err := c.run(nil, "instance", "console-log", name)
	if err != nil {
		return fmt.Sprintf("console-log: %v: %s", err, errOut)
	}
	return out
}

// hasLine reports whether log has line as a whole line (serial consoles
// end lines with "\r\n").
func hasLine(log, line string) bool {
	for _, l := range strings.Split(log, "\n") {
		if strings.TrimRight(l, "\r") == line {
			return true
		}
	}
	return false
}

// waitConsoleLine waits until the console log of instance name has line
// and returns how long that took from start.
func (c *cloud) waitConsoleLine(name, line string, timeout time.Duration, start time.Time) time.Duration {
	c.t.Helper()
	wait.ForDetail(c.t, timeout, name+" to print "+line, func() (bool, string) {
		log := c.consoleLog(name)
		return hasLine(log, line), tail(log, 1500)
	})
	return time.Since(start).Round(100 * time.Millisecond)
}

// killVMsOf kills, when the test ends, every QEMU an agent's data dir
// names: a failed test must not leave guests running.
func killVMsOf(t testing.TB, a *agentProc) {
	t.Cleanup(func() {
		for _, pid := range processesMentioning(a.dir) {
			if alive(pid, "qemu-system-x86") || alive(pid, "qemu-system-aar") {
				killPid(pid)
			}
		}
	})
}

// vmLeftovers lists what is left on host a of a deleted VM: any process
// naming its UID (QEMU), mount, cgroup or directory (leftovers), its run
// directory (QMP and console sockets), any file under the agent's data
// dir whose path names the UID (the overlay disk, seed, serial log), and
// its TAP device in the router namespace of network vni or in the host's
// own namespace.
func vmLeftovers(t testing.TB, a *agentProc, vni int, uid string) []string {
	t.Helper()
	l := leftovers(t, a.dir, uid)
	if runDir := filepath.Join(daemon.RunDir(a.dir), "vms", uid); fileExists(runDir) {
		l = append(l, "run directory "+runDir)
	}
	filepath.WalkDir(a.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(p, uid) {
			l = append(l, "file "+p)
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	dev := portDevOf(uid)
	if r := routerNetns(a, vni); r != "" {
		// The namespace goes with the network's last instance on the host,
		// possibly between finding it and looking into it.
		out, err := runIn(r, 30*time.Second, "ip", "-o", "link", "show", "dev", dev)
		switch {
		case err == nil:
			l = append(l, "TAP "+dev+" in the router namespace")
		case fileExists(r) && !strings.Contains(out, "does not exist"):
			l = append(l, fmt.Sprintf("links of %s: %v: %s", r, err, strings.TrimSpace(out)))
		}
	}
	if slices.Contains(links(t, a.netns), dev) {
		l = append(l, "TAP "+dev+" in the host namespace")
	}
	return l
}

// waitVMGone waits until nothing is left of a deleted VM on host a.
func waitVMGone(t testing.TB, a *agentProc, vni int, name, uid string) {
	t.Helper()
	wait.ForDetail(t, 60*time.Second, "nothing left of "+name+" on "+a.name, func() (bool, string) {
		l := vmLeftovers(t, a, vni, uid)
		return len(l) == 0, strings.Join(l, "; ")
	})
}

// TestVMsOnTwoHostsPingOverPrivateNetwork runs a tiny VM on each of two
// hosts, both on one private network. The second VM's user-data (read by
// its init from the metadata service) asks it to ping the first; it
// reaches it over the VXLAN between the hosts. (A host's router cannot
// be the pinger: the gateway is distributed, so a VM on another host
// answers its own host's copy of the gateway address.) Deleting both
// leaves nothing on either host.
func TestVMsOnTwoHostsPingOverPrivateNetwork(t *testing.T) {
	needVM(t)
	nc := newNetCloud(t, 2)
	hostA, hostB := nc.hosts[0], nc.hosts[1]
	killVMsOf(t, hostA)
	killVMsOf(t, hostB)
	nc.importTinyCLI()
	nc.ouro("network", "create", "priv", "--cidr", "10.77.0.0/24", "--no-nat")
	vni := nc.networkVNI("", "priv")

	// createVM creates a tiny VM on host with optional user-data, waits
	// until it runs there and has its DHCP address, and returns it.
	createVM := func(host *agentProc, name, userData string) (*api.Instance, api.Interface) {
		t.Helper()
		args := []string{"instance", "create", name, "--image", "tiny", "--flavor", "tiny", "--network", "priv"}
		if userData != "" {
			f := filepath.Join(nc.dir, name+".user-data")
			if err := os.WriteFile(f, []byte(userData), 0o600); err != nil {
				t.Fatal(err)
			}
			args = append(args, "--user-data", f)
		}
		for _, h := range nc.hosts {
			nc.setUnschedulable(h.name, h != host)
		}
		start := time.Now()
		nc.ouro(args...)
		in := nc.waitPhase("default", name, api.PhaseRunning)
		for _, h := range nc.hosts {
			nc.setUnschedulable(h.name, false)
		}
		if in.Status.Host != host.name || in.Status.Driver != api.DriverVM {
			t.Fatalf("%s runs on %q with driver %q, want %s and vm", name, in.Status.Host, in.Status.Driver, host.name)
		}
		ifc := nc.iface("", name)
		dhcp := nc.waitConsoleLine(name, "OURO-DHCP "+ifc.IP, 3*time.Minute, start)
		meta := nc.waitConsoleLine(name, "OURO-METADATA instance-id="+in.Metadata.UID, time.Minute, start)
		t.Logf("%s on %s: create → DHCP address %s %v, → its instance-id from the metadata service %v (TCG)",
			name, host.name, ifc.IP, dhcp, meta)
		return in, ifc
	}

	a, ifcA := createVM(hostA, "vm-a", "")
	start := time.Now()
	b, ifcB := createVM(hostB, "vm-b", "ping="+ifcA.IP+"\n")
	if ifcA.Network != "priv" || ifcB.Network != "priv" {
		t.Fatalf("interfaces %+v and %+v, want both on priv", ifcA, ifcB)
	}
	if !strings.HasPrefix(ifcA.IP, "10.77.0.") || !strings.HasPrefix(ifcB.IP, "10.77.0.") {
		t.Fatalf("addresses %s and %s are not in priv's 10.77.0.0/24", ifcA.IP, ifcB.IP)
	}
	wait.ForDetail(t, 2*time.Minute, "vm-b to ping vm-a", func() (bool, string) {
		log := nc.consoleLog("vm-b")
		if hasLine(log, "OURO-PING "+ifcA.IP+" failed") {
			t.Fatalf("vm-b could not ping vm-a at %s:\n%s", ifcA.IP, tail(log, 1500))
		}
		return hasLine(log, "OURO-PING "+ifcA.IP+" ok"), tail(log, 1500)
	})
	t.Logf("vm-b create → it pinged vm-a on the other host: %v", time.Since(start).Round(100*time.Millisecond))
	// vm-a has no user-data, so it pinged nobody.
	if log := nc.consoleLog("vm-a"); strings.Contains(log, "OURO-PING") {
		t.Errorf("vm-a pinged without being asked:\n%s", tail(log, 1500))
	}

	nc.ouro("instance", "delete", "vm-a", "vm-b", "--wait")
	waitVMGone(t, hostA, vni, "vm-a", a.Metadata.UID)
	waitVMGone(t, hostB, vni, "vm-b", b.Metadata.UID)
	// Nor did either host keep the other's VM.
	waitVMGone(t, hostA, vni, "vm-b", b.Metadata.UID)
	waitVMGone(t, hostB, vni, "vm-a", a.Metadata.UID)
}

// TestVMDebianCloudInit boots the Debian cloud-init test image as a VM:
// the qcow2 disk, kernel and initrd imported with the CLI, a key pair
// made with the CLI and #cloud-config user-data. cloud-init sets the host
// name from the user-data, installs the key for the default user, and its
// runcmd reports both, and the address DHCP gave, on the serial console.
// Deleting the instance leaves nothing on the host.
func TestVMDebianCloudInit(t *testing.T) {
	needVM(t)
	disk, kernel, initrd := testimage.Debian(t)
	nc := newNetCloud(t, 1)
	host := nc.hosts[0]
	killVMsOf(t, host)

	start := time.Now()
	nc.ouro("image", "import", "debian", disk, "--kernel", kernel, "--initrd", initrd,
		"--cmdline", testimage.DebianCmdline, "--public")
	nc.wantVMImage("debian", api.FormatQCOW2)
	t.Logf("image import of the Debian disk (%s): %v", disk, time.Since(start).Round(100*time.Millisecond))

	keyFile := filepath.Join(nc.dir, "ci-key")
	nc.ouro("keypair", "create", "ci", "-f", keyFile)
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key file %s: %v, %v; want mode 0600", keyFile, fi, err)
	}
	var kp api.KeyPair
	nc.getJSON(&kp, "keypair", "get", "ci")
	keyFields := strings.Fields(kp.Spec.PublicKey)
	if len(keyFields) < 2 {
		t.Fatalf("public key %q", kp.Spec.PublicKey)
	}

	// The flavor must hold Debian: memory ≥ 512 MiB, disk ≥ 2 GiB.
	var flavor api.Flavor
	nc.getJSON(&flavor, "flavor", "get", "small")
	if flavor.Spec.MemoryMiB < 512 || flavor.Spec.DiskGiB < 2 {
		t.Fatalf("flavor small is %+v, too small for Debian", flavor.Spec)
	}

	const hostname = "ci-from-user-data"
	userData := "#cloud-config\n" +
		"hostname: " + hostname + "\n" +
		"runcmd:\n" +
		"  - echo \"OURO-CLOUDINIT host=$(hostname) keys=$(grep -c -F '" + keyFields[1] + "' /home/" + testimage.DebianDefaultUser +
		"/.ssh/authorized_keys) ip=$(hostname -I | cut -d' ' -f1)\" > /dev/ttyS0\n"
	udFile := filepath.Join(nc.dir, "user-data")
	if err := os.WriteFile(udFile, []byte(userData), 0o600); err != nil {
		t.Fatal(err)
	}

	start = time.Now()
	nc.ouro("instance", "create", "deb", "--image", "debian", "--flavor", "small", "--key", "ci", "--user-data", udFile)
	in := nc.waitPhase("default", "deb", api.PhaseRunning)
	running := time.Since(start).Round(100 * time.Millisecond)
	if in.Status.Driver != api.DriverVM {
		t.Fatalf("deb driver %q, want vm", in.Status.Driver)
	}
	ifc := nc.iface("", "deb")

	marker := regexp.MustCompile(`(?m)^OURO-CLOUDINIT host=(\S*) keys=(\S*) ip=(\S*)\r?$`)
	var log string
	var kernelAt time.Duration
	wait.ForDetail(t, 5*time.Minute, "cloud-init's runcmd marker on deb's console", func() (bool, string) {
		log = nc.consoleLog("deb")
		if kernelAt == 0 && strings.Contains(log, kernelMarker) {
			kernelAt = time.Since(start).Round(100 * time.Millisecond)
		}
		return marker.MatchString(log), tail(log, 3000)
	})
	markerAt := time.Since(start).Round(time.Second)
	m := marker.FindStringSubmatch(log)
	t.Logf("%s", strings.TrimSpace(m[0]))
	t.Logf("create → Running %v, → guest kernel %v, → cloud-init runcmd %v (TCG)", running, kernelAt, markerAt)
	if m[1] != hostname {
		t.Errorf("runcmd saw hostname %q, want %q from the user-data", m[1], hostname)
	}
	if m[2] != "1" {
		t.Errorf("the key pair's key is in /home/%s/.ssh/authorized_keys %s times, want once", testimage.DebianDefaultUser, m[2])
	}
	if m[3] != ifc.IP {
		t.Errorf("the guest's address is %q, want %s from the network's DHCP", m[3], ifc.IP)
	}
	for _, l := range regexp.MustCompile(`(?m)^.*cloud-init\[\d+\]:.*(ERROR|Traceback).*$`).FindAllString(log, -1) {
		t.Errorf("cloud-init complained: %s", l)
	}

	vni := nc.networkVNI("", "default")
	nc.ouro("instance", "delete", "deb", "--wait")
	waitVMGone(t, host, vni, "deb", in.Metadata.UID)
}
