package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ouroboros-cloud/ouro/driver"
)

// The cloud-init NoCloud seed: an ISO 9660 volume labelled "cidata" with
// meta-data (instance id, host name, zone, SSH keys), user-data and, when the
// VM has interfaces, network-config (version 2: DHCP on each interface,
// matched by MAC). cloud-init finds it on any block device by its label.

// seedFile is one file of the seed.
type seedFile struct {
	name string
	data []byte
}

// seedFiles returns the seed's files for spec, in a fixed order.
func seedFiles(spec driver.Spec) []seedFile {
	var meta bytes.Buffer
	fmt.Fprintf(&meta, "instance-id: %s\n", yamlString(spec.ID))
	fmt.Fprintf(&meta, "local-hostname: %s\n", yamlString(spec.Name))
	if spec.Zone != "" {
		// cloud-init reads it as the instance's availability zone.
		fmt.Fprintf(&meta, "availability-zone: %s\n", yamlString(spec.Zone))
	}
	if len(spec.PublicKeys) > 0 {
		meta.WriteString("public-keys:\n")
		for _, k := range spec.PublicKeys {
			fmt.Fprintf(&meta, "  - %s\n", yamlString(strings.TrimSpace(k)))
		}
	}
	user := spec.UserData
	if user == "" {
		user = "#cloud-config\n"
	}
	files := []seedFile{{"meta-data", meta.Bytes()}, {"user-data", []byte(user)}}
	if len(spec.Interfaces) > 0 {
		var net bytes.Buffer
		net.WriteString("version: 2\nethernets:\n")
		for i, nic := range spec.Interfaces {
			fmt.Fprintf(&net, "  nic%d:\n    match:\n      macaddress: %s\n    dhcp4: true\n",
				i, yamlString(strings.ToLower(nic.MAC)))
		}
		files = append(files, seedFile{"network-config", net.Bytes()})
	}
	return files
}

// yamlString quotes s as a YAML double-quoted scalar (a JSON string is
// one), so no value can break out of its line.
func yamlString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // cannot fail for a string
	return strings.TrimSuffix(b.String(), "\n")
}

// ensureSeed writes the instance's seed ISO unless it exists. Its files
// are staged in a directory of a fixed name (the caller holds the
// instance's lock): a failure then has the same message on every try.
func (d *Driver) ensureSeed(ctx context.Context, p instancePaths, spec driver.Spec) error {
	if fileExists(p.seed) {
		return nil
	}
	dir := p.seed + ".d"
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer os.RemoveAll(dir)
	args := []string{"-quiet", "-output", p.seed + ".tmp", "-volid", "cidata", "-joliet", "-rock"}
	for _, f := range seedFiles(spec) {
		path := filepath.Join(dir, f.name)
		if err := os.WriteFile(path, f.data, 0o600); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		args = append(args, path)
	}
	if _, err := d.run(ctx, d.cfg.Genisoimage, args...); err != nil {
		os.Remove(p.seed + ".tmp")
		return fmt.Errorf("seed: %w", err)
	}
	if err := os.Rename(p.seed+".tmp", p.seed); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return nil
}
