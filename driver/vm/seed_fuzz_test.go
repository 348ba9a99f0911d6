package vm

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ouroboros-cloud/ouro/driver"
)

// FuzzSeedFiles checks that no instance name, zone, key or user-data can
// change the shape of the NoCloud seed: meta-data has only the lines the
// driver writes, each value decodes back to exactly what was given, and
// user-data is passed through byte for byte.
func FuzzSeedFiles(f *testing.F) {
	f.Add("web", "zone-a", "ssh-ed25519 AAAA me", "#cloud-config\nhostname: x\n")
	f.Add("a\ninstance-id: evil", "z\"\n", "k\n  - injected", "")
	f.Add("", "", "", "\x00\xff")
	f.Fuzz(func(t *testing.T, name, zone, key, userData string) {
		if !utf8.ValidString(name) || !utf8.ValidString(zone) || !utf8.ValidString(key) {
			return // the API refuses these; JSON quoting replaces bad bytes
		}
		spec := driver.Spec{ID: "6f1c2d3e-0000-4000-8000-000000000001", Name: name, Zone: zone, UserData: userData}
		if key != "" {
			spec.PublicKeys = []string{key}
		}
		files := seedFiles(spec)
		want := map[string]string{"instance-id": spec.ID, "local-hostname": name, "availability-zone": zone}
		var keys []string
		for _, line := range strings.Split(strings.TrimSuffix(string(files[0].data), "\n"), "\n") {
			if line == "public-keys:" {
				continue
			}
			var raw string
			if v, ok := strings.CutPrefix(line, "  - "); ok {
				raw = v
			} else {
				k, v, ok := strings.Cut(line, ": ")
				if _, known := want[k]; !ok || !known {
					t.Fatalf("meta-data has a line %q the driver does not write", line)
				}
				raw = v
				defer func(k string) {
					var got string
					json.Unmarshal([]byte(raw), &got)
					if got != want[k] {
						t.Errorf("meta-data %s = %q, want %q", k, got, want[k])
					}
				}(k)
				continue
			}
			var got string
			if err := json.Unmarshal([]byte(raw), &got); err != nil {
				t.Fatalf("meta-data value %q is not a quoted string: %v", raw, err)
			}
			keys = append(keys, got)
		}
		if len(spec.PublicKeys) != len(keys) || (len(keys) == 1 && keys[0] != strings.TrimSpace(key)) {
			t.Fatalf("public keys %q, want %q", keys, spec.PublicKeys)
		}
		if userData != "" && string(files[1].data) != userData {
			t.Fatalf("user-data changed: %q, want %q", files[1].data, userData)
		}
	})
}
