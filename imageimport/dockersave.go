package imageimport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strings"
)

// dockerManifest is one entry of the manifest.json that "docker save"
// writes. Legacy archives name files "<id>/layer.tar" and "<hex>.json";
// Docker 25 and later name them "blobs/sha256/<hex>".
type dockerManifest struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

var (
	blobNameRE   = regexp.MustCompile(`^blobs/sha256/([a-f0-9]{64})$`)
	configNameRE = regexp.MustCompile(`^(?:sha256:)?([a-f0-9]{64})(?:\.json)?$`)
)

// loadDockerSave reads the image for this host from a docker save archive.
// Files named by digest are checked against it; every layer is checked
// against the diff_ids of the image config.
func loadDockerSave(ctx context.Context, fsys fs.FS, source string, ws *workspace) (*Image, error) {
	var entries []dockerManifest
	if err := readJSON(fsys, "manifest.json", maxManifestSize, &entries); err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, errors.New("manifest.json lists no image")
	}
	type candidate struct {
		entry  dockerManifest
		config []byte
		arch   string
	}
	var matches []candidate
	var others []string
	for i, e := range entries {
		raw, err := readDockerConfig(fsys, e.Config)
		if err != nil {
			return nil, fmt.Errorf("manifest.json image %d: %w", i+1, err)
		}
		var cfg configFile
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("manifest.json image %d: config: %w", i+1, err)
		}
		c := candidate{entry: e, config: raw, arch: normalizeArch(cfg.Architecture)}
		if len(entries) == 1 || c.arch == hostArch || c.arch == "" {
			matches = append(matches, c)
		} else {
			others = append(others, c.arch)
		}
	}
	switch {
	case len(matches) == 0:
		return nil, fmt.Errorf("the archive's images are built for %s, but this host is %s; save an image for linux/%s", strings.Join(others, ", "), hostArch, hostArch)
	case len(matches) > 1:
		var tags []string
		for _, c := range matches {
			tags = append(tags, strings.Join(c.entry.RepoTags, " "))
		}
		return nil, fmt.Errorf("the archive holds %d images for this host (%s); save one image per archive", len(matches), strings.Join(tags, "; "))
	}
	chosen := matches[0]
	if len(entries) > 1 {
		source += " (" + strings.Join(chosen.entry.RepoTags, ", ") + ")"
	}
	layers := make([]layerSource, len(chosen.entry.Layers))
	for i, p := range chosen.entry.Layers {
		name, ok := cleanName(p)
		if !ok {
			return nil, fmt.Errorf("manifest.json: layer path %q leaves the archive", truncate(p, 80))
		}
		want := layerWant{Size: -1}
		if m := blobNameRE.FindStringSubmatch(name); m != nil {
			want.Digest = "sha256:" + m[1]
		}
		fi, err := fs.Stat(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("manifest.json: layer %d: %w", i+1, err)
		}
		want.Size = fi.Size()
		layers[i] = layerSource{want: want, open: func() (io.ReadCloser, error) { return fsys.Open(name) }}
	}
	return assemble(ctx, ws, chosen.config, layers, source)
}

// readDockerConfig reads an image config named in manifest.json and, when
// its name carries its digest, verifies it.
func readDockerConfig(fsys fs.FS, p string) ([]byte, error) {
	name, ok := cleanName(p)
	if !ok {
		return nil, fmt.Errorf("config path %q leaves the archive", truncate(p, 80))
	}
	data, err := readFile(fsys, name, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	m := blobNameRE.FindStringSubmatch(name)
	if m == nil {
		m = configNameRE.FindStringSubmatch(path.Base(name))
	}
	if m != nil {
		if err := verifyBytes(data, "sha256:"+m[1]); err != nil {
			return nil, fmt.Errorf("config %s: %w", name, err)
		}
	}
	return data, nil
}
