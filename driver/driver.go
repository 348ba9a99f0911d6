// Package driver defines the contract between the agent and the things that
// run instances (containers with runc, virtual machines with QEMU), and a
// registry that holds one driver per name.
//
// The agent calls a driver with an instance ID (the instance's UID) and a
// Spec. Every method is idempotent and safe to call after a crash at any
// line: Create on a prepared instance, Start on a running one, Stop on a
// stopped one and Delete on a missing one all succeed without doing
// anything twice. A driver keeps what it needs to find an instance again
// (pid files, runc state, QMP sockets) on disk, so a restarted agent adopts
// running instances instead of restarting them.
package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// ErrNotFound is returned by Inspect and Start for an unknown instance.
var ErrNotFound = errors.New("instance not found in driver")

// Spec is everything a driver needs to prepare an instance.
type Spec struct {
	// ID is the instance UID: stable and unique on the host.
	ID string
	// Name is the instance name, used as hostname.
	Name    string
	Project string
	// Image is the resolved image spec (layers and default process).
	Image api.ImageSpec
	// Command replaces the image's entrypoint+cmd when not empty.
	Command []string
	// Env is added to the image's environment.
	Env       []string
	Resources api.Resources
	// NetNS is the path of a network namespace to join; empty means a new
	// namespace with only loopback.
	NetNS string
	// Nameservers the instance resolves names with (its network's DNS);
	// empty keeps the image's resolver configuration.
	Nameservers []string
	// Interfaces are the instance's network interfaces, in order, with the
	// addresses IPAM gave them (virtual machines get them by DHCP too; the
	// NoCloud seed carries them as network-config).
	Interfaces []NIC
	// PublicKeys and UserData feed cloud-init (virtual machines).
	PublicKeys []string
	UserData   string
	// Zone is the availability zone the instance's metadata reports.
	Zone string
	// Volumes are the block volumes attached at start.
	Volumes []Volume
}

// Volume is a block volume as a driver attaches it.
type Volume struct {
	// ID names the volume in its backend; VMs see it as the disk's
	// serial (/dev/disk/by-id/virtio-ID).
	ID string
	// Boot makes it a VM's root disk.
	Boot bool
	// Path is where a container mounts the volume's filesystem.
	Path string
	// BlockdevJSON and Objects open the volume in QEMU (VMs).
	BlockdevJSON string   `json:",omitempty"`
	Objects      []string `json:",omitempty"`
	// Device is the host block device mapping it (containers).
	Device string `json:",omitempty"`
}

// VolumeAttacher is implemented by drivers that attach and detach volumes
// while an instance runs (VM hot-plug). Both are idempotent; on a
// stopped instance they only change what the next start attaches.
type VolumeAttacher interface {
	// AttachedVolumes returns the volumes the instance has now.
	AttachedVolumes(ctx context.Context, id string) ([]Volume, error)
	AttachVolume(ctx context.Context, id string, v Volume) error
	DetachVolume(ctx context.Context, id, volumeID string) error
}

// VolumeSetter is implemented by drivers that take an instance's volumes
// anew before every start (containers: host block devices, whose names
// do not survive a host reboot).
type VolumeSetter interface {
	SetVolumes(ctx context.Context, id string, vols []Volume) error
}

// NIC is one network interface of an instance.
type NIC struct {
	MAC string
	// IP and PrefixLen give the address; Gateway the default route (first
	// interface only).
	IP        string
	PrefixLen int
	Gateway   string
	// RouterNetNS is the network namespace holding the network's bridge
	// and Tap the name of the instance's persistent TAP device on it
	// (virtual machines; the network plane makes the device). Both are
	// empty for interfaces the driver does not wire itself.
	RouterNetNS string
	Tap         string
}

// State is what a driver sees of an instance.
type State string

// Driver states.
const (
	// StateCreated: prepared (rootfs, bundle) but not started.
	StateCreated State = "created"
	StateRunning State = "running"
	// StateStopped: its process ended (by Stop or by itself).
	StateStopped State = "stopped"
)

// Status is the result of Inspect.
type Status struct {
	State      State
	Pid        int
	StartedAt  time.Time
	FinishedAt time.Time
	// ExitCode is valid when State is StateStopped and the driver knows it.
	ExitCode    int
	HasExitCode bool
}

// Info is what Fingerprint reports about a driver on this host.
type Info struct {
	Available bool
	// Detail explains why a driver is unavailable, or notes (e.g. "TCG").
	Detail string
}

// BlobSource fetches content-addressed blobs (image layers) from the
// control plane. Open returns the raw bytes; the caller verifies the
// digest.
type BlobSource interface {
	Open(ctx context.Context, digest string) (io.ReadCloser, error)
}

