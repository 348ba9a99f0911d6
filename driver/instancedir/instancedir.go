// Package instancedir keeps the state directories of a driver's
// instances: one directory per instance id under a root, made when the
// instance is created and removed when it is deleted.
//
//	<root>/<id>/spec.json            written last: a complete Create
//	<root>/.removed-<id>/            a removal in progress (or crashed)
//
// A directory is moved out of the way before it is removed, so a crash
// mid-removal never leaves a half-removed instance under its id; the next
// Remove of that id, or Clean, removes such leftovers.
package instancedir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/internal/atomicfile"
	"github.com/ouroboros-cloud/ouro/internal/keymutex"
)

// SpecFile is the name of the file in an instance's directory that
// records its spec. It is written last by Create, so it marks a complete
// one.
const SpecFile = "spec.json"

// removedPrefix starts the names of directories being removed.
const removedPrefix = ".removed-"

// Root is the directory holding the instance directories of one driver.
// Callers serialise Create and Remove of one id; List and Clean may run
// at any time.
type Root struct {
	dir string
	id  *regexp.Regexp
	// removals is held for an id while its removed directory is deleted.
	removals keymutex.Map
}

// New returns the root dir, whose instance ids match id. Ids become path
// names: id must refuse '/', "." and "..", and names starting with '.'.
func New(dir string, id *regexp.Regexp) *Root {
	return &Root{dir: dir, id: id}
}

// Path returns the directory of the instance id.
func (r *Root) Path(id string) string { return filepath.Join(r.dir, id) }

// Exists reports whether the instance id has a directory.
func (r *Root) Exists(id string) bool {
	_, err := os.Lstat(r.Path(id))
	return err == nil
}

// Create makes the directory of the instance id (mode 0700) and the
// subdirectories sub of it; what exists already is kept.
func (r *Root) Create(id string, sub ...string) (string, error) {
	dir := r.Path(id)
	for _, s := range append([]string{""}, sub...) {
		if err := os.MkdirAll(filepath.Join(dir, s), 0o700); err != nil {
			return "", fmt.Errorf("create instance directory: %w", err)
		}
	}
	return dir, nil
}

// Remove removes the directory of the instance id and everything in it,
// and what a crashed earlier removal of id left; a missing directory is
// no error. The caller makes sure nothing is mounted below it.
func (r *Root) Remove(id string) error {
	unlock := r.removals.Lock(id)
	defer unlock()
	doomed := filepath.Join(r.dir, removedPrefix+id)
	if err := os.RemoveAll(doomed); err != nil {
		return fmt.Errorf("remove instance directory: %w", err)
	}
	err := os.Rename(r.Path(id), doomed)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove instance directory: %w", err)
	}
	syncDir(r.dir)
	if err := os.RemoveAll(doomed); err != nil {
		return fmt.Errorf("remove instance directory: %w", err)
	}
	return nil
}

// List returns the ids of the instances that have a directory, sorted.
func (r *Root) List() ([]string, error) {
	entries, err := os.ReadDir(r.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list instance directories: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && r.id.MatchString(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Clean removes what crashed removals left.
func (r *Root) Clean() error {
	entries, err := os.ReadDir(r.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clean instance directories: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), removedPrefix) {
			if err := r.removeLeftover(e.Name()); err != nil {
				errs = append(errs, fmt.Errorf("clean instance directories: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// removeLeftover removes the removed directory name unless a Remove of
// its id is deleting it right now.
func (r *Root) removeLeftover(name string) error {
	unlock := r.removals.Lock(strings.TrimPrefix(name, removedPrefix))
	defer unlock()
	return os.RemoveAll(filepath.Join(r.dir, name))
}

// SpecPath returns the spec file of the instance id.
func (r *Root) SpecPath(id string) string { return filepath.Join(r.Path(id), SpecFile) }

// ReadSpec reads the spec recorded for the instance id; the error wraps
// os.ErrNotExist when there is none (Create did not finish).
func (r *Root) ReadSpec(id string) (driver.Spec, error) {
	var spec driver.Spec
	path := r.SpecPath(id)
	data, err := os.ReadFile(path)
	if err != nil {
		return spec, err
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		return spec, fmt.Errorf("parse %s: %w", path, err)
	}
	return spec, nil
}

// WriteSpec records spec as the spec of its instance, atomically. Create
// writes it last.
func (r *Root) WriteSpec(spec driver.Spec) error {
	return WriteJSON(r.SpecPath(spec.ID), spec)
}

// WriteJSON writes v as indented JSON to path through a temporary file
// and a rename, so readers see the old or the new content, never a part.
func WriteJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	return atomicfile.WriteFile(path, append(data, '\n'), 0o600)
}

// syncDir flushes a directory's entries (a rename) to disk; failures are
// not fatal.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}
