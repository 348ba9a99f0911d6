package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// AdminTokenFile is the file in DataDir that keeps the bootstrap admin's
// token (mode 0600).
const AdminTokenFile = "admin.token"

// DefaultFlavors are created by Bootstrap when absent.
var DefaultFlavors = map[string]api.Resources{
	"tiny":   {VCPUs: 1, MemoryMiB: 128, DiskGiB: 1},
	"small":  {VCPUs: 1, MemoryMiB: 512, DiskGiB: 5},
	"medium": {VCPUs: 2, MemoryMiB: 2048, DiskGiB: 20},
	"large":  {VCPUs: 4, MemoryMiB: 8192, DiskGiB: 40},
}

// Bootstrap makes what a new cluster needs: project "default", the default
// flavors, the default network and security group of every project, and
// user "admin" (a cluster admin) with a token kept in
// <DataDir>/admin.token. On later starts it returns the kept token and
// makes no second admin. It is idempotent and safe to interrupt: the token
// is written to admin.token.new before it is stored, and only renamed into
// place once stored.
//
// When another server of the cluster made the admin (the user exists but
// this data directory has no token), it returns "".
func (s *Server) Bootstrap(ctx context.Context) (string, error) {
	createIgnoringExists := func(obj api.Object) error {
		if _, err := s.store.Create(ctx, obj, store.CreateOptions{}); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return fmt.Errorf("bootstrap %s %s: %w", obj.GetKind(), obj.Meta().Name, err)
		}
		return nil
	}
	if err := createIgnoringExists(&api.Project{Metadata: api.ObjectMeta{Name: "default"},
		Spec: api.ProjectSpec{Description: "the default project"}}); err != nil {
		return "", err
	}
	for name, res := range DefaultFlavors {
		if err := createIgnoringExists(&api.Flavor{Metadata: api.ObjectMeta{Name: name}, Spec: res}); err != nil {
			return "", err
		}
	}
	// Every project has a default network and security group, including
	// projects made by older versions or whose create was cut short.
	projects, _, err := s.store.List(ctx, api.ProjectKind, "", store.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("bootstrap: list projects: %w", err)
	}
	for _, p := range projects {
		if err := s.adm.EnsureProjectNetworking(ctx, s.store, p.Meta().Name); err != nil {
			return "", fmt.Errorf("bootstrap: %w", err)
		}
	}
	return s.bootstrapAdmin(ctx)
}

func (s *Server) bootstrapAdmin(ctx context.Context) (string, error) {
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data directory: %w", err)
	}
	final := filepath.Join(s.cfg.DataDir, AdminTokenFile)
	pending := final + ".new"
	if b, err := os.ReadFile(final); err == nil {
		wire := strings.TrimSpace(string(b))
		if _, _, err := auth.Parse(wire); err != nil {
			return "", fmt.Errorf("%s: %w", final, err)
		}
		return wire, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read admin token: %w", err)
	}

	var wire string
	b, err := os.ReadFile(pending)
	if err == nil {
		if _, _, perr := auth.Parse(strings.TrimSpace(string(b))); perr != nil {
			// Torn write: nothing was stored with it yet.
			err = fs.ErrNotExist
		}
	}
	switch {
	case err == nil:
		// An earlier start stopped half way: finish its work.
		wire = strings.TrimSpace(string(b))
	case errors.Is(err, fs.ErrNotExist):
		var u api.User
		err := s.store.Get(ctx, api.UserKind, "", "admin", &u)
		if err == nil {
			s.log.Info("admin user exists and this data directory has no admin token; another server bootstrapped the cluster")
			return "", nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("get admin user: %w", err)
		}
		_, _, wire = auth.NewSecret()
		if err := writeFileSync(pending, []byte(wire+"\n")); err != nil {
			return "", fmt.Errorf("write admin token: %w", err)
		}
	default:
		return "", fmt.Errorf("read pending admin token: %w", err)
	}
	name, secret, _ := auth.Parse(wire)
	if _, err := s.store.Create(ctx, &api.User{Metadata: api.ObjectMeta{Name: "admin"},
		Spec: api.UserSpec{ClusterAdmin: true}}, store.CreateOptions{}); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return "", fmt.Errorf("create admin user: %w", err)
	}
	tok := &api.Token{
		Metadata: api.ObjectMeta{Name: name},
		Spec:     api.TokenSpec{User: "admin", Description: "bootstrap admin token"},
		Status:   api.TokenStatus{SecretHash: auth.Hash(secret)},
	}
	if _, err := s.store.Create(ctx, tok, store.CreateOptions{}); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return "", fmt.Errorf("create admin token: %w", err)
	}
	if err := os.Rename(pending, final); err != nil {
		return "", fmt.Errorf("keep admin token: %w", err)
	}
	if err := syncDir(s.cfg.DataDir); err != nil {
		return "", fmt.Errorf("sync data directory: %w", err)
	}
	s.log.Info("bootstrapped the cluster admin", "user", "admin", "tokenFile", final)
	return wire, nil
}

// writeFileSync creates path with mode 0600 and syncs it and its directory.
func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir flushes a directory's entries (a create or a rename) to disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
