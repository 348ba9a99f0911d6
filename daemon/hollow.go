package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ouroboros-cloud/ouro/hollow"
)

// HollowConfig configures `ouro agent --hollow N`: N simulated hosts
// instead of a real agent, to load-test the control plane.
type HollowConfig struct {
	Server    string
	CACert    []byte
	JoinToken string
	// DataDir keeps the hollow hosts' credentials, one file per host.
	DataDir string
	// Count is N, the number of hollow hosts.
	Count int
	// NamePrefix names the hosts PREFIX-0 … PREFIX-(N-1) (default "hollow").
	NamePrefix string
	Logger     *slog.Logger
}

// RunHollow runs cfg.Count hollow hosts until ctx ends. They are labelled
// ouro.dev/hollow=true and tainted ouro.dev/hollow: only instances that
// tolerate the taint are placed on them, and nothing is ever started.
func RunHollow(ctx context.Context, cfg HollowConfig) error {
	if cfg.Count <= 0 {
		return fmt.Errorf("--hollow %d: want a positive number of hosts", cfg.Count)
	}
	if cfg.DataDir == "" {
		return fmt.Errorf("agent --hollow: --data-dir is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log.Warn("running hollow hosts: simulated hosts that start nothing, for load tests only", "count", cfg.Count)
	return hollow.Run(ctx, hollow.Config{
		Server: cfg.Server, CACert: cfg.CACert, JoinToken: cfg.JoinToken, DataDir: cfg.DataDir,
		Count: cfg.Count, NamePrefix: cfg.NamePrefix, Logger: log,
	})
}
