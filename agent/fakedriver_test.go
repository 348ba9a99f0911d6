package agent

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/driver"
)

// fakeDriver is an in-memory driver.Driver and driver.Execer that records
// its calls.
type fakeDriver struct {
	name   string
	logDir string

	mu        sync.Mutex
	insts     map[string]*driver.Status
	specs     map[string]driver.Spec
	calls     []string // "create <id>", "start <id>", ...
	inspects  map[string]int
	createErr error
	// fail, when set for an operation ("create", "start"), makes call
	// number n (from 1) of it fail with the error it returns; opTimes
	// records when each call of an operation came.
	fail    map[string]func(n int) error
	opTimes map[string][]time.Time
	execFn  func(argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error)
	// exitOnStart makes a start end at once with that exit code.
	exitOnStart map[string]int
	// cpuRate is the CPU an instance uses, in vCPUs; cpuReads counts
	// CPUTime calls.
	cpuRate  map[string]float64
	cpuReads int
}

var (
	_ driver.Driver      = (*fakeDriver)(nil)
	_ driver.Execer      = (*fakeDriver)(nil)
	_ driver.UsageReader = (*fakeDriver)(nil)
)

func newFakeDriver(name, logDir string) *fakeDriver {
	return &fakeDriver{name: name, logDir: logDir, insts: map[string]*driver.Status{}, specs: map[string]driver.Spec{}}
}

func (d *fakeDriver) Name() string { return d.name }

func (d *fakeDriver) Fingerprint(context.Context) driver.Info { return driver.Info{Available: true} }

func (d *fakeDriver) record(op, id string) { d.calls = append(d.calls, op+" "+id) }

func (d *fakeDriver) Create(_ context.Context, spec driver.Spec) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.record("create", spec.ID)
	if err := d.injected("create"); err != nil {
		return err
	}
	if d.createErr != nil {
		return d.createErr
	}
	if _, ok := d.insts[spec.ID]; !ok {
		d.insts[spec.ID] = &driver.Status{State: driver.StateCreated}
		d.specs[spec.ID] = spec
	}
	return nil
}

func (d *fakeDriver) Start(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.record("start", id)
	if err := d.injected("start"); err != nil {
		return err
	}
	st, ok := d.insts[id]
	if !ok {
		return driver.ErrNotFound
	}
	if st.State != driver.StateRunning {
		now := time.Now()
		*st = driver.Status{State: driver.StateRunning, Pid: 4242, StartedAt: now}
		if code, ok := d.exitOnStart[id]; ok {
			*st = driver.Status{State: driver.StateStopped, StartedAt: now, FinishedAt: now.Add(time.Millisecond), ExitCode: code, HasExitCode: true}
		}
	}
	return nil
}

// CPUTime returns the CPU time of a running instance: its rate times the
// time since it started.
func (d *fakeDriver) CPUTime(_ context.Context, id string) (time.Duration, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cpuReads++
	st, ok := d.insts[id]
	if !ok || st.State != driver.StateRunning {
		return 0, fmt.Errorf("instance %s is not running", id)
	}
	return time.Duration(d.cpuRate[id] * float64(time.Since(st.StartedAt))), nil
}

func (d *fakeDriver) setCPURate(id string, rate float64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cpuRate == nil {
		d.cpuRate = map[string]float64{}
	}
	d.cpuRate[id] = rate
}

func (d *fakeDriver) reads() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cpuReads
}

// setExitOnStart makes every start of id end at once with code (or, with
// a negative code, run again).
func (d *fakeDriver) setExitOnStart(id string, code int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.exitOnStart == nil {
		d.exitOnStart = map[string]int{}
	}
	if code < 0 {
		delete(d.exitOnStart, id)
		return
	}
	d.exitOnStart[id] = code
}

func (d *fakeDriver) Stop(_ context.Context, id string, _ time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.record("stop", id)
	if st, ok := d.insts[id]; ok && st.State == driver.StateRunning {
		st.State, st.Pid, st.FinishedAt, st.ExitCode, st.HasExitCode = driver.StateStopped, 0, time.Now(), 143, true
	}
	return nil
}

func (d *fakeDriver) Delete(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.record("delete", id)
	delete(d.insts, id)
	delete(d.specs, id)
	return nil
}

func (d *fakeDriver) Inspect(_ context.Context, id string) (driver.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inspects == nil {
		d.inspects = map[string]int{}
	}
	d.inspects[id]++
	st, ok := d.insts[id]
	if !ok {
		return driver.Status{}, driver.ErrNotFound
	}
	return *st, nil
}

func (d *fakeDriver) List(context.Context) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []string
	for id := range d.insts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, nil
}

func (d *fakeDriver) LogPath(id string) string { return filepath.Join(d.logDir, id+".log") }

func (d *fakeDriver) Exec(ctx context.Context, id string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	d.mu.Lock()
	fn := d.execFn
	d.mu.Unlock()
	if fn == nil {
		return 0, fmt.Errorf("no exec in this test")
	}
	return fn(argv, stdin, stdout, stderr)
}

// put adds an instance in a state, as a driver that survived an agent
// restart would have it.
func (d *fakeDriver) put(id string, state driver.State) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.insts[id] = &driver.Status{State: state, StartedAt: time.Now().Add(-time.Minute)}
}

// exit makes a running instance's process end by itself.
func (d *fakeDriver) exit(id string, code int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.insts[id]
	st.State, st.Pid, st.FinishedAt, st.ExitCode, st.HasExitCode = driver.StateStopped, 0, time.Now(), code, true
}

// setFail makes call number n of op ("create", "start") fail with
// fail(n) (nil: no failure).
func (d *fakeDriver) setFail(op string, fail func(n int) error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail == nil {
		d.fail = map[string]func(int) error{}
	}
	d.fail[op] = fail
}

// injected times a call of op and returns the failure setFail asked for.
// The caller holds d.mu.
func (d *fakeDriver) injected(op string) error {
	if d.opTimes == nil {
		d.opTimes = map[string][]time.Time{}
	}
	d.opTimes[op] = append(d.opTimes[op], time.Now())
	if f := d.fail[op]; f != nil {
		return f(len(d.opTimes[op]))
	}
	return nil
}

// times returns when each call of op came, in order.
func (d *fakeDriver) times(op string) []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.opTimes[op])
}

func (d *fakeDriver) setCreateErr(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.createErr = err
}

// has reports whether the driver knows id.
func (d *fakeDriver) has(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.insts[id]
	return ok
}

func (d *fakeDriver) state(id string) driver.State {
	d.mu.Lock()
	defer d.mu.Unlock()
	if st, ok := d.insts[id]; ok {
		return st.State
	}
	return ""
}

// inspected returns how many times Inspect was called for id.
func (d *fakeDriver) inspected(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.inspects[id]
}

// count returns how many times op was called for id.
func (d *fakeDriver) count(op, id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.calls {
		if c == op+" "+id {
			n++
		}
	}
	return n
}

// opsFor returns the operations called for id, in order.
func (d *fakeDriver) opsFor(id string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, c := range d.calls {
		if op, cid, _ := strings.Cut(c, " "); cid == id {
			out = append(out, op)
		}
	}
	return slices.Clip(out)
}
