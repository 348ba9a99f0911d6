package watchcache

import "github.com/prometheus/client_golang/prometheus"

// metrics are the cache's Prometheus collectors. The names keep the API
// server's prefix: they describe its watch streams.
type metrics struct {
	watches           prometheus.Gauge
	sharedWatches     prometheus.Gauge
	watchSubscribers  prometheus.Gauge
	watchesFellBehind prometheus.Counter
	mirrorLists       prometheus.Counter
	mirrorMisses      prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		watches: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ouro_apiserver_watches_in_flight",
			Help: "Open watch streams.",
		}),
		sharedWatches: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ouro_apiserver_shared_watches",
			Help: "Store watches shared by the watch streams of a kind (at most one per kind).",
		}),
		watchSubscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ouro_apiserver_watch_subscribers",
			Help: "Watch streams served by a shared store watch.",
		}),
		watchesFellBehind: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ouro_apiserver_watches_fell_behind_total",
			Help: "Watch streams ended with Gone because their client read too slowly.",
		}),
		mirrorLists: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ouro_apiserver_mirror_lists_total",
			Help: "Full lists answered from a kind's mirror, without reading objects from etcd.",
		}),
		mirrorMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ouro_apiserver_mirror_misses_total",
			Help: "Full lists that read etcd because the kind's mirror did not reach etcd's revision in time.",
		}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.watches, m.sharedWatches, m.watchSubscribers, m.watchesFellBehind, m.mirrorLists, m.mirrorMisses}
}
