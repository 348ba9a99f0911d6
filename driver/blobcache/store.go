package blobcache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ouroboros-cloud/ouro/internal/keymutex"
)

// store is a directory of entries (files or directories) named by key.
// Each entry is made once, under its key's lock, under a temporary name
// that is renamed into place:
//
//	<dir>/.tmp-<key>-<digits>   being made, or left by a crash
//	<dir>/.tmp-<key>-prune      being removed, or left by a crash
//	<dir>/<key>                 complete
type store struct {
	dir   string
	locks keymutex.Map
}

// Dir returns the directory holding the entries.
func (s *store) Dir() string { return s.dir }

// ensure returns the path of the entry key, calling create with it unless
// present reports the entry complete. create makes the entry under a
// temporary name (see tmpPrefix) and renames it to the path it is given;
// it runs with the key's lock held, after any leftovers of key are gone.
// made reports whether create ran.
func (s *store) ensure(key string, present func(path string) bool, create func(final string) error) (path string, made bool, err error) {
	final := filepath.Join(s.dir, key)
	if present(final) {
		return final, false, nil
	}
	unlock := s.locks.Lock(key)
	defer unlock()
	if present(final) { // made while we waited
		return final, false, nil
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return "", false, err
	}
	if err := removeStale(s.dir, key); err != nil {
		return "", false, err
	}
	if err := create(final); err != nil {
		return "", false, err
	}
	syncDir(s.dir)
	return final, true, nil
}

// remove moves the entry key out of the way before removing it, so a
// crash mid-removal never leaves a partial entry under its final name. A
// missing entry is no error.
func (s *store) remove(key string) error {
	unlock := s.locks.Lock(key)
	defer unlock()
	doomed := filepath.Join(s.dir, tmpPrefix(key)+"prune")
	if err := os.RemoveAll(doomed); err != nil {
		return err
	}
	err := os.Rename(filepath.Join(s.dir, key), doomed)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return os.RemoveAll(doomed)
}

// clean removes every temporary entry, each under its key's lock so that
// work in progress keeps its files.
func (s *store) clean() error {
	entries, err := readDir(s.dir)
	errs := []error{err}
	for _, e := range entries {
		key, ok := tmpKey(e.Name())
		if !ok {
			continue
		}
		unlock := s.locks.Lock(key)
		err := os.RemoveAll(filepath.Join(s.dir, e.Name()))
		unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("clean %s: %w", s.dir, err))
		}
	}
	return errors.Join(errs...)
}

// syncDir flushes a directory's entries (a rename) to disk; failures are
// not fatal.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// readDir lists dir; a missing directory is empty.
func readDir(dir string) ([]os.DirEntry, error) {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	return entries, nil
}

// tmpPrefix is the name prefix of the temporary entries of key: a fetch
// or build in progress (or crashed) is ".tmp-<key>-<digits>", a removal
// ".tmp-<key>-prune".
func tmpPrefix(key string) string { return ".tmp-" + key + "-" }

// tmpKey returns the key a temporary entry name belongs to.
func tmpKey(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, ".tmp-")
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, '-')
	if i <= 0 {
		return "", false
	}
	key, suffix := rest[:i], rest[i+1:]
	if suffix != "prune" && !allDigits(suffix) {
		return "", false
	}
	return key, true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// removeStale removes the temporary entries of key in dir; the caller
// holds key's lock.
func removeStale(dir, key string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("remove stale temporary files: %w", err)
	}
	for _, e := range entries {
		if k, ok := tmpKey(e.Name()); ok && k == key {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("remove stale temporary files: %w", err)
			}
		}
	}
	return nil
}
