package ttyframe

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	big := strings.Repeat("x", MaxPayload+10)
	steps := []func() error{
		func() error { _, err := w.Write([]byte("ls\r")); return err },
		func() error { return w.Resize(33, 101) },
		func() error { _, err := buf.Write([]byte{9, 0, 0, 0, 2, 'h', 'i'}); return err }, // unknown type: skipped
		func() error { _, err := w.Write([]byte(big)); return err },
		func() error { return w.Error("boom") },
		func() error { return w.Exit(-1) },
		func() error { return w.Exit(130) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf)
	next := func() Frame {
		t.Helper()
		f, err := r.Next()
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		return f
	}
	if f := next(); f.Type != Data || string(f.Payload) != "ls\r" {
		t.Errorf("first frame %v %q", f.Type, f.Payload)
	}
	if rows, cols, err := next().Size(); err != nil || rows != 33 || cols != 101 {
		t.Errorf("resize = %d %d %v", rows, cols, err)
	}
	var got []byte
	for _, want := range []int{MaxPayload, 10} {
		f := next()
		if f.Type != Data || len(f.Payload) != want {
			t.Fatalf("big write: frame %v of %d bytes, want data of %d", f.Type, len(f.Payload), want)
		}
		got = append(got, f.Payload...)
	}
	if string(got) != big {
		t.Error("big write did not come back whole")
	}
	if f := next(); f.Type != Error || string(f.Payload) != "boom" {
		t.Errorf("error frame %v %q", f.Type, f.Payload)
	}
	for _, want := range []int{-1, 130} {
		if code, err := next().ExitCode(); err != nil || code != want {
			t.Errorf("exit = %d %v, want %d", code, err, want)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after the last frame: %v, want io.EOF", err)
	}
}

func TestReaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"cut header", []byte{1, 0, 0}, io.ErrUnexpectedEOF},
		{"cut payload", []byte{1, 0, 0, 0, 5, 'a'}, io.ErrUnexpectedEOF},
		{"empty payload at end", []byte{1, 0, 0, 0, 3}, io.ErrUnexpectedEOF},
		{"too long", []byte{1, 0x10, 0, 0, 1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tc.in)).Next()
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("Next = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestBadControlFrames(t *testing.T) {
	if _, _, err := (Frame{Type: Resize, Payload: []byte{1}}).Size(); err == nil {
		t.Error("short resize accepted")
	}
	if _, err := (Frame{Type: Data, Payload: make([]byte, 4)}).ExitCode(); err == nil {
		t.Error("exit code of a data frame")
	}
}
