package container

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/ouroboros-cloud/ouro/driver/blobcache"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
)

func TestIDMapHost(t *testing.T) {
	m := idMap{HostID: 100000, Size: 65536}
	for _, tc := range []struct {
		m        idMap
		id, want int
	}{
		{m, 0, 100000},
		{m, 1000, 101000},
		{m, 65535, 165535},
		{m, 65536, 165534}, // beyond the range: nobody
		{m, 70000, 165534},
		{idMap{}, 70000, 70000}, // no user namespace: unchanged
	} {
		if got := tc.m.host(tc.id); got != tc.want {
			t.Errorf("%+v.host(%d) = %d, want %d", tc.m, tc.id, got, tc.want)
		}
	}
}

func TestIDMapVariant(t *testing.T) {
	for _, tc := range []struct {
		m    idMap
		want string
	}{
		{idMap{}, ""},
		{idMap{HostID: 100000, Size: 65536}, "u100000-65536"},
		{idMap{HostID: 4000000000, Size: 1}, "u4000000000-1"},
	} {
		got := tc.m.variant()
		if got != tc.want {
			t.Errorf("%+v.variant() = %q, want %q", tc.m, got, tc.want)
		}
		if _, err := blobcache.Key("sha256:"+strings.Repeat("a", 64), got); err != nil {
			t.Errorf("variant %q is no blobcache variant: %v", got, err)
		}
		back, err := parseVariant(got)
		if err != nil || back != tc.m {
			t.Errorf("parseVariant(%q) = %+v, %v, want %+v", got, back, err, tc.m)
		}
	}
	for _, bad := range []string{"u100000", "u100000-0", "u0100000-65536", "u100000-65536-1", "x100000-65536", "u-1-65536", "u99999999999-1"} {
		if m, err := parseVariant(bad); err == nil {
			t.Errorf("parseVariant(%q) = %+v, want an error", bad, m)
		}
	}
}

func TestNewIDMap(t *testing.T) {
	for _, tc := range []struct {
		base    uint32
		want    idMap
		wantErr bool
	}{
		{0, idMap{HostID: DefaultHostIDBase, Size: 65536}, false},
		{200000, idMap{HostID: 200000, Size: 65536}, false},
		{1000, idMap{}, true},
		{1<<32 - 100, idMap{}, true},
	} {
		got, err := newIDMap(tc.base)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("newIDMap(%d) = %+v, %v; want %+v, error %v", tc.base, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestNSFileCaps(t *testing.T) {
	v2 := make([]byte, 20)
	binary.LittleEndian.PutUint32(v2, 0x02000001) // revision 2, effective
	binary.LittleEndian.PutUint32(v2[4:], 1<<13)  // CAP_NET_RAW permitted
	want := append(append([]byte(nil), v2...), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(want, 0x03000001)
	binary.LittleEndian.PutUint32(want[20:], 100000)
	v3 := append([]byte(nil), want...)
	binary.LittleEndian.PutUint32(v3[20:], 7)
	for _, tc := range []struct {
		name    string
		in, out []byte
	}{
		{"revision 2", v2, want},
		{"revision 3 with another root", v3, want},
		{"too short", []byte{1, 2}, []byte{1, 2}},
		{"unknown revision", bytes.Repeat([]byte{9}, 20), bytes.Repeat([]byte{9}, 20)},
	} {
		if got := nsFileCaps(tc.in, 100000); !bytes.Equal(got, tc.out) {
			t.Errorf("%s: nsFileCaps = %x, want %x", tc.name, got, tc.out)
		}
	}
}

func TestSeccompArchitectures(t *testing.T) {
	for _, tc := range []struct {
		goarch string
		want   []specs.Arch
	}{
		{"amd64", []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}},
		{"arm64", []specs.Arch{specs.ArchAARCH64, specs.ArchARM}},
	} {
		s := seccompProfile(tc.goarch)
		if len(s.Architectures) != len(tc.want) {
			t.Fatalf("%s: architectures %v, want %v", tc.goarch, s.Architectures, tc.want)
		}
		for i := range tc.want {
			if s.Architectures[i] != tc.want[i] {
				t.Errorf("%s: architectures %v, want %v", tc.goarch, s.Architectures, tc.want)
			}
		}
		if s.DefaultAction != specs.ActAllow {
			t.Errorf("%s: default action %s", tc.goarch, s.DefaultAction)
		}
	}
}

// TestShiftedExtraction checks a layer extracted for a user namespace:
// owners shifted (beyond the range: nobody), set-id bits kept, missing
// parents owned by the shifted root, file capabilities rewritten for it.
func TestShiftedExtraction(t *testing.T) {
	testenv.NeedRoot(t)
	ids := idMap{HostID: 100000, Size: 65536}
	caps := make([]byte, 20)
	binary.LittleEndian.PutUint32(caps, 0x02000001)
	binary.LittleEndian.PutUint32(caps[4:], 1<<13)
	root := t.TempDir()
	entries := []tarEntry{
		{name: "home/worker/", typ: tar.TypeDir, mode: 0o750, uid: 1000, gid: 1001},
		{name: "bin/su", body: "x", mode: 0o4755},
		{name: "bin/wall", body: "x", mode: 0o2755, gid: 5},
		{name: "far", body: "x", uid: 70000, gid: 70001},
		{name: "pinger", body: "x", mode: 0o755, xattrs: map[string]string{"security.capability": string(caps)}},
	}
	if err := extractTar(context.Background(), bytes.NewReader(makeTar(t, entries)), root, ids, slog.Default()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path     string
		uid, gid uint32
		mode     uint32
	}{
		{"home", 100000, 100000, 0o755}, // made as a parent
		{"home/worker", 101000, 101001, 0o750},
		{"bin/su", 100000, 100000, 0o4755},
		{"bin/wall", 100000, 100005, 0o2755},
		{"far", 165534, 165534, 0o644},
	} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, tc.path), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != tc.uid || st.Gid != tc.gid || st.Mode&0o7777 != tc.mode {
			t.Errorf("%s: %d:%d %#o, want %d:%d %#o", tc.path, st.Uid, st.Gid, st.Mode&0o7777, tc.uid, tc.gid, tc.mode)
		}
	}
	got := make([]byte, 64)
	n, err := unix.Lgetxattr(filepath.Join(root, "pinger"), "security.capability", got)
	if err != nil {
		t.Fatal(err)
	}
	if want := nsFileCaps(caps, 100000); !bytes.Equal(got[:n], want) {
		t.Errorf("security.capability = %x, want %x (revision 3, root id 100000)", got[:n], want)
	}
}
