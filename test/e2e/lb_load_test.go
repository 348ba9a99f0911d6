package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// The clients of the load balancer tests: HTTP requests from a network
// namespace (a client instance's, or the outside), each on a new
// connection, one at a time or as a steady load that records every
// answer and failure.

// httpClientIn returns an HTTP client whose connections are opened inside
// the network namespace at path netns, each request on a new connection,
// giving up after timeout.
func httpClientIn(netns string, timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{DialContext: netnsDialer(netns), DisableKeepAlives: true,
			// No proxy from the environment: the VIP is on the tenant network.
			Proxy: nil},
		Timeout: timeout,
	}
}

// getBody fetches http://addr/ with hc and returns the trimmed body; a
// status other than 200 is an error.
func getBody(ctx context.Context, hc *http.Client, addr string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", fmt.Errorf("read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s: %q", resp.Status, strings.TrimSpace(string(body)))
	}
	return strings.TrimSpace(string(body)), nil
}

// waitAnswers waits until requests to addr from the namespace at netns
// have been answered by every one of names (and by no other name).
func waitAnswers(tb testing.TB, netns, addr string, timeout time.Duration, names ...string) {
	tb.Helper()
	hc := httpClientIn(netns, 2*time.Second)
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	seen := map[string]int{}
	var last error
	wait.ForDetail(tb, timeout, fmt.Sprintf("answers from %v through %s", names, addr), func() (bool, string) {
		body, err := getBody(context.Background(), hc, addr)
		if err != nil {
			last = err
		} else {
			seen[body]++
		}
		for n := range seen {
			if !want[n] {
				tb.Fatalf("%s answered through %s; want only %v (seen %v)", n, addr, names, seen)
			}
		}
		return len(seen) == len(want), fmt.Sprintf("seen %v, last error %v", seen, last)
	})
}

// loadGen sends requests to one address over and over from several
// workers, each request on a new connection, and counts what happened.
type loadGen struct {
	hc     *http.Client
	addr   string
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	ok, fail int
	errs     []string    // the first errors, with their times
	answers  []answer    // every successful answer, in the order they came
	failed   []time.Time // when every failed request was sent
}

// answer is one successful request: when it was sent, when it was answered
// and by whom.
type answer struct {
	sent, at time.Time
	body     string
}

// startLoad starts workers sending requests to http://addr/ from the
// namespace at netns, each given up after timeout, until stop.
func startLoad(tb testing.TB, netns, addr string, workers int, timeout time.Duration) *loadGen {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &loadGen{hc: httpClientIn(netns, timeout), addr: addr, cancel: cancel}
	for range workers {
		l.wg.Go(func() {
			for ctx.Err() == nil {
				sent := time.Now()
				body, err := getBody(ctx, l.hc, addr)
				at := time.Now()
				if ctx.Err() != nil {
					return // stopped: not the load balancer's doing
				}
				l.mu.Lock()
				if err != nil {
					l.fail++
					l.failed = append(l.failed, sent)
					if len(l.errs) < 10 {
						l.errs = append(l.errs, fmt.Sprintf("%s: %v", at.Format("15:04:05.000"), err))
					}
				} else {
					l.ok++
					l.answers = append(l.answers, answer{sent: sent, at: at, body: body})
				}
				l.mu.Unlock()
				if err != nil {
					// A refused connection returns at once; do not spin.
					t := time.NewTimer(10 * time.Millisecond)
					select {
					case <-t.C:
					case <-ctx.Done():
						t.Stop()
					}
				}
			}
		})
	}
	tb.Cleanup(l.stop)
	return l
}

// stop ends the load and waits for the workers.
func (l *loadGen) stop() {
	l.cancel()
	l.wg.Wait()
	l.hc.CloseIdleConnections()
}

// counts returns the successful and failed requests so far, and the first
// errors.
func (l *loadGen) counts() (ok, fail int, errs []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok, l.fail, slices.Clone(l.errs)
}

// answersSince returns the successful answers to requests sent at or
// after t.
func (l *loadGen) answersSince(t time.Time) []answer {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []answer
	for _, a := range l.answers {
		if !a.sent.Before(t) {
			out = append(out, a)
		}
	}
	return out
}

// failedSince returns how many requests sent at or after t failed.
func (l *loadGen) failedSince(t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, at := range l.failed {
		if !at.Before(t) {
			n++
		}
	}
	return n
}

// firstAnswerSince waits until a request sent at or after t has been
// answered and returns when that answer came.
func (l *loadGen) firstAnswerSince(tb testing.TB, t time.Time, timeout time.Duration) time.Time {
	tb.Helper()
	var at time.Time
	wait.ForDetail(tb, timeout, "an answer to a request sent after "+t.Format("15:04:05.000"), func() (bool, string) {
		as := l.answersSince(t)
		if len(as) == 0 {
			_, fail, errs := l.counts()
			return false, fmt.Sprintf("%d failed; first errors %v", fail, errs)
		}
		at = as[0].at
		for _, a := range as {
			if a.at.Before(at) {
				at = a.at
			}
		}
		return true, ""
	})
	return at
}

// waitAnswersSince waits until at least n requests sent at or after t were
// answered.
func (l *loadGen) waitAnswersSince(tb testing.TB, t time.Time, n int, timeout time.Duration) {
	tb.Helper()
	wait.ForDetail(tb, timeout, fmt.Sprintf("%d answers after %s", n, t.Format("15:04:05.000")), func() (bool, string) {
		got := len(l.answersSince(t))
		_, fail, errs := l.counts()
		return got >= n, fmt.Sprintf("%d answers, %d failed; first errors %v", got, fail, errs)
	})
}

// expectNoFailure stops the load and fails the test if any request failed
// or too few succeeded.
func (l *loadGen) expectNoFailure(tb testing.TB, what string) {
	tb.Helper()
	l.stop()
	ok, fail, errs := l.counts()
	tb.Logf("%s: %d requests answered, %d failed", what, ok, fail)
	if fail > 0 {
		tb.Errorf("%s: %d of %d requests failed; the first: %s", what, fail, ok+fail, strings.Join(errs, "; "))
	}
	if ok < 20 {
		tb.Errorf("%s: only %d requests answered", what, ok)
	}
}

// names returns the distinct bodies of answers.
func names(as []answer) []string {
	set := map[string]bool{}
	for _, a := range as {
		set[a.body] = true
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// dialable reports whether a TCP connection to addr opens from the
// namespace at netns within timeout.
func dialable(netns, addr string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := netnsDialer(netns)(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}
