package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// exitRecord is exit.json, written by the shim when runc returns.
type exitRecord struct {
	ExitCode   int       `json:"exitCode"`
	FinishedAt time.Time `json:"finishedAt"`
	// Error is set when the container never started (runc failed to
	// create it); the console log has runc's message.
	Error string `json:"error,omitempty"`
}

// readExit reads exit.json; ok is false if it does not exist.
func readExit(path string) (rec exitRecord, ok bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return exitRecord{}, false, nil
	}
	if err != nil {
		return exitRecord{}, false, fmt.Errorf("read exit record: %w", err)
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return exitRecord{}, false, fmt.Errorf("parse exit record %s: %w", path, err)
	}
	return rec, true, nil
}

// tail returns up to the last n bytes of a file, trimmed, or "" if it
// cannot be read.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(fi.Size()-n, 0)
	data, err := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}
