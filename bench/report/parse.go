package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Samples are the values of one metric over the runs, keyed by
// "BenchmarkName unit" (the name without its -GOMAXPROCS suffix).
type Samples map[string][]float64

// key names a metric of a benchmark.
func key(bench, unit string) string { return bench + " " + unit }

// ParseBench reads `go test -bench` output (several runs, several packages
// concatenated) and returns every metric of every result line.
//
//	BenchmarkScale-2   1   52113 ns/op   812.0 creates/s   1523 placements/s
func ParseBench(r io.Reader) (Samples, error) {
	out := Samples{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // a log line that starts with a benchmark's name
		}
		if len(f)%2 != 0 {
			return nil, fmt.Errorf("line %d: value without unit: %q", n, sc.Text())
		}
		name := trimProcs(f[0])
		for i := 2; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: metric %q: %w", n, f[i+1], err)
			}
			k := key(name, f[i+1])
			out[k] = append(out[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read benchmark output: %w", err)
	}
	return out, nil
}

// trimProcs drops the -N GOMAXPROCS suffix of a benchmark name.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}

// Peers is what run.sh measured besides the Go benchmarks.
type Peers struct {
	// Machine facts by key: cpu, cores, memory, kernel, date.
	Machine map[string]string
	// Samples of peer timings by key, e.g. "lxc-create-start-ms".
	Samples Samples
	// Notes by key: why something could not be measured.
	Notes map[string][]string
}

// ParsePeers reads run.sh's TSV: one "kind<TAB>key<TAB>value" per line,
// kind machine, peer (value a number) or note (value free text).
// Blank lines and lines starting with # are skipped.
func ParsePeers(r io.Reader) (*Peers, error) {
	p := &Peers{Machine: map[string]string{}, Samples: Samples{}, Notes: map[string][]string{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 || f[1] == "" {
			return nil, fmt.Errorf("line %d: want kind<TAB>key<TAB>value, got %q", n, line)
		}
		kind, k, v := f[0], f[1], strings.TrimSpace(f[2])
		switch kind {
		case "machine":
			p.Machine[k] = v
		case "peer":
			x, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("line %d: peer %s: %q is not a number", n, k, v)
			}
			p.Samples[k] = append(p.Samples[k], x)
		case "note":
			p.Notes[k] = append(p.Notes[k], v)
		default:
			return nil, fmt.Errorf("line %d: unknown kind %q (want machine, peer or note)", n, kind)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read peers: %w", err)
	}
	return p, nil
}

// Stats summarise samples.
type Stats struct {
	N                int
	Median, Min, Max float64
}

// Summarize returns the median, minimum and maximum of xs (the mean of
// the middle two for an even count). It reports false for no samples.
func Summarize(xs []float64) (Stats, bool) {
	if len(xs) == 0 {
		return Stats{}, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Stats{N: n, Median: med, Min: s[0], Max: s[n-1]}, true
}

// Percentile returns the p-th percentile (0 < p ≤ 1, nearest rank) of xs,
// and false for no samples.
func Percentile(xs []float64, p float64) (float64, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)], true
}
