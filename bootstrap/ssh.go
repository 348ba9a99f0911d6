package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Runner runs commands on a host.
type Runner interface {
	// Run runs cmd, a shell command line this package built (every word
	// that comes from the inventory quoted), with stdin, and returns its
	// standard output; a failure carries its standard error.
	Run(ctx context.Context, cmd string, stdin io.Reader) (string, error)
	Close() error
}

// Conn is a connection to a host's SSH server and the name its host key
// is known by in known_hosts.
type Conn struct {
	net.Conn
	KeyName string
}

// DialFunc connects to a host's SSH server: its address, or an instance
// through the current cloud's port forward.
type DialFunc func(ctx context.Context, h *Host) (Conn, error)

// DialAddress connects to a host's address and SSH port.
func DialAddress(ctx context.Context, h *Host) (Conn, error) {
	addr := net.JoinHostPort(h.Address, strconv.Itoa(h.SSH.Port))
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Conn{}, err
	}
	return Conn{Conn: c, KeyName: addr}, nil
}

// KnownHosts checks host keys against a known_hosts file and, when
// AcceptNew is set, adds the keys of hosts it does not know yet (trust on
// first use). A key that differs from the one recorded is always refused.
type KnownHosts struct {
	File      string
	AcceptNew bool
	// DontRecord accepts new keys (with AcceptNew) for this run without
	// writing them to File: a check that changes nothing.
	DontRecord bool

	mu sync.Mutex
}

// callback returns the host key check for one connection.
func (k *KnownHosts) callback() (ssh.HostKeyCallback, error) {
	if err := os.MkdirAll(filepath.Dir(k.File), 0o700); err != nil {
		return nil, fmt.Errorf("known hosts: %w", err)
	}
	f, err := os.OpenFile(k.File, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("known hosts: %w", err)
	}
	f.Close()
	check, err := knownhosts.New(k.File)
	if err != nil {
		return nil, fmt.Errorf("known hosts %s: %w", k.File, err)
	}
	return func(hostname string, _ net.Addr, key ssh.PublicKey) error {
		// The key is checked against the name it is known by (Conn's
		// KeyName): the connection's own address may be a tunnel's,
		// which is no HOST:PORT.
		err := check(hostname, keyName(hostname), key)
		var ke *knownhosts.KeyError
		if !errors.As(err, &ke) {
			return err
		}
		if len(ke.Want) > 0 {
			return fmt.Errorf("the host key of %s changed (%s %s, recorded in %s line %d): if the machine was reinstalled, remove the old key (ssh-keygen -R %s -f %s) and run again",
				hostname, key.Type(), ssh.FingerprintSHA256(key), ke.Want[0].Filename, ke.Want[0].Line,
				knownhosts.Normalize(hostname), k.File)
		}
		if !k.AcceptNew {
			return fmt.Errorf("the host key of %s (%s %s) is not in %s: check it, then run with --accept-new-host-keys to trust it",
				hostname, key.Type(), ssh.FingerprintSHA256(key), k.File)
		}
		if k.DontRecord {
			return nil
		}
		return k.add(hostname, key)
	}, nil
}

// keyName is a host key's name as the remote address knownhosts wants.
type keyName string

func (keyName) Network() string  { return "tcp" }
func (n keyName) String() string { return string(n) }

func (k *KnownHosts) add(hostname string, key ssh.PublicKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	f, err := os.OpenFile(k.File, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("known hosts: %w", err)
	}
	defer f.Close()
	if _, err := fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key)); err != nil {
		return fmt.Errorf("known hosts: %w", err)
	}
	return nil
}

// sshRunner runs commands over one SSH connection; as a user other than
// root, through sudo (without a password: cloud images' default users
// have it).
type sshRunner struct {
	client *ssh.Client
	sudo   bool
}

// dialSSH logs into h as its SSH user with its key.
func dialSSH(ctx context.Context, h *Host, dial DialFunc, known *KnownHosts) (*sshRunner, error) {
	if h.SSH.Key == "" {
		return nil, fmt.Errorf("no SSH key: set ssh.key in the inventory (for the host or for all)")
	}
	pem, err := os.ReadFile(h.SSH.Key)
	if err != nil {
		return nil, fmt.Errorf("SSH key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return nil, fmt.Errorf("SSH key %s: %w (keys with a passphrase are not supported: use an agent-less key for bootstrap)", h.SSH.Key, err)
	}
	hostKeys, err := known.callback()
	if err != nil {
		return nil, err
	}
	conn, err := dial(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	cfg := &ssh.ClientConfig{
		User:            h.SSH.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeys,
		Timeout:         30 * time.Second,
	}
	// The handshake has no context of its own: a deadline bounds it.
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c, chans, reqs, err := ssh.NewClientConn(conn, conn.KeyName, cfg)
	if err != nil {
		conn.Close()
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("log in as %s with key %s: refused (is its public key in the user's authorized_keys?)", h.SSH.User, h.SSH.Key)
		}
		return nil, fmt.Errorf("SSH handshake: %w", err)
	}
	conn.SetDeadline(time.Time{})
	return &sshRunner{client: ssh.NewClient(c, chans, reqs), sudo: h.SSH.User != "root"}, nil
}

func (r *sshRunner) Run(ctx context.Context, cmd string, stdin io.Reader) (string, error) {
	s, err := r.client.NewSession()
	if err != nil {
		return "", fmt.Errorf("SSH session: %w", err)
	}
	defer s.Close()
	var out, errOut bytes.Buffer
	s.Stdin, s.Stdout, s.Stderr = stdin, &out, &errOut
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	if r.sudo {
		cmd = "sudo -n sh -c " + quote(cmd)
	}
	if err := s.Run(cmd); err != nil {
		if ctx.Err() != nil {
			return out.String(), ctx.Err()
		}
		msg := strings.TrimSpace(errOut.String())
		if len(msg) > 2000 {
			msg = "…" + msg[len(msg)-2000:]
		}
		if msg == "" {
			return out.String(), err
		}
		return out.String(), fmt.Errorf("%w: %s", err, msg)
	}
	return out.String(), nil
}

func (r *sshRunner) Close() error { return r.client.Close() }

// sh builds a shell command line from words, each quoted.
func sh(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = quote(w)
	}
	return strings.Join(q, " ")
}

// quote quotes s as one word for a POSIX shell.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
