package testimage

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/internal/testenv"
)

func TestResolveModulesOrdersDependenciesFirst(t *testing.T) {
	dir := t.TempDir()
	dep := `kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/input/evdev.ko.xz:
`
	os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644)
	os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/drivers/acpi/button.ko\n"), 0o644)

	mods, err := resolveModules(dir, []string{"virtio_pci", "virtio-net", "button"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range mods {
		names = append(names, m.name)
	}
	pos := func(n string) int { return slices.Index(names, n) }
	for _, edge := range [][2]string{
		{"virtio_ring", "virtio"}, {"virtio", "virtio_pci"}, {"virtio_pci_legacy_dev", "virtio_pci"},
		{"virtio_pci_modern_dev", "virtio_pci"}, {"failover", "net_failover"}, {"net_failover", "virtio_net"},
		{"virtio", "virtio_net"},
	} {
		if pos(edge[0]) < 0 || pos(edge[1]) < 0 || pos(edge[0]) > pos(edge[1]) {
			t.Errorf("%s must load before %s: order %v", edge[0], edge[1], names)
		}
	}
	if len(names) != 8 || slices.Contains(names, "button") {
		t.Errorf("modules %v: want the 8 of the virtio tree, each once, and not the built-in button", names)
	}
	if _, err := resolveModules(dir, []string{"evdev"}); err == nil || !strings.Contains(err.Error(), "compressed") {
		t.Errorf("compressed module: %v, want a refusal", err)
	}
	if _, err := resolveModules(dir, []string{"nope"}); err == nil {
		t.Error("a missing module was accepted")
	}
}

func TestVersionLess(t *testing.T) {
	in := []string{"/boot/vmlinuz-6.1.0-9-amd64", "/boot/vmlinuz-6.1.0-56-amd64", "/boot/vmlinuz-5.10.0-30-amd64", "/boot/vmlinuz-6.10.1-1-amd64"}
	slices.SortFunc(in, func(a, b string) int {
		if versionLess(a, b) {
			return -1
		}
		if versionLess(b, a) {
			return 1
		}
		return 0
	})
	want := []string{"/boot/vmlinuz-5.10.0-30-amd64", "/boot/vmlinuz-6.1.0-9-amd64", "/boot/vmlinuz-6.1.0-56-amd64", "/boot/vmlinuz-6.10.1-1-amd64"}
	if !slices.Equal(in, want) {
		t.Errorf("sorted %v, want %v", in, want)
	}
}

// cpioEntry is one parsed newc entry.
type cpioEntry struct {
	mode, rmajor, rminor int
	data                 string
}

// parseNewc reads a newc archive written by cpioWriter.
func parseNewc(t *testing.T, b []byte) map[string]cpioEntry {
	t.Helper()
	out := map[string]cpioEntry{}
	pad := func(n int) int { return (n + 3) &^ 3 }
	for off := 0; ; {
		if len(b) < off+110 || string(b[off:off+6]) != "070701" {
			t.Fatalf("bad header at %d", off)
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(v)
		}
		mode, size, rmaj, rmin, namesize := field(1), field(6), field(9), field(10), field(11)
		name := string(b[off+110 : off+110+namesize-1])
		dataOff := pad(off + 110 + namesize)
		if name == "TRAILER!!!" {
			return out
		}
		out[name] = cpioEntry{mode: mode, rmajor: rmaj, rminor: rmin, data: string(b[dataOff : dataOff+size])}
		off = pad(dataOff + size)
	}
}

func TestWriteInitramfs(t *testing.T) {
	dir := t.TempDir()
	ko := filepath.Join(dir, "virtio.ko")
	os.WriteFile(ko, []byte("\x7fELF module"), 0o644)
	bb := testenv.NeedFile(t, Busybox)
	path := filepath.Join(dir, "initrd.cpio")
	if err := writeInitramfs(path, bb, "6.1.0-test", []module{{name: "virtio", path: ko}}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ents := parseNewc(t, data)
	check := func(name string, mode int, data string) {
		t.Helper()
		e, ok := ents[name]
		if !ok {
			t.Errorf("%s missing", name)
			return
		}
		if e.mode != mode || (data != "" && e.data != data) {
			t.Errorf("%s: mode %o data %q, want %o %q", name, e.mode, truncate(e.data), mode, data)
		}
	}
	check("init", 0o100755, initScript)
	check("bin/sh", 0o120777, "busybox")
	check("lib/modules/virtio.ko", 0o100644, "\x7fELF module")
	check("lib/modules/order", 0o100644, "virtio\n")
	check("etc/acpi/PWRF/00000080", 0o100755, powerScript)
	check("proc", 0o040755, "")
	if c := ents["dev/console"]; c.mode != 0o020600 || c.rmajor != 5 || c.rminor != 1 {
		t.Errorf("dev/console = %+v, want char device 5:1", c)
	}
	if fi, _ := os.Stat(bb); int64(len(ents["bin/busybox"].data)) != fi.Size() {
		t.Errorf("bin/busybox is %d bytes, want %d", len(ents["bin/busybox"].data), fi.Size())
	}
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
