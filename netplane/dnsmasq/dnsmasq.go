// Package dnsmasq runs one dnsmasq per network in the network's router
// namespace: static DHCP leases for the host's own instance ports and DNS
// for every instance name of the network.
//
// A Server's state lives in one directory:
//
//	dnsmasq.pid   written by dnsmasq; used to adopt it after a restart
//	dhcp-hosts    mac,ip,name per local port (--dhcp-hostsfile)
//	hosts         ip name per instance of the network (--addn-hosts)
//	leases        dnsmasq's lease database
//	applied       hash of the hosts files dnsmasq has been told about
//
// Ensure compares the running process's command line with the one wanted:
// same command line and changed files → rewrite the files and SIGHUP (which
// makes dnsmasq re-read both); different command line → restart. The
// "applied" stamp is written only after the signal, so a crash between
// writing and signalling is repaired by the next Ensure.
package dnsmasq

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ouroboros-cloud/ouro/netplane/process"
)

// Binary is the dnsmasq program.
const Binary = "/usr/sbin/dnsmasq"

// Host is a static DHCP lease.
type Host struct {
	MAC  net.HardwareAddr
	IP   netip.Addr
	Name string
}

// Record is a DNS name of the network.
type Record struct {
	Name string
	IP   netip.Addr
}

// Config is what one network's dnsmasq serves.
type Config struct {
	// Dir holds the server's files (see the package comment).
	Dir string
	// NetNS is the path of the router namespace dnsmasq runs in.
	NetNS   string
	CIDR    netip.Prefix
	Gateway netip.Addr
	// Upstream are the resolvers DNS forwards to.
	Upstream []netip.Addr
	Hosts    []Host
	Records  []Record
	// AddressDomain, when set, makes DNS answer a name for every address
	// of the network: ip-172-31-0-5.<AddressDomain> is 172.31.0.5, and
	// back (dnsmasq's synth-domain).
	AddressDomain string
}

func (c Config) pidFile() string { return filepath.Join(c.Dir, "dnsmasq.pid") }

// Args returns dnsmasq's command line (without the program name).
func (c Config) Args() []string {
	mask := net.IP(net.CIDRMask(c.CIDR.Bits(), 32)).String()
	args := []string{
		"--conf-file=/dev/null",
		"--pid-file=" + c.pidFile(),
		"--bind-interfaces",
		"--listen-address=" + c.Gateway.String(),
		"--no-resolv",
		"--no-hosts",
		"--domain-needed",
		"--dhcp-authoritative",
		"--dhcp-range=" + c.CIDR.Masked().Addr().String() + ",static," + mask + ",12h",
		"--dhcp-hostsfile=" + filepath.Join(c.Dir, "dhcp-hosts"),
		"--dhcp-ignore=tag:!known",
		"--dhcp-leasefile=" + filepath.Join(c.Dir, "leases"),
		"--dhcp-option=option:router," + c.Gateway.String(),
		"--dhcp-option=option:dns-server," + c.Gateway.String(),
		"--addn-hosts=" + filepath.Join(c.Dir, "hosts"),
		"--quiet-dhcp",
	}
	for _, u := range c.Upstream {
		args = append(args, "--server="+u.String())
	}
	if c.AddressDomain != "" && validName(c.AddressDomain) {
		args = append(args, "--synth-domain="+c.AddressDomain+","+c.CIDR.Masked().String()+",ip-")
	}
	return args
}

// files renders the hosts files.
func (c Config) files() (dhcpHosts, hosts []byte) {
	var d, h bytes.Buffer
	for _, x := range c.Hosts {
		if x.Name != "" && validName(x.Name) {
			fmt.Fprintf(&d, "%s,%s,%s\n", x.MAC, x.IP, x.Name)
		} else {
			fmt.Fprintf(&d, "%s,%s\n", x.MAC, x.IP)
		}
	}
	for _, r := range c.Records {
		if validName(r.Name) {
			fmt.Fprintf(&h, "%s %s\n", r.IP, r.Name)
		}
	}
	return d.Bytes(), h.Bytes()
}

