package haproxy

import (
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Runtime speaks to HAProxy's runtime API (or the master CLI) on a unix
// socket, one command per connection.
type Runtime struct {
	Socket string
}

// Do sends one command and returns the answer.
func (r Runtime) Do(cmd string) (string, error) {
	c, err := net.DialTimeout("unix", r.Socket, 2*time.Second)
	if err != nil {
		return "", fmt.Errorf("haproxy runtime api: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", fmt.Errorf("haproxy runtime api %q: %w", cmd, err)
	}
	// The master CLI answers once the request is complete.
	_ = c.(*net.UnixConn).CloseWrite()
	out, err := io.ReadAll(c)
	if err != nil {
		return "", fmt.Errorf("haproxy runtime api %q: %w", cmd, err)
	}
	return string(out), nil
}

// Exec sends a command whose answer is empty on success; anything else is
// an error (HAProxy answers errors as text).
func (r Runtime) Exec(cmd string, okAnswers ...string) error {
	out, err := r.Do(cmd)
	if err != nil {
		return err
	}
	out = strings.TrimSpace(out)
	if out == "" {
		return nil
	}
	for _, ok := range okAnswers {
		if strings.Contains(out, ok) {
			return nil
		}
	}
	return fmt.Errorf("haproxy %q: %s", cmd, out)
}

// Server is one server as `show stat` and `show servers state` see it.
type Server struct {
	Backend string
	Name    string
	Address string
	Port    int
	Weight  int
	// Status is show stat's: UP, DOWN, MAINT, DRAIN, NOLB, "UP 1/2",
	// "no check"...
	Status string
	// Admin is the administrative state bit field of show servers
	// state (0x01 forced maintenance, 0x08 forced drain...).
	Admin int
	// Sessions is the current number of sessions (scur).
	Sessions int
}

// Draining reports whether the server was set to drain.
func (s Server) Draining() bool { return s.Admin&0x08 != 0 }

// Maint reports whether the server was set to maintenance.
func (s Server) Maint() bool { return s.Admin&0x01 != 0 }

// Servers returns every server of every backend, with its statistics and
// state.
func (r Runtime) Servers() ([]Server, error) {
	stat, err := r.Do("show stat -1 4 -1")
	if err != nil {
		return nil, err
	}
	rows, err := parseCSV(strings.TrimPrefix(stat, "# "))
	if err != nil {
		return nil, fmt.Errorf("haproxy show stat: %w", err)
	}
	byKey := map[string]*Server{}
	var out []*Server
	for _, row := range rows {
		s := &Server{Backend: row["pxname"], Name: row["svname"], Status: row["status"]}
		s.Sessions, _ = strconv.Atoi(row["scur"])
		s.Weight, _ = strconv.Atoi(row["weight"])
		byKey[s.Backend+"/"+s.Name] = s
		out = append(out, s)
	}
	state, err := r.Do("show servers state")
	if err != nil {
		return nil, err
	}
	lines := strings.Split(state, "\n")
	var header []string
	for _, ln := range lines {
		f := strings.Fields(ln)
		if len(f) == 0 || f[0] == "1" && len(f) == 1 {
			continue
		}
		if f[0] == "#" {
			header = f[1:]
			continue
		}
		if header == nil || len(f) < len(header) {
			continue
		}
		row := map[string]string{}
		for i, h := range header {
			row[h] = f[i]
		}
		s, ok := byKey[row["be_name"]+"/"+row["srv_name"]]
		if !ok {
			continue
		}
		s.Address = row["srv_addr"]
		s.Port, _ = strconv.Atoi(row["srv_port"])
		s.Admin, _ = strconv.Atoi(row["srv_admin_state"])
		s.Weight, _ = strconv.Atoi(row["srv_uweight"])
	}
	res := make([]Server, 0, len(out))
	for _, s := range out {
		res = append(res, *s)
	}
	return res, nil
}

// parseCSV reads show stat's CSV into rows keyed by its header.
func parseCSV(s string) ([]map[string]string, error) {
	rd := csv.NewReader(strings.NewReader(s))
	rd.FieldsPerRecord = -1
	recs, err := rd.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, nil
	}
	header := recs[0]
	var rows []map[string]string
	for _, rec := range recs[1:] {
		row := map[string]string{}
		for i, h := range header {
			if i < len(rec) {
				row[h] = rec[i]
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}
