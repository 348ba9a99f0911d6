package ceph

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ouroboros-cloud/ouro/volume"
)

// Blockdev returns how QEMU opens volume id through its own rbd driver:
// no ceph.conf, no keyring file; the key travels in a secret object
// (base64: without format=base64 QEMU would encode it twice).
func (b *Backend) Blockdev(ctx context.Context, id string) (volume.Attachment, error) {
	name, err := image(id)
	if err != nil {
		return volume.Attachment{}, err
	}
	if _, err := b.info(ctx, name); err != nil {
		return volume.Attachment{}, err
	}
	node := nodeName(id)
	att := b.attachment(name, node, "sec-"+node)
	att.Objects = []string{b.secretObject("sec-"+node, false)}
	return att, nil
}

// attachment returns the rbd blockdev of image name with node-name node,
// reading its key from the secret object secretID.
func (b *Backend) attachment(name, node, secretID string) volume.Attachment {
	type server struct {
		Host string `json:"host"`
		Port string `json:"port"`
	}
	servers := make([]server, 0, len(b.cfg.Monitors))
	for _, m := range b.cfg.Monitors {
		host, port, _ := splitMonitor(m)
		servers = append(servers, server{host, port})
	}
	bd := map[string]any{
		"driver":               "rbd",
		"node-name":            node,
		"pool":                 b.cfg.Pool,
		"image":                name,
		"server":               servers,
		"user":                 b.cfg.User,
		"key-secret":           secretID,
		"auth-client-required": []string{"cephx"},
	}
	js, _ := json.Marshal(bd)
	return volume.Attachment{BlockdevJSON: string(js)}
}

// secretObject returns the -object argument of a secret holding the
// key: the key itself (for the agent to hand to QEMU over QMP), or, with
// fromFile, the backend's private key file (for tools it starts itself,
// so that the key is never in a command line).
func (b *Backend) secretObject(id string, fromFile bool) string {
	if fromFile {
		return "secret,id=" + id + ",file=" + b.keyFile + ",format=base64"
	}
	return "secret,id=" + id + ",data=" + b.cfg.Key + ",format=base64"
}

