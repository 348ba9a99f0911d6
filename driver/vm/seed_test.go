package vm

import (
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/ouroboros-cloud/ouro/driver"
)

// seedMap returns the seed's files by name.
func seedMap(spec driver.Spec) map[string]string {
	out := map[string]string{}
	for _, f := range seedFiles(spec) {
		out[f.name] = string(f.data)
	}
	return out
}

func TestSeedFiles(t *testing.T) {
	spec := driver.Spec{
		ID:   "0f8fad5b-d9cb-469f-a165-70867728950e",
		Name: "web-1",
		Zone: "rack-2",
		PublicKeys: []string{
			"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB alice@laptop\n",
			"ssh-rsa AAAAB3Nza bob: \"quoted\" # not a comment",
		},
		UserData: "#cloud-config\nruncmd:\n  - echo hi\n",
		Interfaces: []driver.NIC{
			{MAC: "0A:58:AC:1F:00:05", IP: "172.31.0.5", Tap: "ourp0f8fad5bd9c", RouterNetNS: "/run/netns/ouro-n5001"},
			{MAC: "0a:58:0a:28:00:07", IP: "10.40.0.7", Tap: "ourp0f8fad5bd9c", RouterNetNS: "/run/netns/ouro-n5002"},
		},
	}
	files := seedMap(spec)

	var meta map[string]any
	if err := yaml.Unmarshal([]byte(files["meta-data"]), &meta); err != nil {
		t.Fatalf("meta-data is not YAML: %v\n%s", err, files["meta-data"])
	}
	wantMeta := map[string]any{
		"instance-id":       spec.ID,
		"local-hostname":    "web-1",
		"availability-zone": "rack-2",
		"public-keys": []any{
			"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB alice@laptop",
			"ssh-rsa AAAAB3Nza bob: \"quoted\" # not a comment",
		},
	}
	if !reflect.DeepEqual(meta, wantMeta) {
		t.Errorf("meta-data = %#v\nwant %#v", meta, wantMeta)
	}

	if files["user-data"] != spec.UserData {
		t.Errorf("user-data = %q, want the spec's verbatim", files["user-data"])
	}

	var net map[string]any
	if err := yaml.Unmarshal([]byte(files["network-config"]), &net); err != nil {
		t.Fatalf("network-config is not YAML: %v\n%s", err, files["network-config"])
	}
	wantNet := map[string]any{
		"version": float64(2),
		"ethernets": map[string]any{
			"nic0": map[string]any{"match": map[string]any{"macaddress": "0a:58:ac:1f:00:05"}, "dhcp4": true},
			"nic1": map[string]any{"match": map[string]any{"macaddress": "0a:58:0a:28:00:07"}, "dhcp4": true},
		},
	}
	if !reflect.DeepEqual(net, wantNet) {
		t.Errorf("network-config = %#v\nwant %#v", net, wantNet)
	}
}

func TestSeedDefaultsAndHostileValues(t *testing.T) {
	files := seedMap(driver.Spec{ID: "abc", Name: "x\ninstance-id: evil"})
	if files["user-data"] != "#cloud-config\n" {
		t.Errorf("user-data without spec.UserData = %q, want #cloud-config", files["user-data"])
	}
	if _, ok := files["network-config"]; ok {
		t.Error("network-config written for a VM without interfaces (cloud-init's fallback is DHCP on the first NIC)")
	}
	var meta map[string]any
	if err := yaml.Unmarshal([]byte(files["meta-data"]), &meta); err != nil {
		t.Fatal(err)
	}
	if meta["instance-id"] != "abc" || meta["local-hostname"] != "x\ninstance-id: evil" {
		t.Errorf("a line break in a value escaped its line: %#v", meta)
	}
	if strings.Count(files["meta-data"], "\n") != 2 {
		t.Errorf("meta-data has extra lines:\n%s", files["meta-data"])
	}
}
