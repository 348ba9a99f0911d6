package daemon

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/apivip"
	"github.com/ouroboros-cloud/ouro/etcdembed"
	"github.com/ouroboros-cloud/ouro/internal/atomicfile"
	"github.com/ouroboros-cloud/ouro/membership"
	"github.com/ouroboros-cloud/ouro/pki"
)

// joinStateFile keeps, in a joining server's data dir, the members its
// etcd starts with, written before its etcd first starts: a server that
// crashes between the join and its first start starts again without the
// (used) token.
const joinStateFile = "join.json"

// joinState is the content of joinStateFile.
type joinState struct {
	InitialCluster string `json:"initialCluster"`
}

// etcdMembership returns how the embedded etcd starts: alone (new), or,
// for a server started with --join, as a member of the cluster it joins,
// after joining it through the token's server. A data dir whose etcd has
// data starts as it is.
func etcdMembership(ctx context.Context, cfg ServerConfig, log *slog.Logger) (initial, state string, err error) {
	etcdDir := filepath.Join(cfg.DataDir, "etcd")
	if _, err := os.Stat(filepath.Join(etcdDir, "member")); err == nil {
		if cfg.Join != "" {
			log.Info("this server's etcd member has data: --join is not needed any more and is ignored")
		}
		return "", etcdembed.ClusterNew, nil
	}
	statePath := filepath.Join(cfg.DataDir, joinStateFile)
	if b, err := os.ReadFile(statePath); err == nil {
		var st joinState
		if err := json.Unmarshal(b, &st); err != nil {
			return "", "", fmt.Errorf("server: %s: %w", statePath, err)
		}
		return st.InitialCluster, etcdembed.ClusterExisting, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("server: %w", err)
	}
	if cfg.Join == "" {
		return "", etcdembed.ClusterNew, nil
	}
	tok, err := membership.ParseToken(cfg.Join)
	if err != nil {
		return "", "", fmt.Errorf("server: --join: %w", err)
	}
	if !strings.HasPrefix(cfg.EtcdPeerURL, "https://") {
		return "", "", fmt.Errorf("server: --join needs --etcd-peer-url https://<this machine's address>:2380, which the other servers can reach")
	}
	jctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	resp, err := membership.JoinCluster(jctx, tok, api.ServerJoinRequest{Name: cfg.Name, PeerURL: cfg.EtcdPeerURL})
	if err != nil {
		return "", "", fmt.Errorf("server: join: %w", err)
	}
	if _, err := pki.WriteCA(filepath.Join(cfg.DataDir, "pki"), []byte(resp.CACert), []byte(resp.CAKey)); err != nil {
		return "", "", fmt.Errorf("server: join: store the cluster CA: %w", err)
	}
	b, _ := json.Marshal(joinState{InitialCluster: resp.InitialCluster})
	if err := atomicfile.WriteFile(statePath, b, 0o600); err != nil {
		return "", "", fmt.Errorf("server: join: %w", err)
	}
	log.Info("joined the cluster", "through", tok.APIURL, "members", resp.InitialCluster)
	return resp.InitialCluster, etcdembed.ClusterExisting, nil
}

// peerTLS returns the embedded etcd's peer certificate files, the
// server's own (signed by the cluster CA, for server and client auth),
// when the peer URL is https.
func peerTLS(cfg ServerConfig) *etcdembed.PeerTLS {
	if !strings.HasPrefix(cfg.EtcdPeerURL, "https://") {
		return nil
	}
	dir := filepath.Join(cfg.DataDir, "pki")
	return &etcdembed.PeerTLS{CertFile: filepath.Join(dir, pki.ServerCertFile), KeyFile: filepath.Join(dir, pki.ServerKeyFile),
		CAFile: filepath.Join(dir, pki.CACertFile)}
}

// certHosts returns the names and addresses of the server certificate:
// the machine's, the extra ones, the API VIP and the etcd peer URL's host.
func certHosts(cfg ServerConfig) []string {
	hosts := append(localAddresses(), cfg.CertHosts...)
	if cfg.APIVIP != "" {
		if p, err := apivip.ParseVIP(cfg.APIVIP); err == nil {
			hosts = append(hosts, p.Addr().String())
		}
	}
	if u, err := url.Parse(cfg.EtcdPeerURL); err == nil && u.Hostname() != "" {
		hosts = append(hosts, u.Hostname())
	}
	return hosts
}

// ownURL is the URL others reach this server at: its listen address, or,
// when it listens on all addresses, its etcd peer address.
func ownURL(ln net.Addr, peerURL string) string {
	tcp, ok := ln.(*net.TCPAddr)
	if ok && (tcp.IP == nil || tcp.IP.IsUnspecified()) {
		if u, err := url.Parse(peerURL); err == nil {
			if ip := net.ParseIP(u.Hostname()); ip != nil && !ip.IsLoopback() && !ip.IsUnspecified() {
				return "https://" + net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port))
			}
		}
	}
	return "https://" + dialAddress(ln)
}

// vipURL is the API URL on the VIP, on the port the server listens on.
func vipURL(vip string, ln net.Addr) string {
	p, err := apivip.ParseVIP(vip)
	if err != nil {
		return ""
	}
	port := 7443
	if tcp, ok := ln.(*net.TCPAddr); ok {
		port = tcp.Port
	}
	return "https://" + net.JoinHostPort(p.Addr().String(), fmt.Sprint(port))
}

// readiness returns the check of this server's readiness: its own
// /readyz answers, which needs the API serving and a linearizable etcd
// read (a quorum).
func readiness(ca *pki.CA, addr string) func(context.Context) error {
	hc := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
		DisableKeepAlives: false, MaxIdleConnsPerHost: 1,
	}}
	u := "https://" + addr + "/readyz"
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("readyz: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	}
}
