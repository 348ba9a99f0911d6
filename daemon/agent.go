package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ouroboros-cloud/ouro/agent"
	"github.com/ouroboros-cloud/ouro/agent/hostinfo"
	"github.com/ouroboros-cloud/ouro/agent/metaserver"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/driver/container"
	"github.com/ouroboros-cloud/ouro/driver/vm"
	"github.com/ouroboros-cloud/ouro/lbplane"
	"github.com/ouroboros-cloud/ouro/netplane"
)

// AgentConfig configures a host agent.
type AgentConfig struct {
	Server    string
	CACert    []byte
	JoinToken string
	DataDir   string
	Name      string
	// AdvertiseAddress is the host's underlay address.
	AdvertiseAddress string
	// Listen is the agent endpoint (logs, exec) address.
	Listen string
	Labels map[string]string
	Taints []string
	Logger *slog.Logger
}

// registerDrivers adds the real drivers rooted at dataDir to reg, fetching
// image content through blobs.
func registerDrivers(reg *driver.Registry, dataDir string, blobs driver.BlobSource, log *slog.Logger) error {
	// crun where it works: with it, containers on the agent's networks
	// get a user namespace too (see driver/container/runtime.go).
	runtime := container.PreferredRuntime()
	log.Info("container runtime", "runtime", runtime)
	c, err := container.New(container.Config{Dir: filepath.Join(dataDir, "containers"), Blobs: blobs, Runtime: runtime, Logger: log})
	if err != nil {
		return fmt.Errorf("container driver: %w", err)
	}
	reg.Register(c)
	// VM sockets live on tmpfs beside the network state: short paths
	// (unix sockets are limited to 107 bytes), gone with a reboot like
	// the VMs themselves. OURO_VM_ACCEL=tcg|kvm skips the KVM probe.
	v, err := vm.New(vm.Config{
		Dir: filepath.Join(dataDir, "vms"), RunDir: filepath.Join(RunDir(dataDir), "vms"),
		Blobs: blobs, Accel: os.Getenv("OURO_VM_ACCEL"), Logger: log,
	})
	if err != nil {
		return fmt.Errorf("vm driver: %w", err)
	}
	reg.Register(v)
	return nil
}

// RunAgent runs a host agent until ctx ends.
func RunAgent(ctx context.Context, cfg AgentConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.DataDir == "" {
		return fmt.Errorf("agent: --data-dir is required")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o711); err != nil {
		return fmt.Errorf("agent: data dir: %w", err)
	}
	// Searchable, not listable: containers' root is an unprivileged host
	// user that must reach its root file system below the data dir.
	if err := os.Chmod(cfg.DataDir, 0o711); err != nil {
		return fmt.Errorf("agent: data dir: %w", err)
	}
	if cfg.AdvertiseAddress == "" {
		addr, err := hostinfo.DefaultRouteAddress()
		if err != nil {
			return fmt.Errorf("agent: no --advertise-address given and %w", err)
		}
		cfg.AdvertiseAddress = addr
	}
	loadModules(log)
	reg := driver.NewRegistry()
	run := RunDir(cfg.DataDir)
	if err := os.MkdirAll(run, 0o755); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	plane, err := NetworkPlane(cfg.DataDir, cfg.AdvertiseAddress, localAPIPorts(cfg.Server), log)
	if err != nil {
		return fmt.Errorf("agent: network plane: %w", err)
	}
	a, err := agent.New(agent.Config{
		Server: cfg.Server, CACert: cfg.CACert, JoinToken: cfg.JoinToken, DataDir: cfg.DataDir,
		Name: cfg.Name, AdvertiseAddress: cfg.AdvertiseAddress, Listen: cfg.Listen,
		Drivers: reg, Network: plane, LoadBalancerDir: filepath.Join(run, "lb"),
		VolumeDir:   filepath.Join(cfg.DataDir, "volumes"),
		CephVolumes: cephVolumes(filepath.Join(cfg.DataDir, "volumes")),
		Labels:      cfg.Labels, Taints: cfg.Taints, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	// Drivers fetch image layers with the agent's own host credentials.
	if err := registerDrivers(reg, cfg.DataDir, a.Blobs(), log); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return a.Run(ctx)
}

// The network plane hosts the instance metadata service and announces
// load balancers' floating IPs where their VIP is.
var (
	_ metaserver.Plane  = (*netplane.Plane)(nil)
	_ lbplane.Announcer = (*netplane.Plane)(nil)
)

// RunDir holds an agent's runtime network state: namespaces and dnsmasq
// files. It is on tmpfs (gone with a reboot, like the namespaces),
// readable by dnsmasq after it drops privileges (the data dir, holding
// credentials, is not), and distinct per data dir so several agents can
// share a machine without taking each other's namespaces for stale ones.
func RunDir(dataDir string) string {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join("/run/ouro", hex.EncodeToString(sum[:4]))
}

// NetworkPlane returns the network plane of the agent with dataDir and
// underlay address: the same namespaces and state every time, so a
// restarted agent (or a cleanup) finds what an earlier one made.
// Instances may reach apiPorts at the host's own addresses; nothing
// else there.
func NetworkPlane(dataDir, underlay string, apiPorts []uint16, log *slog.Logger) (*netplane.Plane, error) {
	run := RunDir(dataDir)
	return netplane.New(netplane.Config{
		StateDir:          filepath.Join(run, "net"),
		UnderlayAddress:   underlay,
		NetNSDir:          filepath.Join(run, "netns"),
		InstanceHostPorts: apiPorts,
		Logger:            log,
	})
}

// localAPIPorts returns the port of the API server at serverURL when the
// server runs on this host (its address is a loopback or one of this
// network namespace's addresses), so that instances reach the cloud's API
// here as they would on any other host; nil otherwise.
func localAPIPorts(serverURL string) []uint16 {
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil
	}
	ip, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return nil // a name: the server is reached as any other address
	}
	port, err := strconv.ParseUint(u.Port(), 10, 16)
	if u.Port() == "" {
		port, err = 443, nil
	}
	if err != nil {
		return nil
	}
	if ip.IsLoopback() || ip.IsUnspecified() {
		return []uint16{uint16(port)}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == ip.Unmap() {
			return []uint16{uint16(port)}
		}
	}
	return nil
}
