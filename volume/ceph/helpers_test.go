package ceph

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/cephtest"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/volume"
)

func TestMain(m *testing.M) { os.Exit(cephtest.Main(m)) }

// testCtx returns a context that ends with the test or after d.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// testUser is the cephx user the tests run the backend as: the caps a
// pool's keyring needs (cephtest.ClientCaps), not the admin's.
const testUser = "ouro-test"

// newBackend returns a backend on the shared cluster's pool, as testUser.
func newBackend(t *testing.T) (*Backend, *cephtest.Cluster) {
	t.Helper()
	c := cephtest.Shared(t)
	key, err := c.NewClient(testCtx(t, time.Minute), testUser)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Monitors: []string{c.Monitor}, Pool: c.Pool, User: testUser, Key: key, Dir: t.TempDir(), Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return b, c
}

// qemuIOArgs returns qemu-io's arguments to open an attachment.
func qemuIOArgs(att volume.Attachment) []string {
	var args []string
	for _, o := range att.Objects {
		args = append(args, "--object", o)
	}
	return append(args, "json:"+att.BlockdevJSON)
}

// qemuIO runs qemu-io commands on a volume through QEMU's rbd driver.
func qemuIO(t *testing.T, ctx context.Context, att volume.Attachment, cmds ...string) string {
	t.Helper()
	testenv.NeedBinary(t, "qemu-io")
	var args []string
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.CommandContext(ctx, "qemu-io", append(args, qemuIOArgs(att)...)...).CombinedOutput()
	if err != nil || strings.Contains(string(out), "failed") {
		t.Fatalf("qemu-io %v: %v: %s", cmds, err, out)
	}
	return string(out)
}

// exportPrefix reads the first n bytes of volume id with rbd export.
func exportPrefix(t *testing.T, ctx context.Context, c *cephtest.Cluster, id string, n int64) []byte {
	t.Helper()
	cmd := exec.CommandContext(ctx, "rbd", "-c", c.Conf, "export", "--no-progress", c.Pool+"/"+imagePrefix+id, "-")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, n)
	_, rerr := io.ReadFull(out, buf)
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil || rerr != nil {
		t.Fatalf("rbd export %s: %v %v: %s", id, err, rerr, stderr.String())
	}
	return buf
}

// filled reports whether every byte of b is v.
func filled(b []byte, v byte) bool {
	return len(b) > 0 && bytes.Count(b, []byte{v}) == len(b)
}

// sum returns the hex sha256 of b.
func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
