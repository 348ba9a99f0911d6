// Package keepalived runs one keepalived (VRRP only) per load balancer
// with a peer, in the load balancer's network namespace: the two LB
// hosts speak VRRPv3 over unicast on the tenant network and the one that
// is MASTER holds the VIP on eth0. keepalived tracks this namespace's
// HAProxy, so a host whose HAProxy died gives the VIP up, and
// writes its state changes to a FIFO the manager reads.
//
// Every file is in the load balancer's directory (keepalived.conf,
// keepalived.pid, vrrp.pid, notify.fifo); nothing under /etc/keepalived
// or /run/keepalived.pid is used.
package keepalived

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ouroboros-cloud/ouro/garp"
	"github.com/ouroboros-cloud/ouro/netplane/netns"
	"github.com/ouroboros-cloud/ouro/netplane/process"
)

// Binary is the keepalived program.
const Binary = "/usr/sbin/keepalived"

// Files in a load balancer's directory.
const (
	ConfigFile = "keepalived.conf"
	PidFile    = "keepalived.pid"
	VRRPPid    = "vrrp.pid"
	FIFO       = "notify.fifo"
)

// Device is the load balancer's port in its namespace.
const Device = "eth0"

// Timing of VRRP. VRRPv3 advertises in centiseconds; 0.2 s puts the
// backup's takeover after a silent master at 3 × 0.2 s + skew ≈ 0.65 s
// (keepalived's default, 1 s, takes ≈ 3.6 s), and leaves room for a
// loaded host's scheduling delays (0.1 s would flap under load).
const AdvertInterval = "0.2"

// Config is what one load balancer's keepalived does.
type Config struct {
	// Name is the VRRP instance's name (for messages).
	Name string
	// Address is this host's port address, Peer the other host's.
	Address, Peer string
	// VIP and Prefix are the virtual address on eth0.
	VIP    string
	Prefix int
	// VRID is the virtual router id; Priority this host's priority.
	VRID, Priority int
	// Track is a string (without blanks) that only the command lines
	// of this load balancer's HAProxy processes contain: their pid
	// file's path. keepalived's process tracking needs the proc
	// connector, which works in the initial network namespace only, so
	// a check runs pgrep (argv, no shell) every second instead.
	Track string
}

// CheckSettle is how long keepalived may take to run its check of
// HAProxy (the script's interval plus its timeout, below): a host whose
// HAProxy was just (re)started may still be in FAULT that long.
const CheckSettle = 2 * time.Second

// Render returns keepalived's configuration, with its FIFO in dir.
//
// Both hosts start as BACKUP with nopreempt: the higher priority wins
// the first election, and a host that comes back does not take the VIP
// back from the one serving (every move cuts the connections HAProxy
// holds on the host that loses it).
func (c Config) Render(dir string) string {
	return fmt.Sprintf(`global_defs {
    router_id ouro-%[1]s
    vrrp_version 3
    vrrp_notify_fifo %[2]s
    vrrp_garp_master_delay 1
    vrrp_garp_master_repeat 3
    vrrp_garp_master_refresh 0
    vrrp_garp_lower_prio_repeat 1
    script_user root
    enable_script_security
}

vrrp_script haproxy {
    script "/usr/bin/pgrep -f %[3]s"
    interval 1
    timeout 1
    fall 1
    rise 1
}

vrrp_instance %[1]s {
    state BACKUP
    nopreempt
    interface %[4]s
    virtual_router_id %[5]d
    priority %[6]d
    advert_int %[7]s
    unicast_src_ip %[8]s
    unicast_peer {
        %[9]s
    }
    virtual_ipaddress {
        %[10]s/%[11]d dev %[4]s
    }
    track_script {
        haproxy
    }
}
`, safe(c.Name), filepath.Join(dir, FIFO), c.Track, Device, c.VRID, c.Priority, AdvertInterval,
		c.Address, c.Peer, c.VIP, c.Prefix)
}

// safe keeps a name one keepalived word.
func safe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// Daemon is the keepalived of one load balancer.
type Daemon struct {
	Dir   string
	NetNS string
}

func (d Daemon) path(name string) string { return filepath.Join(d.Dir, name) }

// Argv is keepalived's command line: VRRP only, its own pid files and
// configuration, forking into the background.
func (d Daemon) Argv() []string {
	return []string{Binary, "--vrrp", "-f", d.path(ConfigFile), "-p", d.path(PidFile), "-r", d.path(VRRPPid)}
}

// Running returns the parent's pid if it runs in the namespace.
func (d Daemon) Running() (int, bool) {
	return process.Find(d.path(PidFile), d.NetNS, d.Argv())
}

