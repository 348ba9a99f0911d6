// Package ttyframe is the wire format of a command running on a terminal
// (`ouro instance exec -t`): what the API server, the agent and the CLI
// send each other over a stream upgraded to api.ExecTTYProtocol.
//
// The stream carries frames both ways. A frame is a type byte, the
// payload's length as a 4-byte big-endian unsigned integer, then the
// payload (at most MaxPayload bytes):
//
//	+------+----------------+-----------------+
//	| type | length (u32 BE)| payload         |
//	+------+----------------+-----------------+
//
//	type        direction          payload
//	1 Data      both               terminal bytes: keystrokes in, output out
//	2 Resize    to the command     rows, cols: two u16 BE
//	3 Exit      from the command   the exit code: i32 BE; the last frame
//	4 Error     from the command   a UTF-8 message; the last frame
//
// A reader skips frames of types it does not know, so the protocol can
// grow. Closing the stream toward the command hangs its terminal up.
package ttyframe

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"sync"
)

// Type is a frame's type.
type Type byte

// Frame types.
const (
	Data   Type = 1
	Resize Type = 2
	Exit   Type = 3
	Error  Type = 4
)

// MaxPayload bounds a frame's payload.
const MaxPayload = 1 << 20

// headerLen is the size of a frame's type and length.
const headerLen = 5

// Frame is one decoded frame.
type Frame struct {
	Type    Type
	Payload []byte
}

// Size returns a Resize frame's rows and columns.
func (f Frame) Size() (rows, cols uint16, err error) {
	if f.Type != Resize || len(f.Payload) != 4 {
		return 0, 0, fmt.Errorf("bad resize frame (type %d, %d bytes)", f.Type, len(f.Payload))
	}
	return binary.BigEndian.Uint16(f.Payload), binary.BigEndian.Uint16(f.Payload[2:]), nil
}

// ExitCode returns an Exit frame's exit code.
func (f Frame) ExitCode() (int, error) {
	if f.Type != Exit || len(f.Payload) != 4 {
		return 0, fmt.Errorf("bad exit frame (type %d, %d bytes)", f.Type, len(f.Payload))
	}
	return int(int32(binary.BigEndian.Uint32(f.Payload))), nil
}

// Reader decodes frames from a stream.
type Reader struct {
	r *bufio.Reader
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReader(r)} }

// Next returns the next frame of a known type. It returns io.EOF when the
// stream ends between frames, io.ErrUnexpectedEOF inside one. The payload
// is valid until the next call.
func (r *Reader) Next() (Frame, error) {
	for {
		var hdr [headerLen]byte
		if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
			return Frame{}, err
		}
		n := binary.BigEndian.Uint32(hdr[1:])
		if n > MaxPayload {
			return Frame{}, fmt.Errorf("frame of %d bytes: more than %d", n, MaxPayload)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r.r, payload); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Frame{}, err
		}
		switch t := Type(hdr[0]); t {
		case Data, Resize, Exit, Error:
			return Frame{Type: t, Payload: payload}, nil
		}
	}
}

// Writer encodes frames to a stream; it is safe for concurrent use, and
// its Write sends Data frames, so io.Copy can feed it.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter returns a Writer to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write sends p as Data frames.
func (w *Writer) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), MaxPayload)]
		if err := w.frame(Data, chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// Resize sends the terminal's new size.
func (w *Writer) Resize(rows, cols uint16) error {
	var p [4]byte
	binary.BigEndian.PutUint16(p[:], rows)
	binary.BigEndian.PutUint16(p[2:], cols)
	return w.frame(Resize, p[:])
}

// Exit sends the command's exit code.
func (w *Writer) Exit(code int) error {
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], uint32(int32(code)))
	return w.frame(Exit, p[:])
}

// Error sends why the command could not run or was lost.
func (w *Writer) Error(msg string) error {
	if len(msg) > MaxPayload {
		msg = msg[:MaxPayload]
	}
	return w.frame(Error, []byte(msg))
}

// frame writes one frame in a single Write.
func (w *Writer) frame(t Type, payload []byte) error {
	buf := make([]byte, headerLen+len(payload))
	buf[0] = byte(t)
	binary.BigEndian.PutUint32(buf[1:], uint32(len(payload)))
	copy(buf[headerLen:], payload)
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.w.Write(buf); err != nil {
		return fmt.Errorf("write %s frame: %w", t, err)
	}
	return nil
}

func (t Type) String() string {
	switch t {
	case Data:
		return "data"
	case Resize:
		return "resize"
	case Exit:
		return "exit"
	case Error:
		return "error"
	}
	return fmt.Sprintf("type-%d", byte(t))
}

// SetSize puts a terminal's size in the query of the request that opens
// it (rows=24&cols=80).
func SetSize(q url.Values, rows, cols uint16) {
	q.Set("rows", strconv.Itoa(int(rows)))
	q.Set("cols", strconv.Itoa(int(cols)))
}

// QuerySize reads the size SetSize put in q: 24 rows of 80 columns when
// absent.
func QuerySize(q url.Values) (rows, cols uint16, err error) {
	rows, cols = 24, 80
	for _, p := range []struct {
		name string
		v    *uint16
	}{{"rows", &rows}, {"cols", &cols}} {
		s := q.Get(p.name)
		if s == "" {
			continue
		}
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil || n == 0 {
			return 0, 0, fmt.Errorf("%s %q: want a number from 1 to 65535", p.name, s)
		}
		*p.v = uint16(n)
	}
	return rows, cols, nil
}
