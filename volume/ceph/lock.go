package ceph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
// Lock is an advisory cls lock on the image's header object whose cookie
// names the client: it says which host may attach the volume, whichever
// process took it (the rados tool, which exits). The data path is
// guarded by the image's exclusive-lock feature (one librbd writer at a
// time) and by Fence: a blocklisted
// client's I/O fails with ESHUTDOWN at every OSD, its watches go, and the
// next opener takes the exclusive lock at once instead of after the dead
// client's watch times out (about 30 s). A fenced client's advisory locks
// are broken by the next Lock.

// lockName is the advisory lock this package takes on an image's header
// object. It is not rbd_lock, the name librbd's exclusive lock (and `rbd
// lock add`) uses, so it holds while the image is open for I/O.
const lockName = "ouro"

// fenceSeconds is how long a blocklist entry lasts: a year, for the
// cluster must not let a fenced host back by itself; Unfence does.
const fenceSeconds = 365 * 24 * 3600

// locker is one holder of a cls lock, as `rados lock info` lists it.
type locker struct {
	Name   string `json:"name"`
	Cookie string `json:"cookie"`
}

// headerObject returns the header object of image name, where its locks
// live.
func (b *Backend) headerObject(ctx context.Context, name string) (string, error) {
	out, err := b.rbd(ctx, "info", "--format", "json", b.spec(name))
	if errors.Is(err, syscall.ENOENT) {
		return "", fmt.Errorf("ceph: image %s: %w", b.spec(name), volume.ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	var inf struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(out, &inf); err != nil || inf.ID == "" {
		return "", fmt.Errorf("ceph: rbd info %s: no image id (%v)", b.spec(name), err)
	}
	return "rbd_header." + inf.ID, nil
}

// lockers lists the holders of the advisory lock on obj.
func (b *Backend) lockers(ctx context.Context, obj string) ([]locker, error) {
	out, err := b.run(ctx, "rados", "--pool", b.cfg.Pool, "--format", "json", "lock", "info", obj, lockName)
	if errors.Is(err, syscall.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var info struct {
		Lockers []locker `json:"lockers"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return nil, fmt.Errorf("ceph: rados lock info %s: %w", obj, err)
	}
	return info.Lockers, nil
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
	obj, err := b.headerObject(ctx, name)
	if err != nil {
		return err
	}
	holders, err := b.lockers(ctx, obj)
	if err != nil {
		return err
	}
	var fenced map[string]bool
	for _, h := range holders {
		if h.Cookie == client {
			return nil
		}
		if fenced == nil {
			if fenced, err = b.blocklist(ctx); err != nil {
				return err
			}
		}
		if ha, err := fenceAddr(h.Cookie); err != nil || !fenced[ha] {
			return fmt.Errorf("ceph: volume %s is locked by %s: %w", id, h.Cookie, volume.ErrLocked)
		}
		if err := b.breakLock(ctx, obj, h); err != nil {
			return fmt.Errorf("ceph: break the lock of fenced %s on volume %s: %w", h.Cookie, id, err)
		}
	}
	_, err = b.run(ctx, "rados", "--pool", b.cfg.Pool, "lock", "get", obj, lockName,
		"--lock-type", "exclusive", "--lock-cookie", client, "--lock-description", "ouro volume "+id)
	if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("ceph: volume %s is locked by another client: %w", id, volume.ErrLocked)
	}
	return err
}

// breakLock removes a holder's lock on obj; a lock gone is fine.
func (b *Backend) breakLock(ctx context.Context, obj string, h locker) error {
	_, err := b.run(ctx, "rados", "--pool", b.cfg.Pool, "lock", "break", obj, lockName, h.Name, "--lock-cookie", h.Cookie)
	if err != nil && !errors.Is(err, syscall.ENOENT) {
		return err
	}
	return nil
}

// Unlock releases client's lock on volume id; none is fine.
func (b *Backend) Unlock(ctx context.Context, id, client string) error {
	name, err := image(id)
	if err != nil {
		return err
	}
	obj, err := b.headerObject(ctx, name)
	if errors.Is(err, volume.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	holders, err := b.lockers(ctx, obj)
	if err != nil {
		return err
	}
	for _, h := range holders {
		if h.Cookie == client {
			if err := b.breakLock(ctx, obj, h); err != nil {
				return err
			}
		}
	}
	return nil
}

// Fence blocklists client: an IP address blocklists every Ceph client of
// that host, an entity address (ip:port/nonce) one client. Its I/O fails
// until Unfence, at each OSD as soon as the OSD has the new OSD map
// (moments after Fence returns). No write of the fenced client can land
// after a write of the volume's next user: the next user's librbd
// carries the new map, and a placement group applies it before taking
// that user's writes.
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
	// Two JSON arrays: the address entries, then the range entries.
	set := map[string]bool{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var entries []struct {
			Addr string `json:"addr"`
		}
		err := dec.Decode(&entries)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("ceph: osd blocklist ls: %w", err)
		}
		for _, e := range entries {
			set[e.Addr] = true
		}
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
