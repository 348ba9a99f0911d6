package cephtest

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestSharedCluster starts the shared cluster, writes through its pool,
// kills an OSD and brings it back.
func TestSharedCluster(t *testing.T) {
	c := Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := c.RBD(ctx, "create", "--size", "4M", c.Pool+"/cephtest"); err != nil {
		t.Fatal(err)
	}
	out, err := c.RBD(ctx, "ls", "--format", "json", c.Pool)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := json.Unmarshal(out, &names); err != nil || len(names) != 1 || names[0] != "cephtest" {
		t.Fatalf("rbd ls = %s (%v), want [cephtest]", out, err)
	}
	id := c.OSDIDs()[0]
	if err := c.KillOSD(id); err != nil {
		t.Fatal(err)
	}
	if err := c.StartOSD(id); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RBD(ctx, "rm", "--no-progress", c.Pool+"/cephtest"); err != nil {
		t.Fatal(err)
	}
}