// Driver runs instances of one kind.
type Driver interface {
	// Name is the registry name: "container", "vm".
	Name() string
	// Fingerprint tells whether the driver can run on this host.
	Fingerprint(ctx context.Context) Info
	// Create prepares an instance (image content, root filesystem, config)
	// without starting it.
	Create(ctx context.Context, spec Spec) error
	// Start runs a created or stopped instance.
	Start(ctx context.Context, id string) error
	// Stop ends the instance gracefully, forcibly after timeout. Its disk
	// (for containers: the writable layer) is kept.
	Stop(ctx context.Context, id string, timeout time.Duration) error
	// Delete stops the instance if needed and removes everything it left
	// on the host: processes, mounts, cgroups, files.
	Delete(ctx context.Context, id string) error
	// Inspect returns the instance's state, ErrNotFound if unknown.
	Inspect(ctx context.Context, id string) (Status, error)
	// List returns the IDs of all instances the driver knows on this host.
	List(ctx context.Context) ([]string, error)
	// LogPath is the file holding the instance's output (container stdout
	// and stderr, or a VM's serial console).
	LogPath(id string) string
}

// Execer is implemented by drivers that can run a command inside a running
// instance.
type Execer interface {
	// Exec runs argv inside the instance and returns its exit code.
	Exec(ctx context.Context, id string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error)
}

// TTYExecer is implemented by drivers that can run a command inside a
// running instance on a terminal of its own (a pseudo-terminal), as a
// user's interactive shell needs.
type TTYExecer interface {
	// ExecTTY starts argv inside the instance with a new terminal of size
	// as its standard input, output and error, and TERM=xterm-256color.
	// ctx bounds the start only; the command runs until it ends or the
	// TTY is closed.
	ExecTTY(ctx context.Context, id string, argv []string, size TermSize) (TTY, error)
}

// ErrExecStart is returned, wrapped with the runtime's words, by ExecTTY
// when the command could not start (a program that is not there or not
// executable), rather than the driver failing.
var ErrExecStart = errors.New("the command could not start")

// TermSize is a terminal's size in character cells.
type TermSize struct {
	Rows, Cols uint16
}

// TTY is a command running on a terminal: reads return what it writes
// to the terminal (io.EOF once the terminal has no writer left), writes
// are typed at it. Closing hangs up the terminal and, after a short
// grace, kills what the command left running on it.
type TTY interface {
	io.ReadWriteCloser
	// Resize sets the terminal's size; the command gets SIGWINCH.
	Resize(size TermSize) error
	// Wait returns the command's exit code (128+signal if a signal ended
	// it) once it has ended.
	Wait() (int, error)
}

// Consoler is implemented by drivers whose instances have an interactive
// console (a VM's serial port).
type Consoler interface {
	// Console connects to the instance's console; reads return its output,
	// writes go to its input. Closing detaches without stopping anything.
	Console(ctx context.Context, id string) (io.ReadWriteCloser, error)
}

// UsageReader is implemented by drivers that can tell how much CPU an
// instance has used.
type UsageReader interface {
	// CPUTime returns the total CPU time the instance has used since it
	// started (cgroup usage for containers, the QEMU process for VMs).
	CPUTime(ctx context.Context, id string) (time.Duration, error)
}

// Rebooter is implemented by drivers that can reset a running instance in
// place (a VM's reset button): the instance keeps its process, and Reboot
// is cheaper than Stop and Start.
type Rebooter interface {
	// Reboot restarts the instance's guest; the instance must be running.
	Reboot(ctx context.Context, id string) error
}

// Killer is implemented by drivers that can kill a running instance's
// main process at once (SIGKILL: a container's init, a VM's QEMU), as a
// crash would. Nothing is cleaned up: the agent finds the instance
// stopped and restarts it by its restart policy, with back-off.
type Killer interface {
	// Kill sends SIGKILL to the instance's main process; ErrNotRunning if
	// it has none.
	Kill(ctx context.Context, id string) error
}

// ErrNotRunning is returned by Killer.Kill for an instance not running.
var ErrNotRunning = errors.New("instance is not running")

// Registry holds drivers by name.
type Registry struct {
	mu      sync.RWMutex
	drivers map[string]Driver
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{drivers: map[string]Driver{}} }

// Register adds d; registering a name twice panics.
func (r *Registry) Register(d Driver) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.drivers[d.Name()]; dup {
		panic(fmt.Sprintf("driver %q registered twice", d.Name()))
	}
	r.drivers[d.Name()] = d
}

// Get returns the driver of that name, or nil.
func (r *Registry) Get(name string) Driver {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.drivers[name]
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.drivers))
	for n := range r.drivers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