// validName accepts DNS labels and dotted names of them.
func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// Ensure makes dnsmasq run with c, adopting a running one when its command
// line matches. It reports whether a process was started.
func Ensure(c Config) (started bool, err error) {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return false, fmt.Errorf("dnsmasq dir: %w", err)
	}
	// dnsmasq drops to nobody and re-reads the files as nobody.
	if err := os.Chmod(c.Dir, 0o755); err != nil {
		return false, fmt.Errorf("dnsmasq dir: %w", err)
	}
	dhcpHosts, hosts := c.files()
	sum := sha256.Sum256(slices.Concat(dhcpHosts, []byte{0}, hosts))
	stamp := hex.EncodeToString(sum[:])
	if err := writeFile(filepath.Join(c.Dir, "dhcp-hosts"), dhcpHosts); err != nil {
		return false, err
	}
	if err := writeFile(filepath.Join(c.Dir, "hosts"), hosts); err != nil {
		return false, err
	}

	args := c.Args()
	pid, running := Running(c.Dir)
	// Restart when the command line changed, or when the process runs in
	// another namespace than the router's (the router namespace was
	// recreated under it).
	if running && (!slices.Equal(process.Cmdline(pid), append([]string{Binary}, args...)) || !process.InNamespace(pid, c.NetNS)) {
		if err := Stop(c.Dir); err != nil {
			return false, err
		}
		running = false
	}
	stampFile := filepath.Join(c.Dir, "applied")
	if running {
		old, _ := os.ReadFile(stampFile)
		if string(old) == stamp {
			return false, nil
		}
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			return false, fmt.Errorf("reload dnsmasq %d: %w", pid, err)
		}
		return false, writeFile(stampFile, []byte(stamp))
	}
	// The leases file must be writable by dnsmasq after it drops to nobody.
	if err := touch(filepath.Join(c.Dir, "leases")); err != nil {
		return false, err
	}
	_ = os.Remove(c.pidFile())
	// A dnsmasq this directory does not know (left by an older state
	// directory, or started by hand) may hold the gateway's port in the
	// router namespace: the namespace is ours, so it goes.
	if err := stopOthersIn(c.NetNS); err != nil {
		return false, err
	}
	// The foreground process returns once the daemon is set up (or has
	// failed).
	if err := process.Start(c.NetNS, filepath.Join(c.Dir, "dnsmasq.log"), append([]string{Binary}, args...)); err != nil {
		return false, err
	}
	// dnsmasq writes its pid file before the foreground process returns.
	if _, ok := Running(c.Dir); !ok {
		return true, errors.New("dnsmasq started but is not running")
	}
	return true, writeFile(stampFile, []byte(stamp))
}

// Running returns the pid of the dnsmasq that serves dir, if one runs. It
// trusts the pid file only when the process's command line names that pid
// file; without one it looks for such a process in /proc (a pid file
// removed under a running dnsmasq must not lead to a second one).
func Running(dir string) (int, bool) {
	arg := "--pid-file=" + filepath.Join(dir, "dnsmasq.pid")
	ours := func(pid int) bool {
		cl := process.Cmdline(pid)
		return len(cl) > 0 && cl[0] == Binary && slices.Contains(cl, arg)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "dnsmasq.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && ours(pid) {
			return pid, true
		}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && ours(pid) {
			return pid, true
		}
	}
	return 0, false
}

// Stop terminates the dnsmasq of dir, if running, and waits until it is
// gone (SIGKILL after a few seconds).
func Stop(dir string) error {
	pid, ok := Running(dir)
	if !ok {
		return nil
	}
	if err := process.Stop(pid, stopGrace); err != nil {
		return fmt.Errorf("dnsmasq: %w", err)
	}
	_ = os.Remove(filepath.Join(dir, "dnsmasq.pid"))
	return nil
}

// stopOthersIn stops every dnsmasq running in the network namespace at
// path netNS.
func stopOthersIn(netNS string) error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("list processes: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cl := process.Cmdline(pid); len(cl) > 0 && cl[0] == Binary && process.InNamespace(pid, netNS) {
			if err := process.Stop(pid, stopGrace); err != nil {
				return fmt.Errorf("dnsmasq: %w", err)
			}
		}
	}
	return nil
}

// stopGrace is how long a dnsmasq has after SIGTERM before SIGKILL.
const stopGrace = 5 * time.Second

// writeFile atomically replaces path with data, readable by dnsmasq after
// it drops to nobody, unless it already holds it.
func writeFile(path string, data []byte) error {
	_, err := process.WriteFile(path, data, 0o644)
	return err
}

func touch(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	f.Close()
	// Owned by nobody so that dnsmasq can rewrite it after dropping root.
	if err := os.Chown(path, 65534, 65534); err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	return nil
}
