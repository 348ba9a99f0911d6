package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// A small client of the QEMU Machine Protocol over a unix socket:
//
//	dial ─▶ greeting {"QMP":{"version":…}} ─▶ qmp_capabilities ─▶ command mode
//	execute {"execute":…,"arguments":…,"id":"N"} ─▶ {"return":…,"id":"N"}
//	                                              or {"error":{…},"id":"N"}
//	asynchronous {"event":…,"data":…,"timestamp":…} at any time
//
// One reader goroutine routes replies to their waiting command by id and
// events to a buffered channel. QEMU serves one client per monitor socket
// at a time, so sessions are short: the driver dials, runs a command or
// two and closes.

// qmpGreeting is the first message QEMU sends.
type qmpGreeting struct {
	QMP struct {
		Version struct {
			QEMU struct {
				Major int `json:"major"`
				Minor int `json:"minor"`
				Micro int `json:"micro"`
			} `json:"qemu"`
		} `json:"version"`
		Capabilities []string `json:"capabilities"`
	} `json:"QMP"`
}

// qmpMessage is any message from QEMU after the greeting.
type qmpMessage struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Return json.RawMessage `json:"return,omitempty"`
	Error  *QMPError       `json:"error,omitempty"`
	Event  string          `json:"event,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	// Timestamp of an event.
	Timestamp *struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp,omitempty"`
}

// QMPError is an error reply of QEMU.
type QMPError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *QMPError) Error() string { return fmt.Sprintf("qmp: %s: %s", e.Class, e.Desc) }

// qmpEvent is an asynchronous event.
type qmpEvent struct {
	Name string
	Data json.RawMessage
	Time time.Time
}

// qmpConn is a QMP session in command mode.
type qmpConn struct {
	conn    net.Conn
	version string
	events  chan qmpEvent

	writeMu sync.Mutex
	mu      sync.Mutex
	nextID  int
	pending map[string]chan qmpMessage
	err     error         // why the reader stopped
	done    chan struct{} // closed when the reader stops
}

// errQMPClosed is returned for commands on a closed session.
var errQMPClosed = errors.New("qmp: connection closed")

// dialQMP connects to the monitor socket at path, reads the greeting and
// enters command mode. The whole handshake is bounded by ctx.
func dialQMP(ctx context.Context, path string) (*qmpConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp: dial %s: %w", path, err)
	}
	c, err := newQMPConn(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// newQMPConn runs the handshake on an open connection.
func newQMPConn(ctx context.Context, conn net.Conn) (*qmpConn, error) {
	// A monitor busy with another client accepts the connection but says
	// nothing: the deadline turns that into an error.
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	conn.SetReadDeadline(deadline)
	r := bufio.NewReader(conn)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("qmp: read greeting: %w", err)
	}
	var g qmpGreeting
	if err := json.Unmarshal(line, &g); err != nil || g.QMP.Version.QEMU.Major == 0 {
		return nil, fmt.Errorf("qmp: unexpected greeting %q", truncate(string(line), 200))
	}
	conn.SetReadDeadline(time.Time{})
	v := g.QMP.Version.QEMU
	c := &qmpConn{
		conn:    conn,
		version: fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro),
		events:  make(chan qmpEvent, 64),
		pending: map[string]chan qmpMessage{},
		done:    make(chan struct{}),
	}
	go c.read(r)
	if err := c.execute(ctx, "qmp_capabilities", nil, nil); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// read routes messages until the connection ends.
func (c *qmpConn) read(r *bufio.Reader) {
	dec := json.NewDecoder(r)
	var err error
	for {
		var m qmpMessage
		if err = dec.Decode(&m); err != nil {
			break
		}
		if m.Event != "" {
			ev := qmpEvent{Name: m.Event, Data: m.Data}
			if m.Timestamp != nil {
				ev.Time = time.Unix(m.Timestamp.Seconds, m.Timestamp.Microseconds*1000)
			}
			select {
			case c.events <- ev:
			default: // nobody listens: drop rather than stall replies
			}
			continue
		}
		c.mu.Lock()
		id := string(m.ID)
		ch := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
	c.mu.Lock()
	c.err = err
	c.pending = nil
	c.mu.Unlock()
	close(c.done)
	close(c.events)
}

// execute runs a command and decodes its return value into out (when
// not nil). A QEMU error reply is a *QMPError.
func (c *qmpConn) execute(ctx context.Context, command string, args, out any) error {
	c.mu.Lock()
	if c.pending == nil {
		c.mu.Unlock()
		return errQMPClosed
	}
	c.nextID++
	id := strconv.Itoa(c.nextID)
	ch := make(chan qmpMessage, 1)
	// The id is sent as a JSON string; QEMU echoes it verbatim.
	c.pending[strconv.Quote(id)] = ch
	c.mu.Unlock()

	req := map[string]any{"execute": command, "id": id}
	if args != nil {
		req["arguments"] = args
	}
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("qmp %s: %w", command, err)
	}
	c.writeMu.Lock()
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetWriteDeadline(dl)
	}
	_, err = c.conn.Write(append(data, '\n'))
	c.conn.SetWriteDeadline(time.Time{})
	c.writeMu.Unlock()
	if err != nil {
		return fmt.Errorf("qmp %s: %w", command, err)
	}
	select {
	case m := <-ch:
		return decodeReply(command, m, out)
	case <-c.done:
		// The reply may have been routed just before the reader ended.
		select {
		case m := <-ch:
			return decodeReply(command, m, out)
		default:
		}
		return fmt.Errorf("qmp %s: %w (%v)", command, errQMPClosed, c.readErr())
	case <-ctx.Done():
		c.mu.Lock()
		if c.pending != nil {
			delete(c.pending, strconv.Quote(id))
		}
		c.mu.Unlock()
		return fmt.Errorf("qmp %s: %w", command, ctx.Err())
	}
}

// decodeReply turns a reply into an error or out's value.
func decodeReply(command string, m qmpMessage, out any) error {
	if m.Error != nil {
		return fmt.Errorf("qmp %s: %w", command, m.Error)
	}
	if out != nil {
		if err := json.Unmarshal(m.Return, out); err != nil {
			return fmt.Errorf("qmp %s: decode reply: %w", command, err)
		}
	}
	return nil
}

func (c *qmpConn) readErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Events returns the channel of asynchronous events; it is closed when
// the connection ends. Events arriving while it is full are dropped.
func (c *qmpConn) Events() <-chan qmpEvent { return c.events }

// Close ends the session (QEMU keeps running).
func (c *qmpConn) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

// qmpStatus is the reply of query-status.
type qmpStatus struct {
	Running bool   `json:"running"`
	Status  string `json:"status"`
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
