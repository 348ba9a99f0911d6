// Package bench holds the benchmarks of the control plane that need a
// whole cloud: scheduling and listing at scale on hollow hosts, and the
// idle memory of `ouro up`. run.sh runs them with the peers' measurements
// and bench/report turns the results into docs/benchmarks.md. Benchmarks
// report figures (b.ReportMetric); nothing asserts them.
package bench