// Ensure makes keepalived run with c: started when not running (after
// removing a VIP a killed one left on eth0), told to re-read its
// configuration (SIGHUP) when it changed.
func (d Daemon) Ensure(c Config) (started bool, err error) {
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return false, fmt.Errorf("keepalived dir: %w", err)
	}
	if err := d.fifo(); err != nil {
		return false, err
	}
	conf := c.Render(d.Dir)
	if err := check(d.path(ConfigFile+".new"), conf); err != nil {
		return false, err
	}
	changed, err := process.WriteFile(d.path(ConfigFile), []byte(conf), 0o600)
	if err != nil {
		return false, err
	}
	if pid, ok := d.Running(); ok {
		if changed {
			if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
				return false, fmt.Errorf("reload keepalived %d: %w", pid, err)
			}
		}
		return false, nil
	}
	d.stopLeftovers()
	if err := DelVIP(d.NetNS, c.VIP, c.Prefix); err != nil {
		return false, err
	}
	for _, f := range []string{PidFile, VRRPPid} {
		_ = os.Remove(d.path(f))
	}
	if err := process.Start(d.NetNS, d.path("keepalived.log"), d.Argv()); err != nil {
		return false, err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := d.Running(); ok {
			return true, nil
		}
		if time.Now().After(deadline) {
			return true, errors.New("keepalived started but is not running")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// check has keepalived validate conf, written at path.
func check(path, conf string) error {
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("keepalived config: %w", err)
	}
	defer os.Remove(path)
	out, err := exec.Command(Binary, "-t", "-f", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("keepalived config: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// fifo makes the notify FIFO (keepalived writes, the manager reads).
func (d Daemon) fifo() error {
	st, err := os.Stat(d.path(FIFO))
	if err == nil && st.Mode()&os.ModeNamedPipe != 0 {
		return nil
	}
	_ = os.Remove(d.path(FIFO))
	if err := unix.Mkfifo(d.path(FIFO), 0o600); err != nil {
		return fmt.Errorf("keepalived fifo: %w", err)
	}
	return nil
}

// Watch reads state changes from the FIFO and calls changed for each
// ("MASTER", "BACKUP", "FAULT", "STOP"), until done is closed. It opens
// the FIFO read-write, so it neither blocks on a missing writer nor sees
// an end of file when keepalived restarts.
func (d Daemon) Watch(done <-chan struct{}, changed func(state string)) error {
	f, err := os.OpenFile(d.path(FIFO), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("keepalived fifo: %w", err)
	}
	go func() {
		<-done
		f.Close()
	}()
	go func() {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// INSTANCE "name" MASTER 200
			if fs := strings.Fields(sc.Text()); len(fs) >= 3 && fs[0] == "INSTANCE" {
				changed(fs[2])
			}
		}
	}()
	return nil
}

// Stop stops keepalived (which removes the VIP) and every leftover of
// this directory.
func (d Daemon) Stop() error {
	if pid, ok := d.Running(); ok {
		if err := process.Stop(pid, 5*time.Second); err != nil {
			return err
		}
	}
	d.stopLeftovers()
	return nil
}

func (d Daemon) stopLeftovers() {
	for _, pid := range process.Scan(Binary, d.path(ConfigFile)) {
		_ = process.Stop(pid, 2*time.Second)
	}
}

// HasVIP reports whether eth0 in the namespace carries vip.
func HasVIP(nsPath, vip string) (bool, error) {
	ip := net.ParseIP(vip)
	found := false
	err := netns.Do(nsPath, func() error {
		ifc, err := net.InterfaceByName(Device)
		if err != nil {
			return err
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				found = true
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("addresses of %s: %w", Device, err)
	}
	return found, nil
}

// AddVIP puts vip on eth0 (a load balancer without a peer holds it for
// good) and announces it with gratuitous ARP, so that a client that
// asked for the address before it was there need not wait for its
// kernel's next ARP try.
func AddVIP(nsPath, vip string, prefix int) error {
	if ok, err := HasVIP(nsPath, vip); err != nil || ok {
		return err
	}
	if _, err := netns.Run(nsPath, "", "ip", "addr", "add", fmt.Sprintf("%s/%d", vip, prefix), "dev", Device); err != nil {
		return err
	}
	ip, err := netip.ParseAddr(vip)
	if err != nil {
		return fmt.Errorf("VIP %q: %w", vip, err)
	}
	return netns.Do(nsPath, func() error {
		l, err := netlink.LinkByName(Device)
		if err != nil {
			return fmt.Errorf("announce VIP %s: %w", vip, err)
		}
		return garp.Send(l.Attrs().Index, l.Attrs().HardwareAddr, ip)
	})
}

// DelVIP removes vip from eth0 if it is there.
func DelVIP(nsPath, vip string, prefix int) error {
	if ok, err := HasVIP(nsPath, vip); err != nil || !ok {
		return err
	}
	_, err := netns.Run(nsPath, "", "ip", "addr", "del", fmt.Sprintf("%s/%d", vip, prefix), "dev", Device)
	return err
}