// nodeWellFormed is what QEMU accepts as a node name (at most 31 bytes).
var nodeWellFormed = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,30}$`)

// nodeName returns the QEMU node name of volume id: "vol-<id>", or a
// hash of the id when that is not a valid node name.
func nodeName(id string) string {
	if n := "vol-" + id; nodeWellFormed.MatchString(n) {
		return n
	}
	sum := sha256.Sum256([]byte(id))
	return "vol-" + hex.EncodeToString(sum[:12])
}

// A container's volume is a host block device made without a kernel RBD
// or NBD driver (many kernels, this project's CI among them, have
// neither): qemu-storage-daemon opens the image with the same rbd driver
// and options as a VM, exports it as a file over FUSE, and a loop device
// turns the file into a block device.
//
//	image ──rbd driver── qemu-storage-daemon ──FUSE── <dir>/block/<image>/disk ──loop── /dev/loopN

// exportDir is where volume name's FUSE export and pid file live.
func (b *Backend) exportDir(name string) string { return filepath.Join(b.cfg.Dir, "block", name) }

// MapBlock makes volume id a host block device and returns it in
// Attachment.Device. Mapping a mapped volume returns its device.
func (b *Backend) MapBlock(ctx context.Context, id string) (volume.Attachment, error) {
	name, err := image(id)
	if err != nil {
		return volume.Attachment{}, err
	}
	dir := b.exportDir(name)
	disk := filepath.Join(dir, "disk")
	if dev, err := loopOf(ctx, disk); err != nil {
		return volume.Attachment{}, err
	} else if dev != "" && b.daemonAlive(dir) {
		return volume.Attachment{Device: dev}, nil
	}
	if _, err := b.info(ctx, name); err != nil {
		return volume.Attachment{}, err
	}
	if err := b.unmap(ctx, dir); err != nil { // leftovers of a crash
		return volume.Attachment{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return volume.Attachment{}, fmt.Errorf("ceph: %w", err)
	}
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		return volume.Attachment{}, fmt.Errorf("ceph: %w", err)
	}
	node := nodeName(id)
	att := b.attachment(name, node, "key")
	export := "type=fuse,id=export,node-name=" + node + ",mountpoint=" + disk + ",writable=on"
	cmd := exec.CommandContext(ctx, "qemu-storage-daemon", "--daemonize", "--pidfile", filepath.Join(dir, "pid"),
		"--object", b.secretObject("key", true), "--blockdev", att.BlockdevJSON, "--export", export)
	if out, err := cmd.CombinedOutput(); err != nil {
		return volume.Attachment{}, fmt.Errorf("ceph: export volume %s: %w: %s", id, err, strings.TrimSpace(string(out)))
	}
	out, err := exec.CommandContext(ctx, "losetup", "--find", "--show", "--direct-io=on", disk).CombinedOutput()
	if err != nil { // some file systems refuse direct I/O on a loop
		out, err = exec.CommandContext(ctx, "losetup", "--find", "--show", disk).CombinedOutput()
	}
	if err != nil {
		err = fmt.Errorf("ceph: loop device for volume %s: %w: %s", id, err, strings.TrimSpace(string(out)))
		return volume.Attachment{}, errors.Join(err, b.unmap(context.WithoutCancel(ctx), dir))
	}
	return volume.Attachment{Device: strings.TrimSpace(string(out))}, nil
}

// UnmapBlock removes volume id's host block device; unmapping an unmapped
// volume does nothing. The caller unmounts it first.
func (b *Backend) UnmapBlock(ctx context.Context, id string) error {
	name, err := image(id)
	if err != nil {
		return err
	}
	return b.unmap(ctx, b.exportDir(name))
}

// unmap detaches the loop devices of dir's export, stops its daemon
// (which flushes the image) and removes dir.
func (b *Backend) unmap(ctx context.Context, dir string) error {
	disk := filepath.Join(dir, "disk")
	for {
		dev, err := loopOf(ctx, disk)
		if err != nil {
			return err
		}
		if dev == "" {
			break
		}
		if out, err := exec.CommandContext(ctx, "losetup", "--detach", dev).CombinedOutput(); err != nil {
			return fmt.Errorf("ceph: detach %s: %w: %s", dev, err, strings.TrimSpace(string(out)))
		}
	}
	if pid := b.daemonPid(dir); pid > 0 {
		if err := stopProcess(ctx, pid); err != nil {
			return err
		}
	}
	// A daemon that died leaves its FUSE mount behind, disconnected.
	if mounted(disk) {
		if out, err := exec.CommandContext(ctx, "umount", "--lazy", disk).CombinedOutput(); err != nil {
			return fmt.Errorf("ceph: unmount %s: %w: %s", disk, err, strings.TrimSpace(string(out)))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("ceph: %w", err)
	}
	return nil
}

// loopOf returns the loop device backed by file, or "".
func loopOf(ctx context.Context, file string) (string, error) {
	out, err := exec.CommandContext(ctx, "losetup", "--list", "--json", "--output", "NAME,BACK-FILE").Output()
	if err != nil {
		return "", fmt.Errorf("ceph: losetup --list: %w", err)
	}
	var list struct {
		Devices []struct {
			Name     string `json:"name"`
			BackFile string `json:"back-file"`
		} `json:"loopdevices"`
	}
	if len(bytes.TrimSpace(out)) == 0 {
		return "", nil
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return "", fmt.Errorf("ceph: losetup --list: %w", err)
	}
	for _, d := range list.Devices {
		if strings.TrimSuffix(d.BackFile, " (deleted)") == file {
			return d.Name, nil
		}
	}
	return "", nil
}

// daemonPid returns the pid of dir's qemu-storage-daemon if it runs,
// else 0. The pid counts only if its command line names dir's export,
// so a reused pid is never taken for it.
func (b *Backend) daemonPid(dir string) int {
	data, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !bytes.Contains(cmdline, []byte("mountpoint="+filepath.Join(dir, "disk"))) {
		return 0
	}
	return pid
}

// daemonAlive reports whether dir's daemon runs.
func (b *Backend) daemonAlive(dir string) bool { return b.daemonPid(dir) > 0 }

// stopProcess sends SIGTERM to pid and waits for it to go, then SIGKILL.
func stopProcess(ctx context.Context, pid int) error {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(30 * time.Second)
	for interval := time.Millisecond; ; interval = min(2*interval, 100*time.Millisecond) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(10 * time.Second)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ceph: stop pid %d: %w", pid, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// mounted reports whether path is a mount point.
func mounted(path string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMount(f[4]) == path {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes of space, tab, newline
// and backslash.
func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}
