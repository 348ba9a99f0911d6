package ceph

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// cephxKeyLen is the length of a decoded cephx key: a 12-byte header
// (type, creation time, length) and a 16-byte AES key.
const cephxKeyLen = 28

// checkKey checks that key is a base64 cephx key.
func checkKey(key string) error {
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(raw) != cephxKeyLen {
		return errors.New("ceph: the key is not a base64 cephx key (like AQB...==, 40 characters)")
	}
	return nil
}

// ParseKeyring reads a Ceph keyring as `ceph auth get-or-create` writes it
// ("[client.NAME]" then "key = ...") and returns the first client's id
// (without "client.") and key. A bare base64 key is accepted too, with
// defaultUser as its id.
func ParseKeyring(text, defaultUser string) (user, key string, err error) {
	text = strings.TrimSpace(text)
	if checkKey(text) == nil {
		return defaultUser, text, nil
	}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if section, ok := strings.CutPrefix(line, "["); ok {
			name, _ := strings.CutSuffix(section, "]")
			if u, ok := strings.CutPrefix(name, "client."); ok && user == "" {
				user = u
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok && strings.TrimSpace(k) == "key" && user != "" && key == "" {
			key = strings.TrimSpace(v)
		}
	}
	if user == "" || key == "" {
		return "", "", errors.New("ceph: no [client.NAME] section with a key in the keyring")
	}
	if err := checkKey(key); err != nil {
		return "", "", err
	}
	return user, key, nil
}

// Validate checks a ceph pool's definition against its cluster: the
// monitors answer, the key is accepted, the pool exists. A failure is an
// *api.Error whose Field is "monitors", "keyring" or "pool" (the caller
// may prefix it with where the fields sit in its request). The check
// takes at most about timeout (DefaultTimeout if zero).
func Validate(ctx context.Context, cfg Config, timeout time.Duration) error {
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if len(cfg.Monitors) == 0 {
		return api.Invalid("monitors", "host:port of at least one Ceph monitor", "no monitors given")
	}
	for _, m := range cfg.Monitors {
		if _, _, err := splitMonitor(m); err != nil {
			return api.Invalid("monitors", "host:port of a Ceph monitor (msgr v1 port, 6789 by default)", "%q is not a monitor address", m)
		}
	}
	if !namePattern.MatchString(cfg.User) || checkKey(cfg.Key) != nil {
		return api.Invalid("keyring", "a keyring with a [client.NAME] section and its key", "not a cephx client key")
	}
	if !namePattern.MatchString(cfg.Pool) {
		return api.Invalid("pool", "letters, digits, '.', '_' and '-'", "bad pool name %q", cfg.Pool)
	}
	if err := dialAny(ctx, cfg.Monitors, min(timeout, 5*time.Second)); err != nil {
		return api.Invalid("monitors", "host:port of a reachable Ceph monitor", "no monitor reachable: %v", err)
	}
	dir, err := os.MkdirTemp("", "ouro-ceph-check-")
	if err != nil {
		return fmt.Errorf("ceph: %w", err)
	}
	defer os.RemoveAll(dir)
	cfg.Dir, cfg.Timeout = dir, timeout
	b, err := New(cfg)
	if err != nil {
		return err
	}
	// The monitors first: they check the key, and answer only a monitor.
	_, err = b.ceph(ctx, "--format", "json", "mon", "stat")
	switch {
	case errors.Is(err, ErrStalled):
		return api.Invalid("monitors", "host:port of a Ceph monitor", "no Ceph monitor answered: %v", err)
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return api.Invalid("keyring", "a key the cluster knows for client."+cfg.User, "the monitors refused the key: %v", err)
	case err != nil:
		return fmt.Errorf("ceph: check monitors: %w", err)
	}
	_, err = b.rbd(ctx, "ls", "--format", "json", cfg.Pool)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ENOENT):
		return api.Invalid("pool", "an existing RBD pool of the cluster", "pool %q does not exist", cfg.Pool)
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return api.Invalid("keyring", "caps such as mon 'profile rbd' osd 'profile rbd pool="+cfg.Pool+"'",
			"client.%s may not use pool %q: %v", cfg.User, cfg.Pool, err)
	case errors.Is(err, ErrStalled):
		return api.Invalid("pool", "a pool whose placement groups are active", "pool %q did not answer: %v", cfg.Pool, err)
	default:
		return fmt.Errorf("ceph: check pool %q: %w", cfg.Pool, err)
	}
}

// dialAny returns nil once one monitor accepts a TCP connection.
func dialAny(ctx context.Context, mons []string, timeout time.Duration) error {
	var errs []error
	d := net.Dialer{Timeout: timeout}
	for _, m := range mons {
		host, port, _ := splitMonitor(m)
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
		if err == nil {
			conn.Close()
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
