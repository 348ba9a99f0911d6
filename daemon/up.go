package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/clientconfig"
	"github.com/ouroboros-cloud/ouro/imageimport"
)

// UpConfig configures the all-in-one cloud.
type UpConfig struct {
	DataDir string
	// Listen is the API address (default ":7443").
	Listen string
	// AgentListen is the agent endpoint (default ":7444").
	AgentListen string
	// EtcdClientURL and EtcdPeerURL override the embedded etcd's URLs.
	EtcdClientURL, EtcdPeerURL string
	// APIVIP and APIVIPInterface give the server an API VIP (see
	// ServerConfig); the CLI config then names it.
	APIVIP, APIVIPInterface string
	// ConfigPath is the CLI config to write (default clientconfig.DefaultPath()).
	ConfigPath string
	// Out receives the welcome text.
	Out    io.Writer
	Logger *slog.Logger
}

// Preflight checks that this process can run instances and says plainly
// what is missing.
func Preflight() error {
	if os.Geteuid() != 0 {
		return errors.New("ouro up needs root: it runs containers with runc, mounts overlay filesystems and sets cgroup limits; run it with sudo")
	}
	return nil
}

// Up runs server and agent in one process until ctx ends. Run again on the
// same data dir, it brings back the same cloud and adopts what runs.
func Up(ctx context.Context, cfg UpConfig) error {
	if err := Preflight(); err != nil {
		return err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "/var/lib/ouro"
	}
	if cfg.AgentListen == "" {
		cfg.AgentListen = ":7444"
	}
	// Searchable by others, not listable (as Docker's root is): the
	// containers' root, an unprivileged uid in their user namespace, must
	// reach their root file systems below the agent's directory. The
	// server's directory inside stays 0700.
	if err := os.MkdirAll(cfg.DataDir, 0o711); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.Chmod(cfg.DataDir, 0o711); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	srv, err := StartServer(ctx, ServerConfig{
		DataDir: filepath.Join(cfg.DataDir, "server"), Listen: cfg.Listen,
		EtcdClientURL: cfg.EtcdClientURL, EtcdPeerURL: cfg.EtcdPeerURL, Logger: log,
		APIVIP: cfg.APIVIP, APIVIPInterface: cfg.APIVIPInterface,
	})
	if err != nil {
		return err
	}
	admin, err := client.New(client.Config{Server: srv.URL, Token: srv.AdminToken, CACert: srv.CACert, UserAgent: "ouro-up"})
	if err != nil {
		return err
	}

	agentDir := filepath.Join(cfg.DataDir, "agent")
	var joinToken string
	if _, err := os.Stat(filepath.Join(agentDir, "credentials.json")); err != nil {
		jt, err := admin.CreateJoinToken(ctx, api.JoinTokenRequest{TTL: "1h"})
		if err != nil {
			return fmt.Errorf("up: join token for the local agent: %w", err)
		}
		joinToken = jt.Status.Secret
	}
	agentDone := make(chan error, 1)
	go func() {
		agentDone <- RunAgent(ctx, AgentConfig{
			Server: srv.URL, CACert: srv.CACert, JoinToken: joinToken, DataDir: agentDir,
			AdvertiseAddress: advertiseAddress(srv.URL), Listen: cfg.AgentListen, Logger: log,
		})
	}()

	if err := ensureBusybox(ctx, admin, cfg.DataDir, log); err != nil {
		log.Warn("starter image not imported", "err", err)
	}
	path, err := writeClientConfig(cfg.ConfigPath, srv)
	if err != nil {
		return err
	}
	if cfg.Out != nil {
		fmt.Fprintf(cfg.Out, `Ouroboros is up.
  API:        %s
  data:       %s
  CLI config: %s (context "local", admin)

Launch a first instance:
  ouro instance create hello --image busybox --flavor tiny --wait -- sh -c 'echo hello from ouroboros; sleep 3600'
  ouro instance logs hello
  ouro instance list

Stop with Ctrl-C: running instances keep running and are adopted at the next start.
`, srv.APIURL, cfg.DataDir, path)
	}

	select {
	case err := <-agentDone:
		if ctx.Err() == nil {
			return fmt.Errorf("up: agent stopped: %w", err)
		}
		return srv.Wait()
	case err := <-srv.done:
		if err != nil {
			return err
		}
		return <-agentDone
	}
}

// advertiseAddress picks the server's own address for a local agent: the
// loopback when the server listens there, else the default route's.
func advertiseAddress(serverURL string) string {
	if host, _, err := net.SplitHostPort(serverURL[len("https://"):]); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return host
		}
	}
	return ""
}

// ensureBusybox imports the starter image from the host's busybox-static
// once.
func ensureBusybox(ctx context.Context, c *client.Client, dataDir string, log *slog.Logger) error {
	var img api.Image
	if err := c.Get(ctx, api.ImageKind, "default", "busybox", &img); err == nil {
		return nil
	} else if !api.IsNotFound(err) {
		return err
	}
	bb := "/bin/busybox"
	if _, err := os.Stat(bb); err != nil {
		return fmt.Errorf("%s not found: install Debian's busybox-static for a starter image", bb)
	}
	work, err := os.MkdirTemp(dataDir, "busybox-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	src, err := imageimport.Busybox(bb, work)
	if err != nil {
		return err
	}
	_, err = imageimport.Upload(ctx, c, "default", "busybox", src, imageimport.UploadOptions{
		Public: true, Description: "busybox from the host's busybox-static",
	})
	if err == nil {
		log.Info("imported starter image", "image", "busybox")
	}
	return err
}

// writeClientConfig stores the "local" admin context in the CLI config and,
// under sudo, in the invoking user's config too. It names the API VIP
// when the server has one.
func writeClientConfig(path string, srv *Server) (string, error) {
	ctx := clientconfig.Context{Name: "local", Server: srv.APIURL, Token: srv.AdminToken, Project: "default", CACert: string(srv.CACert)}
	if path == "" {
		p, err := clientconfig.DefaultPath()
		if err != nil {
			return "", err
		}
		path = p
	}
	if err := upsertConfig(path, ctx); err != nil {
		return "", err
	}
	if os.Getenv("OURO_CONFIG") == "" {
		if u, err := user.Lookup(os.Getenv("SUDO_USER")); err == nil && u.Uid != "0" {
			p := filepath.Join(u.HomeDir, ".config", "ouro", "config.yaml")
			if err := upsertConfig(p, ctx); err == nil {
				uid, _ := strconv.Atoi(u.Uid)
				gid, _ := strconv.Atoi(u.Gid)
				os.Chown(filepath.Dir(p), uid, gid)
				os.Chown(p, uid, gid)
			}
		}
	}
	return path, nil
}

func upsertConfig(path string, c clientconfig.Context) error {
	cfg, err := clientconfig.Load(path)
	if err != nil {
		return fmt.Errorf("client config %s: %w", path, err)
	}
	cfg.Upsert(c, true)
	if err := cfg.Save(path); err != nil {
		return fmt.Errorf("client config %s: %w", path, err)
	}
	return nil
}
