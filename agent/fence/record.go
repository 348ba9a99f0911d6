package fence

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/atomicfile"
)

// MembersFile is the agent's record of the instance-group members it
// runs, in its data directory.
const MembersFile = "group-members.json"

// Member is one recorded group member: enough to find it in its
// driver and to name it, without the API.
type Member struct {
	UID    string `json:"uid"`
	Driver string `json:"driver"`
	// Instance is the instance's key, "project/name".
	Instance string `json:"instance"`
}

// recordFile is the JSON form of the record.
type recordFile struct {
	Members []Member `json:"members"`
}

// Record is the persistent record of the instance-group members
// the agent runs on its host, by uid. It lets fencing (Fence) work
// when the agent (re)starts while the API is unreachable: containers and
// VMs outlive the agent, but the instance cache stays empty until the
// first successful list, and drivers know nothing of groups.
//
// The record errs on the side of too much: a member is recorded before
// its driver instance is created (and whenever a list, a watch or a start
// shows it), and dropped only once it is gone from the host — removed
// from the drivers, or no longer assigned here and absent from its
// driver. An entry whose driver instance does not exist costs fencing
// one Inspect.
//
// Every change rewrites the whole file atomically (internal/atomicfile);
// the set is small and changes only when members come and go.
type Record struct {
	path string

	mu    sync.Mutex
	byUID map[string]Member
}

// NewRecord returns an empty record kept in dir; nothing is read
// until Load.
func NewRecord(dir string) *Record {
	return &Record{path: filepath.Join(dir, MembersFile), byUID: map[string]Member{}}
}

// Load reads the record from disk, replacing what is in memory. A
// missing file is an empty record; entries without uid or driver are
// skipped and reported in the error.
//
// A file that cannot be read or decoded also leaves the record empty,
// and Load returns the error for the caller to log: nothing better is
// possible. The record is the only place on the host that says which
// driver instances belong to groups; fencing every instance the drivers
// run instead would kill instances nothing replaces, and refusing to
// start would leave the members running unfenced all the same. The first
// successful list records the members again (the file is rewritten at
// the next change); until then fencing sees only what the cache holds.
// The file is written atomically, so this takes a damaged disk or a
// hand edit.
func (r *Record) Load() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byUID = map[string]Member{}
	data, err := os.ReadFile(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read group member record: %w", err)
	}
	var f recordFile
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("group member record %s is corrupt: %w", r.path, err)
	}
	var bad []string
	for _, m := range f.Members {
		if m.UID == "" || m.Driver == "" {
			bad = append(bad, fmt.Sprintf("%+v", m))
			continue
		}
		r.byUID[m.UID] = m
	}
	if len(bad) > 0 {
		return fmt.Errorf("group member record %s: skipped entries without uid or driver: %s", r.path, strings.Join(bad, ", "))
	}
	return nil
}

// Add records m (or its new driver or key). It writes the file only when
// something changed; after a failed write m stays recorded in memory.
func (r *Record) Add(m Member) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.byUID[m.UID]; ok && old == m {
		return nil
	}
	r.byUID[m.UID] = m
	return r.writeLocked()
}

// Remove drops uid, if recorded.
func (r *Record) Remove(uid string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byUID[uid]; !ok {
		return nil
	}
	delete(r.byUID, uid)
	return r.writeLocked()
}

// Retain drops the members keep rejects and returns them.
func (r *Record) Retain(keep func(Member) bool) ([]Member, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var dropped []Member
	for uid, m := range r.byUID {
		if !keep(m) {
			dropped = append(dropped, m)
			delete(r.byUID, uid)
		}
	}
	if len(dropped) == 0 {
		return nil, nil
	}
	slices.SortFunc(dropped, func(a, b Member) int { return strings.Compare(a.UID, b.UID) })
	return dropped, r.writeLocked()
}

// List returns the recorded members, sorted by uid.
func (r *Record) List() []Member {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sortedLocked()
}

func (r *Record) sortedLocked() []Member {
	out := slices.Collect(maps.Values(r.byUID))
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.UID, b.UID) })
	return out
}

// writeLocked replaces the file with the record in memory.
func (r *Record) writeLocked() error {
	data, err := json.MarshalIndent(recordFile{Members: r.sortedLocked()}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode group member record: %w", err)
	}
	if err := atomicfile.WriteFile(r.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("group member record: %w", err)
	}
	return nil
}

// memberOf returns the record entry of inst, run by the driver named
// driverName.
func memberOf(inst *api.Instance, driverName string) Member {
	return Member{UID: inst.Metadata.UID, Driver: driverName, Instance: inst.Metadata.Project + "/" + inst.Metadata.Name}
}

// AddInstance records inst if it is a group member run by the driver
// named driverName.
func (r *Record) AddInstance(inst *api.Instance, driverName string) error {
	if !IsGroupMember(inst) || driverName == "" {
		return nil
	}
	return r.Add(memberOf(inst, driverName))
}

// Note brings the record up to date with an assigned instance the API
// just showed (a list or a watch event): a group member whose driver is
// known is recorded; an instance that is not a group member (any more)
// is not.
func (r *Record) Note(inst *api.Instance) error {
	if IsGroupMember(inst) {
		return r.AddInstance(inst, inst.Status.Driver)
	}
	return r.Remove(inst.Metadata.UID)
}
