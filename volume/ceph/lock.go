package ceph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/ouroboros-cloud/ouro/volume"
)

// Locks and fencing.
//
// A client is a host as the cluster sees it: its IP address (the source
// address of its QEMU and qemu-storage-daemon connections), or, for one
// single Ceph client instance, its full entity address ip:port/nonce.
//
// Lock is an advisory RBD lock ("rbd lock add") whose id names the
// client: it says which host may attach the volume, whichever process
// took it. The data path is guarded by the image's exclusive-lock
// feature (one librbd writer at a time) and by Fence: a blocklisted
// client's I/O fails with ESHUTDOWN at every OSD, its watches go, and the
// next opener takes the exclusive lock at once instead of after the dead
// client's watch times out (about 30 s). A fenced client's advisory locks
// are broken by the next Lock.

// lockPrefix starts the id of every advisory lock this package takes.
const lockPrefix = "ouro:"

// fenceSeconds is how long a blocklist entry lasts: a year, for the
// cluster must not let a fenced host back by itself; Unfence does.
const fenceSeconds = 365 * 24 * 3600

// lockInfo is one entry of `rbd lock ls --format json`.
type lockInfo struct {
	ID      string `json:"id"`
	Locker  string `json:"locker"`
	Address string `json:"address"`
}

// locks lists image name's locks.
func (b *Backend) locks(ctx context.Context, name string) ([]lockInfo, error) {
	out, err := b.rbd(ctx, "lock", "ls", "--format", "json", b.spec(name))
	if errors.Is(err, syscall.ENOENT) {
		return nil, fmt.Errorf("ceph: image %s: %w", b.spec(name), volume.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var locks []lockInfo
	if err := json.Unmarshal(out, &locks); err != nil {
		return nil, fmt.Errorf("ceph: rbd lock ls %s: %w", b.spec(name), err)
	}
	return locks, nil
}

// Lock takes volume id's lock for client, or returns ErrLocked naming the
// holder. A lock held by a fenced client is broken first.
func (b *Backend) Lock(ctx context.Context, id, client string) error {
	name, err := image(id)
	if err != nil {
		return err
	}
	if _, err := fenceAddr(client); err != nil {
		return err
	}
	mine := lockPrefix + client
	locks, err := b.locks(ctx, name)
	if err != nil {
		return err
	}
	var fenced map[string]bool
	for _, l := range locks {
		holder, ok := strings.CutPrefix(l.ID, lockPrefix)
		if !ok { // librbd's own exclusive lock
			continue
		}
		if l.ID == mine {
			return nil
		}
		if fenced == nil {
			if fenced, err = b.blocklist(ctx); err != nil {
				return err
			}
		}
		if ha, err := fenceAddr(holder); err != nil || !fenced[ha] {
			return fmt.Errorf("ceph: volume %s is locked by %s: %w", id, holder, volume.ErrLocked)
		}
		if _, err := b.rbd(ctx, "lock", "rm", b.spec(name), l.ID, l.Locker); err != nil && !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("ceph: break the lock of fenced %s on volume %s: %w", holder, id, err)
		}
	}
	_, err = b.rbd(ctx, "lock", "add", b.spec(name), mine)
	if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("ceph: volume %s is locked by another client: %w", id, volume.ErrLocked)
	}
	return err
}

// Unlock releases client's lock on volume id; none is fine.
func (b *Backend) Unlock(ctx context.Context, id, client string) error {
	name, err := image(id)
	if err != nil {
		return err
	}
	locks, err := b.locks(ctx, name)
	if errors.Is(err, volume.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, l := range locks {
		if l.ID != lockPrefix+client {
			continue
		}
		if _, err := b.rbd(ctx, "lock", "rm", b.spec(name), l.ID, l.Locker); err != nil && !errors.Is(err, syscall.ENOENT) {
			return err
		}
	}
	return nil
}

// Fence blocklists client: an IP address blocklists every Ceph client of
// that host, an entity address (ip:port/nonce) one client. Its I/O fails
// from then on, at every OSD, until Unfence.
func (b *Backend) Fence(ctx context.Context, client string) error {
	addr, err := fenceAddr(client)
	if err != nil {
		return err
	}
	_, err = b.ceph(ctx, "osd", "blocklist", "add", addr, strconv.Itoa(fenceSeconds))
	return err
}

// Unfence lifts client's blocklisting; a client not blocklisted is fine.
func (b *Backend) Unfence(ctx context.Context, client string) error {
	addr, err := fenceAddr(client)
	if err != nil {
		return err
	}
	_, err = b.ceph(ctx, "osd", "blocklist", "rm", addr)
	return err
}

// blocklist returns the cluster's blocklisted addresses.
func (b *Backend) blocklist(ctx context.Context) (map[string]bool, error) {
	out, err := b.ceph(ctx, "osd", "blocklist", "ls", "--format", "json")
	if err != nil {
		return nil, err
	}
	var entries []struct {
		Addr string `json:"addr"`
	}
	if err := json.Unmarshal(out, &entries); err != nil {
		return nil, fmt.Errorf("ceph: osd blocklist ls: %w", err)
	}
	set := make(map[string]bool, len(entries))
	for _, e := range entries {
		set[e.Addr] = true
	}
	return set, nil
}

// fenceAddr returns the blocklist entry of client: ip:0/0 (every client
// of the host) for an IP address, the address itself for an entity
// address ip:port/nonce.
func fenceAddr(client string) (string, error) {
	if ip := net.ParseIP(client); ip != nil {
		return net.JoinHostPort(ip.String(), "0") + "/0", nil
	}
	hostPort, nonce, ok := strings.Cut(client, "/")
	if ok {
		host, port, err := net.SplitHostPort(hostPort)
		_, nerr := strconv.ParseUint(nonce, 10, 32)
		_, perr := strconv.ParseUint(port, 10, 16)
		if err == nil && nerr == nil && perr == nil && net.ParseIP(host) != nil {
			return client, nil
		}
	}
	return "", fmt.Errorf("ceph: client %q is neither an IP address nor a Ceph client address ip:port/nonce", client)
}
